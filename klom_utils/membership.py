"""U-LiRA from margins: can a per-example likelihood-ratio test tell unlearned models from
retrained ones?

Hayes et al. ("Inexact unlearning needs more careful evaluations to avoid a false sense of
privacy", 2024) train *shadow* models, unlearn them, fit per example one Gaussian to the
unlearned shadows' outputs and one to the retrained shadows', and classify a target model by
the likelihood ratio of the two. A KLOM run already holds populations of both kinds, so here
the models themselves play shadows and targets, by cross-fitting:

1. per example, the ``n_u`` unlearned models and the ``n_o`` oracles are each split at random
   into two halves;
2. a Gaussian (mean and unbiased variance, floored at a tiny value) is fitted to the margins
   of one half of the unlearned models, another to one half of the oracles;
3. every model of the other halves is classified as unlearned where the log-likelihood ratio
   is positive, as retrained where negative (a tie counts half);
4. the example's accuracy is the balanced accuracy (mean of the two sides' fractions
   classified right), averaged over both assignments of the halves and ``n_repeats`` random
   splits.

The mean over a group's examples is 0.5 when the two kinds cannot be told apart (exactly, in
expectation, whenever they are identically distributed: the classifier never sees its test
models) and 1.0 when they are always told apart (the cap). Differences from the paper: the
same models are attacked and used to fit the attack (cross-fitted, never the same model in
both roles); the attack fits ``N/2`` models per side instead of many shadows per target, so it
is weaker at small ``N`` and, like KLOM, depends on ``N``: compare at the same ``N`` only.
"""

from __future__ import annotations

import numpy as np

from ._typing import ArrayLike
from .metric import in_column_chunks, model_arrays

__all__ = ["ulira_accuracy", "MIN_ULIRA_MODELS"]

#: Fewest models per side (halves of 2 or more, so that a variance can be fitted).
MIN_ULIRA_MODELS = 4
_VAR_FLOOR = 1e-12
_CHUNK_COLUMNS = 2048


def ulira_accuracy(unlearned: ArrayLike, oracle: ArrayLike, *, n_repeats: int = 4,
                   seed: int = 0) -> np.ndarray:
    """Per example (column), the cross-fitted U-LiRA balanced accuracy of telling the
    unlearned models' margins ``(n_u, n_examples)`` from the oracles' ``(n_o, n_examples)``;
    see the module docstring. Needs at least 4 models per side."""
    u, o = model_arrays(unlearned, oracle, MIN_ULIRA_MODELS,
                         " (U-LiRA fits a Gaussian to half of each side's models)")
    if u.shape[1] != o.shape[1]:
        raise ValueError(f"unlearned margins cover {u.shape[1]} examples, oracle margins "
                         f"{o.shape[1]}: both must cover the same examples")
    if isinstance(n_repeats, bool) or not isinstance(n_repeats, (int, np.integer)) \
            or n_repeats < 1:
        raise ValueError(f"n_repeats must be a positive integer, got {n_repeats!r}")
    if not (np.isfinite(u).all() and np.isfinite(o).all()):
        raise ValueError("U-LiRA needs finite margins (nan or inf found)")
    rng = np.random.default_rng(seed)
    perms = [(rng.permutation(len(u)), rng.permutation(len(o))) for _ in range(n_repeats)]
    perms_u, perms_o = (np.array([p[i] for p in perms]) for i in (0, 1))
    if u.dtype != o.dtype:
        u, o = u.astype(np.float64), o.astype(np.float64)
    kernel = _kernels().ulira_columns
    total = np.zeros(u.shape[1])

    in_column_chunks(u.shape[1], _CHUNK_COLUMNS, lambda cols: kernel(
        np.ascontiguousarray(u[:, cols]), np.ascontiguousarray(o[:, cols]), perms_u, perms_o,
        _VAR_FLOOR, total[cols]))
    return total / (2 * n_repeats)


def _kernels():
    """The compiled loop (numba: heavy, so imported on first use, here only)."""
    from . import membership_kernels

    return membership_kernels

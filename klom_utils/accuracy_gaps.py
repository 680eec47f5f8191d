"""Accuracy views of unlearned against retrained models.

Per group (forget, retain, validation: the held-out split, the "test" accuracy of the
literature), from a matrix of right/wrong per model and example:

* the mean accuracy of the unlearned models and of the oracles, and their gap
  (unlearned minus oracle; 0 for a perfect method, up to 1 in absolute value);
* the average gap: the mean of the three absolute gaps (the "Avg. Gap" of SalUn and of
  Jia et al. 2023, here without the MIA term);
* ToW, "tug of war" (Zhao et al. 2024, "What makes unlearning hard and what to do about it"):
  the product over the three groups of ``1 - |gap|``; 1 for a perfect method, 0 at worst.

Gaps, the average gap and ToW are taken of the mean accuracies over models (populations of
``N`` per side), not averaged over pairs of one unlearned and one retrained model as papers
with one model per side do: the mean removes the models' own noise, so these values sit
closer to a perfect method's than per-pair averages would.

Right means the argmax of the logits is the label (:func:`klom_utils.evaluate.correct_matrix`).
Margins alone cannot say it: KLOM's margin ``z[y] - logsumexp(z[k], k != y)`` is positive
only where the label's softmax probability exceeds 1/2, which a right prediction need not
reach. Where only margins exist (EasyDUB's dataset, margins given as arrays), "right" is
that stricter event, and the results say so (:data:`MARGIN_BASIS`).
"""

from __future__ import annotations

import numpy as np

from .metric import group_index, in_column_chunks

__all__ = ["model_accuracies", "accuracy_gaps", "GAP_GROUPS", "LOGITS_BASIS", "MARGIN_BASIS"]

GAP_GROUPS = ("forget", "retain", "validation")


#: What "right" means in each case, as the results state it.
LOGITS_BASIS = "argmax of the logits is the label"
MARGIN_BASIS = ("margin > 0, i.e. the label's softmax probability above 1/2 (no logits: a "
                "lower bound of the accuracy)")


def model_accuracies(right: np.ndarray, forget: np.ndarray, n_train: int) -> np.ndarray:
    """Per model (row of ``right``: booleans, True where the model is right on an example, or
    margins, right where positive; train then val columns), the fraction of the forget,
    retain and validation examples it gets right (train columns ``forget``, the other train
    columns, the columns from ``n_train`` on): ``(n_models, 3)``, nan for an empty group. One
    compiled pass per row, rows shared between threads."""
    from . import accuracy_kernels  # numba: heavy, so imported on first use, here only

    x = np.asarray(right)
    if x.ndim != 2 or not (x.dtype == bool or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"right must be a 2-D array of booleans or margins, got {x.dtype} "
                         f"{x.shape}")
    if x.dtype not in (np.bool_, np.float32, np.float64):  # float16, big-endian, longdouble
        x = x > 0
    # forget: distinct indices of train columns, then at least one validation column
    lost_ids = group_index(x.shape[1], forget, n_train, None)["forget"].astype(np.int64)
    x = np.ascontiguousarray(x)
    counts = np.empty((len(x), 3), np.int64)
    half = max(1, -(-len(x) // 2))
    in_column_chunks(len(x), half, lambda rows: accuracy_kernels.right_counts(  # rows here
        x[rows], lost_ids, n_train, counts[rows]))
    lost, train, val = counts.T
    sizes = np.array([len(lost_ids), n_train - len(lost_ids), x.shape[1] - n_train])
    with np.errstate(divide="ignore", invalid="ignore"):  # an empty group: nan
        return np.stack([lost, train - lost, val], axis=1) / sizes


def accuracy_gaps(acc_u: np.ndarray, acc_o: np.ndarray) -> np.ndarray:
    """From per-model accuracies ``(n_models, 3)`` of each side (groups in ``GAP_GROUPS``
    order): ``[acc_u x3, acc_o x3, gap x3, average gap, ToW]`` of the means over models."""
    mu, mo = acc_u.mean(axis=0), acc_o.mean(axis=0)
    gap = mu - mo
    return np.concatenate([mu, mo, gap, [np.abs(gap).mean(), np.prod(1 - np.abs(gap))]])

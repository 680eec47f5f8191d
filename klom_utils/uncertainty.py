"""How far to trust a KLOM number: an interval for a group's 95th percentile, and the noise
floor at a matched number of models.

**What the interval covers.** The examples (forget, retain, validation) are fixed; what is
random is which models were trained (seeds, data order). :func:`p95_interval` gives, for each
group, an interval for the *expected* 95th percentile of per-example KLOM at the scored
number of models per side (``N``): the value that the mean over many independent repetitions
of the whole experiment, each with ``N`` unlearned models and ``N`` oracles, would converge
to. KLOM depends on ``N`` (it falls as ``N`` grows), so an interval at one ``N`` says nothing
about another.

**How.** An interval ``p95 ± t * sd`` around the point estimate. The standard deviation
of the 95th percentile over model draws is estimated from two quantities:

* ``v_half``: the variance of the group's 95th percentile over ``n_splits`` random splits of
  the models into halves (the unlearned and the oracles each split in two, without
  replacement; both ``N/2`` vs ``N/2`` pairs of a split are scored). For a statistic whose
  spread shrinks like ``1/N`` this is the variance at ``N`` (half-sampling); near the noise
  floor the per-example noise of KLOM at ``N/2`` is larger, so it overstates the spread
  (about 2x in sd);
* ``v_split``: ``v_half`` with that per-example noise swapped: minus the variance that
  resampling the examples' scores gives at ``N/2`` (mean over the halves), plus the same at
  ``N`` (on the scores of all models). Unbiased in simulations, but noisy.

The interval uses their average, ``(v_half + max(v_split, 0)) / 2``, and the quantile ``t``
of Student's t with ``n_splits - 1`` degrees of freedom (for the Monte Carlo noise of the
splits). With an odd number of models the halves hold ``floor(n/2)``, and ``v_half`` is scaled
to match. It needs at least 4 models per side. Measured by
``scripts/bench_intervals.py`` (coverage of the expected p95 at ``N = 100`` vs ``100`` over
independent replicates, in synthetic and DIGITS settings, and its cost per call); the
numbers are in the README. Resampling models *with replacement* (a plain bootstrap) is
wrong here: duplicated models make spikier histograms, so the resampled KLOM sits far above
the estimate and such intervals cover almost never.

**Noise floor.** :func:`noise_floor` scores one group of oracles against another, disjoint
one, ``n_per_side`` models each: the KLOM of a perfect method at that ``N``. Compare a method
with the floor at the same ``N`` only.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any, Sequence

import numpy as np

from ._typing import ArrayLike
from .metric import as_real, group_index, klom, model_arrays

__all__ = ["p95_interval", "noise_floor", "floor_split", "check_interval_settings", "t_quantile"]

#: Quantile the interval is about (the headline statistic of KLOM).
QUANTILE = 95
#: Fewest models per side for an interval (halves of at least 2 models).
MIN_MODELS = 4
#: Fewest random half-splits (the t quantile's expansion is exact enough from 9 df).
MIN_SPLITS = 10
#: Random draws of the resampled 95th percentile per vector of scores.
_N_RESAMPLES = 256


def p95_interval(*, unlearned: ArrayLike, oracle: ArrayLike, forget: ArrayLike, n_train: int,
                 level: float = 0.95, seed: int = 0, groups: Sequence[str] | None = None,
                 n_splits: int = 25, **klom_kwargs: Any) -> dict[str, dict[str, float]]:
    """Interval for each group's expected 95th percentile of KLOM at the scored ``N``.

    ``unlearned`` ``(n_u, n_examples)`` and ``oracle`` ``(n_o, n_examples)`` are margins (train
    then validation examples; see :func:`klom_utils.metric.summarize` for ``forget``,
    ``n_train`` and ``groups``); ``klom_kwargs`` go to :func:`klom_utils.metric.klom`.
    Returns ``{group: {"p95", "low", "high", "sd"}}``: the point estimate on all models, the
    interval at ``level`` for the expected 95th percentile with ``n_u`` unlearned models and
    ``n_o`` oracles, and the estimated standard deviation over model draws. See the module
    docstring for the method and its measured coverage. Needs at least 4 models per side and
    ``n_splits >= 10``.
    """
    check_interval_settings(level, n_splits)
    u, o = model_arrays(unlearned, oracle, MIN_MODELS,
                         " (the interval splits each side's models in halves of 2 or more)")
    scores = klom(unlearned=u, oracle=o, **klom_kwargs)
    index = group_index(scores.size, forget, n_train, groups)
    rng = np.random.default_rng(seed)

    half_p95, half_noise = [], []
    hu, ho = len(u) // 2, len(o) // 2
    for _ in range(n_splits):
        pu, po = rng.permutation(len(u)), rng.permutation(len(o))
        for a in (0, 1):
            s = klom(unlearned=u[np.sort(pu[a * hu:(a + 1) * hu])],
                     oracle=o[np.sort(po[a * ho:(a + 1) * ho])], **klom_kwargs)
            half_p95.append([_p95(s[i]) for i in index.values()])
            half_noise.append([_resampled_p95_var(s[i], rng) for i in index.values()])
    # half-sampling: over subsets of m of n models the spread is var(T_n) * (n/m - 1), which
    # is var(T_n) for m = n/2; halves of floor(n/2) (odd n) need the factor
    v_half = np.var(half_p95, axis=0, ddof=1) / ((len(u) + len(o)) / (hu + ho) - 1)
    v_split = v_half - np.mean(half_noise, axis=0) + [
        _resampled_p95_var(scores[i], rng) for i in index.values()]
    sd = np.sqrt((v_half + np.maximum(v_split, 0)) / 2)
    z = t_quantile((1 + level) / 2, df=n_splits - 1)
    out = {}
    for g, i, s in zip(index, index.values(), sd):
        p95 = _p95(scores[i])
        out[g] = {"p95": p95, "low": float(max(p95 - z * s, 0.0)), "high": float(p95 + z * s),
                  "sd": float(s)}
    return out


def check_interval_settings(level: float, n_splits: int) -> None:
    """Raise ValueError unless ``0 < level < 1`` and ``n_splits`` is an integer >= 10."""
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) \
            or n_splits < MIN_SPLITS:
        raise ValueError(f"n_splits must be an integer >= {MIN_SPLITS}, got {n_splits!r}")


def t_quantile(p: float, df: float) -> float:
    """Student's t quantile (Cornish-Fisher expansion; within 0.2% for df >= 9)."""
    z = NormalDist().inv_cdf(p)
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def _p95(x) -> float:
    return float(np.percentile(x, QUANTILE)) if x.size else float("nan")


def _resampled_p95_var(x, rng) -> float:
    """Variance of the 95th percentile (numpy's linear interpolation) of ``x`` resampled with
    replacement, by Monte Carlo in O(len(x)): the ``j``-th smallest of ``n`` draws is
    ``sorted(x)[floor(n * U)]`` with ``U ~ Beta(j, n - j + 1)``, and the next one follows from
    the minimum of the ``n - j`` uniforms above ``U``."""
    n = x.size
    if n < 2:
        return 0.0 if n else float("nan")
    h = (n - 1) * QUANTILE / 100
    j = int(h)  # the two order statistics j and j + 1 (0-based) that np.percentile blends
    frac = h - j
    u1 = rng.beta(j + 1, n - j, _N_RESAMPLES)
    u2 = u1 + (1 - u1) * rng.beta(1, max(n - j - 1, 1), _N_RESAMPLES)
    # only a window of order statistics around j is ever drawn (beyond 10 sd: never)
    half = int(10 * np.sqrt(n * 0.05 * 0.95)) + 2
    k0, k1 = max(j - half, 0), min(j + half, n - 1)
    window = np.sort(np.partition(x, (k0, k1))[k0:k1 + 1])
    pick = lambda v: window[np.clip((n * v).astype(np.int64), k0, k1) - k0]
    stat = (1 - frac) * pick(u1) + frac * pick(u2) if frac else pick(u1)
    return float(np.var(stat, ddof=1))


def noise_floor(oracle: ArrayLike, *, n_per_side: int | None = None, seed: int = 0,
                **klom_kwargs: Any) -> np.ndarray:
    """Per-example KLOM of ``n_per_side`` oracles against ``n_per_side`` other oracles.

    The score a perfect unlearning method gets with ``N = n_per_side`` models per side
    (default: ``n_oracles // 2``, the most that two disjoint groups allow). The ``2 *
    n_per_side`` oracles are drawn at random (``seed``) from the rows of ``oracle``;
    ``klom_kwargs`` go to :func:`klom_utils.metric.klom`. Compare a method with the floor at
    its own ``N``: KLOM falls as ``N`` grows (95th percentile about 1.7 at ``N = 50`` and 0.68
    at ``N = 100`` for the same law).
    """
    o = as_real(oracle, "oracle")
    if o.ndim != 2 or o.shape[0] < 2:
        raise ValueError(f"oracle must have shape (n_models, n_examples) with n_models >= 2, "
                         f"got shape {o.shape}")
    most = o.shape[0] // 2
    if n_per_side is None:
        n_per_side = most
    if isinstance(n_per_side, bool) or not isinstance(n_per_side, (int, np.integer)) \
            or not 1 <= n_per_side <= most:
        raise ValueError(f"n_per_side must be an integer in [1, {most}] for {o.shape[0]} "
                         f"oracles (two disjoint groups), got {n_per_side!r}")
    a, b = floor_split(o.shape[0], n_per_side, seed)
    return klom(unlearned=o[a], oracle=o[b], **klom_kwargs)


def floor_split(n_oracles: int, n_per_side: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The two disjoint groups of oracle rows that :func:`noise_floor` scores against each
    other (``n_per_side`` each, drawn with ``seed``); other metrics' nulls use the same."""
    perm = np.random.default_rng(seed).permutation(n_oracles)
    return np.sort(perm[:n_per_side]), np.sort(perm[n_per_side:2 * n_per_side])


#: What the intervals of :func:`p95_interval` cover, in words (also in records and tables).
INTERVAL_COVERS = ("the expected 95th percentile at this N per side, over the randomness of "
                   "training the models (the examples are fixed)")

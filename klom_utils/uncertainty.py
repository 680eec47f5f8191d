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

* ``v_half``: the variance of the group's 95th percentile over ``n_splits`` random halves of
  the models (the unlearned and the oracles each halved, without replacement; ``N/2`` vs
  ``N/2``). For a statistic whose spread shrinks like ``1/N`` this is the variance at ``N``
  (half-sampling); near the noise floor the per-example noise of KLOM at ``N/2`` is larger,
  so it overstates the spread (about 2x in sd);
* ``v_split``: ``v_half`` with that per-example noise swapped: minus the variance that
  resampling the examples' scores gives at ``N/2`` (mean over the halves), plus the same at
  ``N`` (on the scores of all models). Unbiased in simulations, but noisy.

The interval uses ``1.1 * sqrt(0.6 * v_half + 0.4 * max(v_split, 0))`` and the quantile ``t`` of
Student's t with ``n_splits - 1`` degrees of freedom (for the Monte Carlo noise of the
splits). With an odd number of models the halves hold ``floor(n/2)``, and ``v_half`` is scaled
to match. It needs at least 4 models per side. For the canonical estimator (up to 20 bins)
every value is binned once, on its example's range over all models, and each half is counted
from those bins (a few KLOM calls' time in all); other settings score each half with
:func:`klom_utils.metric.klom`. Sharing the full sample's bins, the halves miss the spread
that each sample's own range adds: the factor 1.1 makes up for it (the weights and the factor
were chosen by simulation, and checked on independent ones). Measured by
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
from .metric import VARIANTS, as_real, group_index, in_column_chunks, klom, model_arrays, term_table

__all__ = ["p95_interval", "noise_floor", "floor_split", "check_interval_settings", "t_quantile"]

#: Quantile the interval is about (the headline statistic of KLOM).
QUANTILE = 95
#: Fewest models per side for an interval (halves of at least 2 models).
MIN_MODELS = 4
#: Fewest random half-splits (the t quantile's expansion is exact enough from 9 df).
MIN_SPLITS = 10
#: Scale of the estimated sd: the halves share the full sample's bins, so they miss the spread
#: that each sample's own bin range adds (measured by scripts/bench_intervals.py).
RANGE_FACTOR = 1.1
#: Random draws of the resampled 95th percentile per vector of scores.
_N_RESAMPLES = 256
#: Examples per compiled call when scoring half-splits.
_CHUNK = 2048


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
    hu, ho = len(u) // 2, len(o) // 2
    halves_u, halves_o = (np.array([np.sort(rng.permutation(n)[:h]) for _ in range(n_splits)])
                          for n, h in ((len(u), hu), (len(o), ho)))
    half_p95, half_noise = [], []
    for s in _half_scores(u, o, halves_u, halves_o, klom_kwargs):
        found = [_p95_and_noise(s[i], rng) for i in index.values()]
        half_p95.append([f[0] for f in found])
        half_noise.append([f[1] for f in found])
    # half-sampling: over subsets of m of n models the spread is var(T_n) * (n/m - 1), which
    # is var(T_n) for m = n/2; halves of floor(n/2) (odd n) need the factor
    v_half = np.var(half_p95, axis=0, ddof=1) / ((len(u) + len(o)) / (hu + ho) - 1)
    v_split = v_half - np.mean(half_noise, axis=0) + [
        _p95_and_noise(scores[i], rng)[1] for i in index.values()]
    sd = RANGE_FACTOR * np.sqrt(0.6 * v_half + 0.4 * np.maximum(v_split, 0))
    z = t_quantile((1 + level) / 2, df=n_splits - 1)
    out = {}
    for g, i, s in zip(index, index.values(), sd):
        p95 = _p95(scores[i])
        out[g] = {"p95": p95, "low": float(max(p95 - z * s, 0.0)), "high": float(p95 + z * s),
                  "sd": float(s)}
    return out


def _half_scores(u, o, halves_u, halves_o, klom_kwargs):
    """Per-example KLOM of the half of every split, ``(n_splits, n_examples)``.

    The canonical estimator (at most 20 bins) bins every value once, on its example's joint
    range over all models, and counts each half from those bins (compiled, in a few threads);
    other settings score each half with :func:`klom_utils.metric.klom`, on the half's own range.
    """
    opts = {"bins": 20, "eps": 1e-5, "clip": (-100.0, 100.0), "direction": "unlearned||oracle",
            "variant": "canonical", **klom_kwargs}
    if opts["variant"] != "canonical" or opts["bins"] > 20:
        return np.array([klom(unlearned=u[hu], oracle=o[ho], **klom_kwargs)
                         for hu, ho in zip(halves_u, halves_o)])
    b = _binning()
    p, q, halves_p, halves_q = u, o, halves_u, halves_o
    if opts["direction"] == "oracle||unlearned":
        p, q, halves_p, halves_q = o, u, halves_o, halves_u
    bins, n = int(opts["bins"]), p.shape[1]
    cmin, cmax = (float(c) for c in opts["clip"])
    table = term_table(halves_p.shape[1], halves_q.shape[1], opts["eps"])
    slots = np.empty(p.shape, np.uint8), np.empty(q.shape, np.uint8)
    out = np.empty((len(halves_p), n), np.float32)

    def work(cols):
        start, c = cols.start, cols.stop - cols.start
        lo, hi, state = np.empty(c), np.empty(c), np.empty(c, np.int8)
        if not b.histogram_slots(p, q, start, cmin, cmax, bins, lo, hi, state, *slots):
            raise ValueError("margins must not be nan")  # klom has said where already
        redo = np.flatnonzero(state == b.REDO)  # ranges of a few ulps: the exact algorithm
        for a, to in zip((p, q), slots if redo.size else ()):
            v = np.clip(a[:, start + redo].astype(np.float64), lo[redo], hi[redo]).ravel()
            to[:, start + redo] = b.exact_slots(v, np.tile(redo, len(a)), lo, hi,
                                                VARIANTS["canonical"], bins).reshape(len(a), -1)
        b.split_scores(*slots, start, c, halves_p, halves_q, table, out)

    in_column_chunks(n, _CHUNK, work)
    return out


def _binning():
    """The compiled kernels (numba: heavy, so imported on first use, here only)."""
    from . import binning

    return binning


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


def _p95_and_noise(x, rng) -> tuple[float, float]:
    """The 95th percentile of ``x`` (numpy's linear interpolation) and its variance over
    resamples of ``x`` with replacement, by Monte Carlo in O(len(x)): the ``j``-th smallest of
    ``n`` draws is ``sorted(x)[floor(n * U)]`` with ``U ~ Beta(j, n - j + 1)``, and the next
    one follows from the minimum of the ``n - j`` uniforms above ``U``."""
    n = x.size
    if n < 2:
        return _p95(x), (0.0 if n else float("nan"))
    h = (n - 1) * QUANTILE / 100
    j = int(h)  # the two order statistics j and j + 1 (0-based) that np.percentile blends
    frac = h - j
    # only a window of order statistics around j is ever drawn (beyond 10 sd: never)
    half = int(10 * np.sqrt(n * 0.05 * 0.95)) + 2
    k0, k1 = max(j - half, 0), min(j + half, n - 1)
    window = _order_window(x, k0, k1)
    p95 = window[j - k0] + (window[j + 1 - k0] - window[j - k0]) * frac if frac else window[j - k0]
    u1 = rng.beta(j + 1, n - j, _N_RESAMPLES)
    u2 = u1 + (1 - u1) * rng.beta(1, max(n - j - 1, 1), _N_RESAMPLES)
    pick = lambda v: window[np.clip((n * v).astype(np.int64), k0, k1) - k0]
    stat = (1 - frac) * pick(u1) + frac * pick(u2) if frac else pick(u1)
    return float(p95), float(np.var(stat, ddof=1))


def _order_window(x, k0, k1):
    """``np.sort(x)[k0:k1 + 1]`` without sorting ``x``: the values between two bounds read from
    a sorted subsample (with a wide margin), sorted, if those bounds hold ranks k0 to k1 (else
    by ``np.partition``)."""
    n = x.size
    if n >= 16_384:
        sample = np.sort(x[::n // 2048])
        m = sample.size
        margin = int(6 * np.sqrt(m * 0.05)) + 8
        a, b = k0 * m // n - margin, k1 * m // n + margin
        low = sample[a] if a > 0 else -np.inf
        high = sample[b] if b < m - 1 else np.inf
        below = int(np.count_nonzero(x < low))
        middle = x[(x >= low) & (x <= high)]
        if below <= k0 and below + middle.size > k1:
            middle.sort()
            return middle[k0 - below:k1 - below + 1]
    return np.sort(np.partition(x, (k0, k1))[k0:k1 + 1])


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

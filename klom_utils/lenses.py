"""Four lenses on the same margins: KLOM, U-LiRA, accuracy gaps with ToW, and KS, each with
its interval, its null value at the same ``N`` and the value where it saturates.

Everything comes from the margins a KLOM run already has (``N`` unlearned models and ``N``
oracles on every example); no extra training.

* **U-LiRA** (:mod:`klom_utils.membership`): mean per-example balanced accuracy of a
  likelihood-ratio test telling unlearned from retrained models, on the forget set and, as
  controls, on random samples of retain and validation examples of the forget set's size.
  Chance 0.5, cap 1.0.
* **Accuracies** (:mod:`klom_utils.accuracy_gaps`): per group the mean accuracy of each side,
  the gap, the average gap and ToW.
* **KS** (:mod:`klom_utils.ks_stats`): per example the two-sample KS statistic, summarised by
  its 95th percentile per group (cap 1.0), and the model-level "forget quality" p-value.

**Intervals** (``level``, over the randomness of training the models, the examples fixed)
are half-sampling intervals, the ``v_half`` part of :func:`klom_utils.uncertainty.
p95_interval`: the variance of the statistic over ``n_splits`` random splits of each side's
models into halves (both halves of a split scored), scaled to ``N``, times Student's t with
the effective degrees of freedom of the splits' and the models' (``1 / (1 / (n_splits - 1) +
1 / (n_u + n_o - 2))``); the average gap and ToW use at least 200 splits (they are cheap);
the mean accuracies and their gaps, means over models, get Student t intervals from their
standard errors (Welch's for the gaps), which half-sampling fell short of at N = 50. They
cover the expected value at this ``N`` per side; their coverage is measured by
``scripts/bench_metrics.py`` (numbers in the README). For the KS 95th percentile the spread
is estimated on a random sample of at most :data:`SPREAD_EXAMPLES` examples per group (the
point estimate uses them all), which makes it wider on average. The KS interval's
half-width also gets half a lattice step of the statistic, added in quadrature (its p95
jumps by such steps between model draws). The KS null's 95th percentile is estimated on at most
:data:`NULL_EXAMPLES` examples per group.

**Nulls** are the same metrics for two disjoint groups of oracles, ``N0`` each: the oracles of
:func:`klom_utils.uncertainty.noise_floor` (:func:`klom_utils.uncertainty.floor_split`).
Read a result against its null at the same ``N`` only: where ``N0`` is below the sides' ``N``
(fewer than ``2N`` oracles), every entry with a null also gets ``at_null_n``, the same lens
on the first ``N0`` models of each side, the number to compare with the null. The KS forget
quality has no null value: with nothing to tell apart its p-value is uniform on [0, 1].
Each lens draws its random splits and samples from its own generator (seeded from ``seed``),
so its numbers do not depend on which other lenses were asked for.

**Saturation**: a value within 5% of its cap (KLOM's largest score for the binning used, 1.0
for U-LiRA and KS) is flagged: the metric cannot rank methods there.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ._typing import ArrayLike
from .accuracy_gaps import GAP_GROUPS, LOGITS_BASIS, MARGIN_BASIS, accuracy_gaps, model_accuracies
from .ks_stats import ks_statistics, model_level_ks
from .membership import MIN_ULIRA_MODELS, ulira_accuracy
from .metric import group_index, klom, model_arrays
from .uncertainty import check_interval_settings, t_quantile

__all__ = ["METRICS", "parse_metrics", "compute_lenses", "klom_cap", "saturation_warnings",
           "SATURATION_SHARE", "INTERVAL_METHOD"]

#: The lenses, in the order tables show them (KLOM is always computed).
METRICS = ("klom", "ulira", "accuracy", "ks")
#: A value at or above this share of its cap is flagged as saturated.
SATURATION_SHARE = 0.95
#: Most examples per group on which the spread of the KS 95th percentile is estimated.
SPREAD_EXAMPLES = 1000
#: Half-splits for the accuracy lenses' intervals (at least; they are cheap).
ACCURACY_SPLITS = 200
#: Most examples per group on which the KS null's 95th percentile is estimated.
NULL_EXAMPLES = 10_000
#: Cross-fit splits averaged by U-LiRA's estimate, on all models and on each half of a split.
ULIRA_REPEATS = 4
INTERVAL_METHOD = ("half-sampling over models (the v_half of p95_interval): variance over "
                   "random half-splits of each side's models, Student t; mean accuracies and "
                   "their gaps: standard errors over models, Student and Welch t")
_SATURATED = "saturated: the metric cannot rank methods here"


def parse_metrics(metrics: str | Iterable[str] | None) -> tuple[str, ...]:
    """The lenses asked for (``"all"``, ``"klom,ulira"`` or names), always with ``"klom"``."""
    if metrics is None:
        return ("klom",)
    names = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    names = [str(n).strip().lower() for n in names if str(n).strip()]
    if names == ["all"]:
        return METRICS
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise ValueError(f"metrics={metrics!r}: expected 'all' or names among "
                         f"{', '.join(METRICS)}, comma-separated")
    return tuple(m for m in METRICS if m == "klom" or m in names)


def klom_cap(n_unlearned: int, n_oracles: int, **klom_kwargs: Any) -> float:
    """The largest KLOM score the estimator gives at these numbers of models (all of one
    side's models in one bin, the other's elsewhere), for the settings ``klom_kwargs``."""
    zu, zo = np.zeros((n_unlearned, 1)), np.zeros((n_oracles, 1))
    cases = [(zu, _spread(n_oracles)), (_spread(n_unlearned), zo), (zu + 1, zo), (zu, zo + 1)]
    return float(np.nanmax([klom(unlearned=a, oracle=b, **klom_kwargs)[0] for a, b in cases]))


def _spread(n: int) -> np.ndarray:
    """``n`` margins at 0.5 but one at 1.0 (so that the top edge's rule does not drop them)."""
    x = np.full((n, 1), 0.5)
    x[-1] = 1.0
    return x


def saturation_warnings(metric: str, values: Mapping[str, float], cap: float) -> list[dict[str, str]]:
    """A ``saturated`` warning for every group whose value is within 5% of ``cap``."""
    hot = {g: v for g, v in values.items() if np.isfinite(v) and v >= SATURATION_SHARE * cap}
    if not hot:
        return []
    listed = ", ".join(f"{g} {v:.3g}" for g, v in hot.items())
    return [{"kind": "saturated", "message": (
        f"{_SATURATED}: {metric} {listed} within 5% of its cap {cap:.4g}")}]


def compute_lenses(unlearned: ArrayLike, oracle: ArrayLike, *, forget: ArrayLike, n_train: int,
           null: tuple[ArrayLike, ArrayLike] | None = None,
           metrics: Sequence[str] = METRICS, level: float = 0.95, n_splits: int = 25,
           seed: int = 0, intervals: bool = True,
           correct: tuple[ArrayLike, ArrayLike] | None = None,
           null_correct: tuple[ArrayLike, ArrayLike] | None = None) -> dict[str, Any]:
    """U-LiRA, accuracies and KS (those of ``metrics``) of the unlearned margins against the
    oracles' (both ``(n_models, n_train + n_val)``), each with interval and null; see the
    module docstring. ``null``: two disjoint groups of oracle margins, ``N`` each (none: no
    null values); ``intervals=False``: values and nulls only (nan intervals). ``correct``:
    per side, True where a model's argmax is right (same shapes as the margins), for the
    accuracies; ``null_correct`` the same for the null's groups (needed with ``null``);
    without them a positive margin counts as right (:data:`~klom_utils.accuracy_gaps.
    MARGIN_BASIS`). Returns a JSON-ready dict with one entry per lens and ``warnings``."""
    check_interval_settings(level, n_splits)
    u, o = model_arrays(unlearned, oracle)
    if u.shape[1] != o.shape[1]:
        raise ValueError(f"unlearned margins cover {u.shape[1]} examples, oracle margins "
                         f"{o.shape[1]}: both must cover the same examples")
    index = group_index(u.shape[1], forget, n_train, None)
    pair = None if null is None else model_arrays(*null)
    rngs = {m: np.random.default_rng([seed, i]) for i, m in enumerate(("ulira", "accuracy", "ks"))}
    out: dict[str, Any] = {
        "n_unlearned": len(u), "n_oracles": len(o),
        "null_n_per_side": None if pair is None else [len(pair[0]), len(pair[1])],
        "interval": {"level": float(level), "n_splits": int(n_splits),
                     "method": INTERVAL_METHOD}, "warnings": []}
    z = _t(level, n_splits, len(u) + len(o))
    spread = {m: dict(n_splits=n_splits if intervals else 0, rng=r) for m, r in rngs.items()}
    if "ulira" in metrics and min(len(u), len(o)) < MIN_ULIRA_MODELS:
        out["ulira"] = {"groups": None, "why": (
            f"U-LiRA needs at least {MIN_ULIRA_MODELS} models per side, got {len(u)} and {len(o)}")}
    elif "ulira" in metrics:
        fits = pair is not None and min(map(len, pair)) >= MIN_ULIRA_MODELS
        out["ulira"] = _ulira(u, o, index, pair if fits else None, seed, spread["ulira"], z)
        out["warnings"] += saturation_warnings(
            "U-LiRA", {g: v["value"] for g, v in out["ulira"]["groups"].items()}, 1.0)
    if "accuracy" in metrics:
        # half-splits of per-model accuracies cost next to nothing: many, so that the
        # interval's width is not noisy
        splits = max(n_splits, ACCURACY_SPLITS) if intervals else 0
        right, null_right, basis = _rights(u, o, pair, correct, null_correct)
        out["accuracy"] = _accuracy(right, index, null_right,
                                    {**spread["accuracy"], "n_splits": splits},
                                    _t(level, splits, len(u) + len(o)), level)
        out["accuracy"]["basis"] = basis
    if "ks" in metrics:
        out["ks"] = _ks(u, o, index, pair, spread["ks"], z)
        out["warnings"] += saturation_warnings(
            "KS p95", {g: v["p95"] for g, v in out["ks"]["groups"].items()}, 1.0)
    if pair is not None and (len(pair[0]) < len(u) or len(pair[1]) < len(o)):
        _add_at_null_n(out, u, o, pair, correct, forget=forget, n_train=n_train,
                       metrics=metrics, seed=seed)
    return out


def _add_at_null_n(out: dict[str, Any], u, o, pair, correct, **kwargs: Any) -> None:
    """Beside every null: the lens on the first ``N0`` (the null's size) models per side."""
    n0 = min(map(len, pair))
    sides = None if correct is None else (np.asarray(correct[0])[:n0], np.asarray(correct[1])[:n0])
    at = compute_lenses(u[:n0], o[:n0], **kwargs, intervals=False, correct=sides)

    def copy(entry: Any, matched: Any) -> None:
        if isinstance(entry, dict) and isinstance(matched, dict):
            if "null" in entry and entry["null"] is not None:
                entry["at_null_n"] = matched.get("value", matched.get("p95"))
            for key, value in entry.items():
                copy(value, matched.get(key))

    for lens in ("ulira", "accuracy", "ks"):
        copy(out.get(lens), at.get(lens))
    out["at_null_n_per_side"] = n0


def _t(level: float, n_splits: int, n_models: int) -> float:
    """Student's t quantile with the effective degrees of freedom of a half-sampling
    variance: the splits' (``n_splits - 1``) and the models' (``n_models - 2``) combined."""
    df = 1 / (1 / max(n_splits - 1, 1) + 1 / max(n_models - 2, 1))
    return t_quantile((1 + level) / 2, df=max(df, 1.0))


def _half_split(stat: Callable[[np.ndarray, np.ndarray], ArrayLike], u: np.ndarray,
                o: np.ndarray, *, n_splits: int, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """(point estimate on all models, half-sampling sd) of the vector statistic ``stat``."""
    point = np.asarray(stat(u, o), dtype=np.float64)
    if not n_splits:  # no interval asked for
        return point, np.full(point.shape, np.nan)
    hu, ho = len(u) // 2, len(o) // 2
    vals = []
    for _ in range(n_splits):
        pu, po = rng.permutation(len(u)), rng.permutation(len(o))
        for a in (0, 1):
            vals.append(np.asarray(stat(u[np.sort(pu[a * hu:(a + 1) * hu])],
                                        o[np.sort(po[a * ho:(a + 1) * ho])])))
    # over subsets of m of n models the spread is var(T_n) * (n/m - 1): var(T_n) for m = n/2
    sd = np.sqrt(np.var(vals, axis=0, ddof=1) / ((len(u) + len(o)) / (hu + ho) - 1))
    return point, sd


def _interval(value: float, sd: float, z: float, bounds: tuple[float, float]) -> dict[str, float]:
    lo, hi = bounds
    return {"low": float(np.clip(value - z * sd, lo, hi)), "high": float(np.clip(value + z * sd, lo, hi)),
            "sd": float(sd)}


def _sample(index: Mapping[str, np.ndarray], most: int, rng: np.random.Generator) -> dict:
    """Each group's columns, a random sample of ``most`` where it has more."""
    return {g: (i if len(i) <= most else np.sort(rng.choice(i, most, replace=False)))
            for g, i in index.items()}


def _joined(cols: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """All groups' columns in one array, and where to split a result on them by group."""
    return np.concatenate(list(cols.values())), np.cumsum([len(c) for c in cols.values()])[:-1]


def _ks_p95s(a: np.ndarray, b: np.ndarray, cuts: np.ndarray) -> list[float]:
    """The p95 of the per-example KS statistic of ``a`` against ``b`` (joined columns) by group."""
    return [float(np.percentile(s, 95)) for s in np.split(ks_statistics(a, b), cuts)]


def _ulira(u, o, index, pair, seed, spread, z) -> dict[str, Any]:
    cols = _sample(index, len(index["forget"]), spread["rng"])  # retain, val.: controls
    flat, cuts = _joined(cols)

    def stat(a, b):
        return [s.mean() for s in np.split(
            ulira_accuracy(a, b, seed=seed, n_repeats=ULIRA_REPEATS), cuts)]

    groups: dict[str, Any] = {}
    uc, oc = u[:, flat], o[:, flat]
    point = np.asarray(stat(uc, oc))
    sd = np.full(len(cols), np.nan)  # halves too small to fit the test again: no interval
    if spread["n_splits"] and min(len(u), len(o)) >= 2 * MIN_ULIRA_MODELS:
        sd = _half_split(stat, uc, oc, **spread)[1]
    nulls = None if pair is None else stat(pair[0][:, flat], pair[1][:, flat])
    for j, g in enumerate(cols):
        groups[g] = {"value": float(point[j]), **_interval(point[j], sd[j], z, (0, 1)),
                     "count": int(len(cols[g])),
                     "null": None if nulls is None else float(nulls[j])}
    return {"groups": groups, "chance": 0.5, "cap": 1.0, "what": (
        "mean per-example balanced accuracy of a cross-fitted likelihood-ratio test telling "
        "unlearned from retrained models; retain and validation: random samples of the forget "
        "set's size (controls)")}


def _rights(u, o, pair, correct, null_correct) -> tuple:
    """(right per side, right per null group or None, basis): from ``correct`` where given,
    else the margins themselves (:func:`model_accuracies` counts the positive ones)."""
    if correct is None:
        return (u, o), pair, MARGIN_BASIS
    right = tuple(np.asarray(c, dtype=bool) for c in correct)
    for side, r, a in zip(("unlearned", "oracle"), right, (u, o)):
        if r.shape != a.shape:
            raise ValueError(f"correct[{side}] has shape {r.shape}, expected {a.shape} (the "
                             "shape of its margins)")
    if pair is not None and null_correct is None:
        raise ValueError("null_correct is needed with correct and null: the null's accuracies "
                         "must be counted as the sides' are")
    null_right = None if pair is None else tuple(np.asarray(c, dtype=bool) for c in null_correct)
    for i, r in enumerate(null_right or ()):
        if r.shape != pair[i].shape:
            raise ValueError(f"null_correct[{i}] has shape {r.shape}, expected {pair[i].shape} "
                             "(the shape of its null margins)")
    return right, null_right, LOGITS_BASIS


def _welch(acc_u: np.ndarray, acc_o: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """(standard errors, t quantiles) of the mean accuracies of each side and of their gaps
    (``[unlearned x3, oracle x3, gap x3]``): means over models, so Student t with ``n - 1``
    degrees of freedom, and Welch's for the differences."""
    n_u, n_o = len(acc_u), len(acc_o)
    a, b = acc_u.var(axis=0, ddof=1) / n_u, acc_o.var(axis=0, ddof=1) / n_o
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(a + b > 0, (a + b) ** 2 / (a**2 / (n_u - 1) + b**2 / (n_o - 1)), 1.0)
    dfs = np.concatenate([np.full(3, n_u - 1.0), np.full(3, n_o - 1.0), df])
    t = np.array([t_quantile((1 + level) / 2, df=max(float(d), 1.0)) for d in dfs])
    return np.sqrt(np.concatenate([a, b, a + b])), t


def _accuracy(right, index, null_right, spread, z, level) -> dict[str, Any]:
    cols = (index["forget"], len(index["forget"]) + len(index["retain"]))
    acc_u, acc_o = (model_accuracies(r, *cols) for r in right)
    point, sd = _half_split(accuracy_gaps, acc_u, acc_o, **spread)
    g3 = len(GAP_GROUPS)
    zs = np.full(len(point), z)
    if spread["n_splits"]:  # linear in the models: exact standard errors
        sd[:3 * g3], zs[:3 * g3] = _welch(acc_u, acc_o, level)
    null = None if null_right is None else accuracy_gaps(
        *(model_accuracies(r, *cols) for r in null_right))

    def entry(j, bounds, with_null=True):
        out = {"value": float(point[j]), **_interval(point[j], sd[j], zs[j], bounds)}
        if with_null:  # the accuracies themselves have none: the oracles' is the reference
            out["null"] = None if null is None else float(null[j])
        return out

    return {
        "unlearned": {g: entry(j, (0, 1), False) for j, g in enumerate(GAP_GROUPS)},
        "oracle": {g: entry(g3 + j, (0, 1), False) for j, g in enumerate(GAP_GROUPS)},
        "gap": {g: entry(2 * g3 + j, (-1, 1)) for j, g in enumerate(GAP_GROUPS)},
        "average_gap": entry(3 * g3, (0, 1)), "tow": entry(3 * g3 + 1, (0, 1)),
        "what": ("accuracy = share of examples a model gets right (see basis); gap = "
                 "unlearned minus oracle mean accuracy; average gap = mean |gap|; ToW = product "
                 "of 1 - |gap| (1: as retrained)")}


def _ks(u, o, index, pair, spread, z) -> dict[str, Any]:
    d = ks_statistics(u, o)
    rng = spread["rng"]
    null = None
    if pair is not None:  # the null's p95 on a sample of each group (it only needs the p95)
        flat, cuts = _joined(_sample(index, NULL_EXAMPLES, rng))
        null = dict(zip(index, _ks_p95s(pair[0][:, flat], pair[1][:, flat], cuts)))
    sd = np.full(len(index), np.nan)
    if spread["n_splits"]:
        flat, cuts = _joined(_sample(index, SPREAD_EXAMPLES, rng))
        sd = _half_split(lambda a, b: _ks_p95s(a, b, cuts), u[:, flat], o[:, flat], **spread)[1]
    # the statistic lives on a lattice of steps about 2 / (n_u + n_o): its p95 jumps by such
    # steps between model draws, which half-splits of a few values do not see; half a step
    # is added to the half-width in quadrature (simulations: coverage below 93% without it)
    step = 1 / (len(u) + len(o))
    groups = {}
    for j, (g, i) in enumerate(index.items()):
        p95 = float(np.percentile(d[i], 95))
        groups[g] = {"p95": p95, **_interval(p95, np.hypot(sd[j], step / z), z, (0, 1)),
                     "count": int(len(i)), "null": None if null is None else null[g]}
    quality = model_level_ks(u, o, index["forget"])
    return {"groups": groups, "cap": 1.0, "forget_quality": quality, "what": (
        "per-example two-sample KS statistic of the two sides' margins, 95th percentile per "
        "group; forget_quality: exact KS p-value of the models' mean forget margins "
        "(unlearned vs oracles; small: told apart; uniform on [0, 1] when nothing differs)")}


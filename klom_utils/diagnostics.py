"""Checks that say when a KLOM number should not be read at face value.

* **Outlier models.** KLOM bins each example's margins between the joint minimum and maximum
  of both groups, so one model whose margins sit far outside the rest stretches every range
  and squeezes all other models into one or two bins: one diverged model halves KLOM. A
  model's distance is the median, over examples, of ``|margin - median| / (1.4826 * MAD)``
  (median and MAD across the models of its side); ordinary models sit near 0.67, and a model
  further out than :data:`OUTLIER_DISTANCE` is reported.
* **Small N** (under :data:`SMALL_N` models per side): KLOM and its noise floor are inflated.
* **Unequal N**: KLOM at unequal numbers of models is not comparable with KLOM at equal N.
* **Small forget sets** (under :data:`SMALL_FORGET` examples): the 95th percentile rests on
  the few largest scores (the 2 largest of 10, the 4 largest of 50), so the group mean and the
  number of forget examples above the retain group's 99th percentile are reported next to it.
* **nan scores** (reference variants return nan on some inputs): they make the statistics of
  their group nan; their number is reported.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._typing import ArrayLike, Record
from .metric import as_real, group_index

__all__ = ["model_distances", "outlier_models", "outlier_warnings", "diagnose"]

#: Median robust distance (in MADs scaled to sd) beyond which a model is an outlier.
OUTLIER_DISTANCE = 4.0
#: Fewer models per side than this: "small N".
SMALL_N = 50
#: Forget sets with fewer examples than this get the mean and the count above retain's p99.
SMALL_FORGET = 100
#: Examples used to measure model distances (evenly spaced), enough for a stable median.
_MAX_EXAMPLES = 10_000


def model_distances(margins: ArrayLike) -> np.ndarray:
    """Per model (row of ``margins``, ``(n_models, n_examples)``), the median over examples of
    its robust distance from the other models: ``|m - median| / (1.4826 * MAD)``, medians
    across models. Examples where the MAD is 0 are left out; nan if none is left."""
    m = as_real(margins, "margins")
    if m.ndim != 2 or m.shape[0] < 3:
        raise ValueError(f"margins must have shape (n_models, n_examples) with n_models >= 3, "
                         f"got shape {m.shape}")
    step = max(1, m.shape[1] // _MAX_EXAMPLES)
    m = np.clip(m[:, ::step].astype(np.float64), -1e300, 1e300)
    center = np.median(m, axis=0)
    dev = np.abs(m - center)
    mad = 1.4826 * np.median(dev, axis=0)
    keep = mad > 0
    if not keep.any():
        return np.full(m.shape[0], np.nan)
    return np.median(dev[:, keep] / mad[keep], axis=1)


def outlier_models(margins: ArrayLike, model_ids: Sequence[int] | None = None, *,
                   threshold: float = OUTLIER_DISTANCE) -> list[dict[str, Any]]:
    """``[{"id", "distance"}]`` of the models further than ``threshold`` from the others,
    furthest first (see :func:`model_distances`); ``model_ids`` name the rows (default
    0, 1, ...). Fewer than 3 models: nothing can be called an outlier, so ``[]``."""
    m = as_real(margins, "margins")
    ids = list(range(m.shape[0])) if model_ids is None else [int(i) for i in model_ids]
    if len(ids) != m.shape[0]:
        raise ValueError(f"{len(ids)} model ids for {m.shape[0]} rows of margins")
    if m.shape[0] < 3:
        return []
    d = model_distances(m)
    far = [(float(d[k]), ids[k]) for k in np.flatnonzero(d > threshold)]
    return [{"id": i, "distance": round(dist, 2)} for dist, i in sorted(far, reverse=True)]


def diagnose(*, unlearned: ArrayLike, oracle: ArrayLike, scores: ArrayLike, forget: ArrayLike,
             n_train: int, unlearned_ids: Sequence[int] | None = None,
             oracle_ids: Sequence[int] | None = None) -> Record:
    """Diagnostics of one comparison: ``{"outliers": {"unlearned": [...], "oracle": [...]},
    "n_unlearned", "n_oracles", "forget_mean", "forget_above_retain_p99", "warnings"}``.

    ``unlearned``/``oracle`` are the margins that were scored (train then validation
    examples) and ``scores`` their per-example KLOM; ``warnings`` are one-line messages for
    each problem found, ``{"kind", "message"}`` with kind ``outlier``, ``small_n``,
    ``unequal_n``, ``small_forget`` or ``nan_scores`` (empty when there is none); ``nan_scores``
    also counts the nan scores.
    """
    u, o = as_real(unlearned, "unlearned"), as_real(oracle, "oracle")
    s = np.asarray(scores, np.float64)
    index = group_index(s.size, forget, n_train, None)
    out: Record = {"outliers": {"unlearned": outlier_models(u, unlearned_ids),
                        "oracle": outlier_models(o, oracle_ids)},
           "n_unlearned": int(u.shape[0]), "n_oracles": int(o.shape[0])}
    f, r = s[index["forget"]], s[index["retain"]]
    out["forget_mean"] = float(f.mean()) if f.size else float("nan")
    out["forget_above_retain_p99"] = (int((f > np.percentile(r, 99)).sum())
                                      if f.size and r.size else 0)
    warnings = []

    def warn(kind, message):
        warnings.append({"kind": kind, "message": message})

    for side, found in out["outliers"].items():
        warnings += outlier_warnings(side, found)
    n_u, n_o = out["n_unlearned"], out["n_oracles"]
    if min(n_u, n_o) < SMALL_N:
        warn("small_n", f"small N: {n_u} unlearned models and {n_o} oracles (under {SMALL_N} "
             "per side): KLOM and its noise floor are inflated at small N (with 20 bins, for "
             "two samples of one normal law, floor p95 about 1.7 at N = 50 and 5.0 at N = 20); "
             "compare only with numbers at the same N")
    if n_u != n_o:
        warn("unequal_n", f"unequal N: {n_u} unlearned models vs {n_o} oracles; KLOM at "
             "unequal N is not comparable with KLOM at equal N; score against as many "
             "oracles as unlearned models")
    if 0 < f.size < SMALL_FORGET:
        warn("small_forget", f"forget set of {f.size} examples: its 95th percentile rests on "
             f"its {_n_top(f.size)} largest scores; read it with the forget mean "
             f"({out['forget_mean']:.2f}) and the count of forget examples above the retain "
             f"99th percentile ({out['forget_above_retain_p99']} of {f.size})")
    out["nan_scores"] = int(np.isnan(s).sum())
    if out["nan_scores"]:
        warn("nan_scores", f"{out['nan_scores']} of {s.size} examples scored nan (the "
             "reference variant's own result on such input); every statistic of a group that "
             "holds one is nan")
    out["warnings"] = warnings
    return out


def outlier_warnings(side: str, found: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """``{"kind": "outlier", "message"}`` for each model of :func:`outlier_models`;
    ``side`` names the models in the message ("unlearned", "oracle", ...)."""
    return [{"kind": "outlier", "message": (
        f"{side} model {far['id']} is an outlier: its margins sit a median "
        f"{far['distance']:.1f} robust sd from the other models' (threshold "
        f"{OUTLIER_DISTANCE:g}); one such model stretches the bins and can halve KLOM: check "
        "it, or leave it out (model_ids / --models, oracle_ids / --oracle-ids)")}
        for far in found]


def _n_top(n: int) -> int:
    """How many of the largest of ``n`` values numpy's 95th percentile depends on."""
    return n - int((n - 1) * 0.95)

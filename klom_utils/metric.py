"""Margins, the KLOM score, and its summaries.

The canonical estimator (``klom(..., variant="canonical")``), per evaluation example:

1. take the margins of the ``n_u`` unlearned models and of the ``n_o`` oracles (two 1-D samples;
   the counts may differ) and clip both to ``[clip_min, clip_max]`` (±inf is clipped too);
2. if every clipped value of both samples is the same, the score is 0;
3. otherwise build ``bins`` equal-width bins from the joint minimum to the joint maximum of the
   two clipped samples, exactly as ``numpy.histogram(x, bins, range=(min, max))`` does in
   float64 (the last bin is closed, so every sample is counted);
4. ``p = counts_unlearned / n_u`` and ``q = counts_oracle / n_o``; where ``p > 0``, ``q`` is
   floored at ``eps``;
5. the score is ``sum over bins with p > 0 of p * log(p / q)``, with no renormalisation.

This is KL(unlearned ‖ oracle); ``direction="oracle||unlearned"`` swaps the roles of the two
samples. The score lies in ``[0, log(1/eps)]`` and is never nan for finite margins (even where
the range is a few float64 ulps wide and ``numpy.histogram`` refuses to build the bins; the
same rule is applied to the colliding edges).

The variants ``"paper2024"``, ``"bench2025"`` and ``"easydub"`` reproduce the three reference
implementations described in the documentation, each as its code runs in the environment it
pins: ``compute_binned_KL_div`` of the Attribute-to-Delete code (RoyRin/data-unlearning-bench,
``unlearning/auditors/direct.py``, NumPy ^1.26.4), ``compute_binned_KL_div`` of
data-unlearning-bench (``unlearning_bench/eval.py``, NumPy ^2.2.6) and ``binned_kl_divergence``
of EasyDUB (easydub/EasyDUB-code, ``easydub/eval.py``, NumPy 2.4.2 in its lock file): same
binning, dropping of samples equal to the maximum, smoothing and renormalisation, nan where they
give nan. The direction swaps the two arguments of the reference function, so ``"paper2024"``
clips whichever sample plays ``p``.

The dtype matters to the references, and is reproduced. Float32 semantics apply when both
samples are float32 (float16 and bfloat16 are widened to float32 first); a float32 sample with
a float64 one is computed as float64.

- ``"paper2024"`` (NumPy 1.x value-based casting): float32 ``p`` is clipped in float32 at the
  clip bounds rounded to float32 (``np.clip`` works in float64 instead, at the exact bounds, if
  either bound lies beyond float32's range); the edges are float64 (``np.linspace`` of the
  float32 minimum and maximum gives float64). Float64 margins: float64 throughout.
- ``"bench2025"`` and ``"easydub"`` (NumPy 2, NEP 50): float32 margins stay float32: clipped at
  the bounds rounded to float32 (±inf where they overflow), float32 minimum and maximum, an
  all-equal range widened to ``min + 1`` in float32, and float32 edges from ``np.linspace``; a
  value lying between a float32 edge and the float64 value of that edge falls in another bin
  than with float64 margins. Float64 margins: float64 throughout.

nan appears exactly where the reference gives nan:

- ``"paper2024"``: when nothing of ``p`` or nothing of ``q`` is counted (every value of that
  sample at the joint maximum, which falls past the last edge; or every value of both samples
  equal): the code divides a zero count vector by its zero sum, and the eps floor keeps nan;
  also when the unclipped ``q`` holds ±inf;
- ``"bench2025"``: when nothing of ``p`` is counted (``scipy.stats.entropy`` normalises a zero
  vector); nothing of ``q`` counted gives a number, ``q`` being floored at eps where ``p > 0``;
- ``"easydub"``: never (nothing of ``p`` counted gives 0);
- float32 margins holding ±inf with clip bounds beyond float32's range (NumPy 2 clips at ±inf,
  and the reference's edges would be nan): nan, in ``"bench2025"`` and ``"easydub"``.

Examples are processed in chunks (in a few threads), so memory stays bounded however many
examples there are. Each value's bin comes from a float64 estimate settled against the
reference's own bin edges, bit for bit, in a compiled loop (``klom_utils.binning``), so bin
counts equal the reference's; for float32 margins in ``"bench2025"`` and ``"easydub"`` the
estimate is settled by a search among the float32 edges themselves.
"""

from __future__ import annotations

import functools
import os
import sys
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable, Mapping, Sequence, cast

import numpy as np

if TYPE_CHECKING:
    import torch

    from ._typing import ArrayLike

__all__ = ["margins", "klom", "summarize", "headline"]

GROUPS = ("forget", "retain", "validation")
DIRECTIONS = ("unlearned||oracle", "oracle||unlearned")
#: Most histogram bins ``klom`` takes (more only raise the floor; memory grows with them).
MAX_BINS = 100_000

# How each variant bins and smooths. n_edges_extra: edges = bins + n_edges_extra.
# shift: digitize index minus bin slot (2024 counts digitize indices 0..bins-1; 2025 1..bins).
# numpy: the NumPy major version the reference pins (1: value-based casting, float64 edges;
# 2: NEP 50, float32 edges from float32 margins); None for the canonical estimator.
_Spec = namedtuple(
    "_Spec",
    "n_edges_extra shift histogram clip_q per_model floor_all renorm widen on_equal numpy",
)
VARIANTS = {
    "canonical": _Spec(1, 0, True, True, True, False, False, False, 0.0, None),
    "paper2024": _Spec(0, 1, False, False, False, True, True, False, np.nan, 1),
    "bench2025": _Spec(1, 0, False, True, False, False, True, True, None, 2),
    "easydub": _Spec(1, 0, False, True, False, False, False, True, None, 2),
}

_CHUNK_ELEMENTS = 1 << 19  # values per chunk (both groups together)
_MAX_THREADS = 8


def _binning():
    """The compiled counting loops (numba: heavy, so imported on first use, here only)."""
    from . import binning

    return binning


# --------------------------------------------------------------------------------------------
# input helpers


def _is_torch(x):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _as_numpy(x, name):
    """A numpy view of a numpy array, torch tensor (any device) or nested sequence."""
    if _is_torch(x):
        x = x.detach()
        if x.dtype.is_floating_point and x.element_size() < 4:
            x = x.float()  # numpy has no bfloat16
        return x.cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} must be an array of numbers, got {type(x).__name__}") from exc


def as_real(x, name):
    """A float32 or float64 numpy array (exact: narrower floats widen to float32)."""
    x = _as_numpy(x, name)
    if x.dtype.kind not in "iuf":
        raise ValueError(f"{name} must hold real numbers (margins), got dtype {x.dtype}")
    if x.dtype in (np.float32, np.float64):
        return x
    return x.astype(np.float32 if x.dtype.kind == "f" and x.dtype.itemsize < 4 else np.float64)


# --------------------------------------------------------------------------------------------
# margins


def margins(logits: ArrayLike | torch.Tensor,
            labels: ArrayLike | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Margin of the correct class: ``z[y] - logsumexp(z[k] for k != y)``.

    ``logits`` has shape ``(..., n_classes)`` and ``labels`` (integers in ``[0, n_classes)``)
    a shape that broadcasts to ``logits.shape[:-1]``, e.g. logits ``(n_models, n_examples,
    n_classes)`` with labels ``(n_examples,)``. Returns ``logits.shape[:-1]``, of the same kind
    (numpy or torch, same device), in float32 (float64 for float64 logits).
    """
    if _is_torch(logits):
        import torch

        zt = cast("torch.Tensor", logits).detach()
        if not (zt.dtype.is_floating_point or zt.dtype in (torch.int32, torch.int64)):
            raise ValueError(f"logits must be real numbers, got dtype {zt.dtype}")
        zt = zt.double() if zt.dtype == torch.float64 else zt.float()
        yt = (cast("torch.Tensor", labels).to(zt.device) if _is_torch(labels)
              else torch.as_tensor(np.asarray(labels)))
        if yt.dtype.is_floating_point or yt.dtype.is_complex or yt.dtype == torch.bool:
            raise ValueError(f"labels must be integers, got dtype {yt.dtype}")
        _check_labels(tuple(zt.shape), tuple(yt.shape), yt.min().item() if yt.numel() else 0,
                      yt.max().item() if yt.numel() else 0)
        yt = yt.to(zt.device, torch.int64)
        mask = torch.arange(zt.shape[-1], device=zt.device) == yt[..., None]
        right = torch.where(mask, zt, torch.zeros((), dtype=zt.dtype, device=zt.device)).sum(-1)
        return right - zt.masked_fill(mask, float("-inf")).logsumexp(-1)

    raw = _as_numpy(logits, "logits")
    if raw.dtype.kind not in "iuf":
        raise ValueError(f"logits must be real numbers, got dtype {raw.dtype}")
    z = raw.astype(np.float64 if raw.dtype == np.float64 else np.float32, copy=False)
    y = _as_numpy(labels, "labels")
    if y.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    _check_labels(z.shape, y.shape, y.min() if y.size else 0, y.max() if y.size else 0)
    index = np.broadcast_to(y, z.shape[:-1])[..., None]
    correct = np.take_along_axis(z, index, -1)[..., 0]
    others = z.copy()
    np.put_along_axis(others, index, -np.inf, -1)
    top = others[..., :1].copy()  # the max over the classes, column by column: the same
    for k in range(1, others.shape[-1]):  # values as others.max(-1), 4x faster on 10 classes
        np.maximum(top, others[..., k:k + 1], out=top)
    top = np.where(np.isfinite(top), top, 0)
    with np.errstate(divide="ignore"):
        lse = np.log(np.exp(others - top).sum(-1)) + top[..., 0]
    return (correct - lse).astype(z.dtype, copy=False)


def _check_labels(zshape, yshape, ymin, ymax):
    if len(zshape) < 1 or zshape[-1] < 2:
        raise ValueError(f"logits must have shape (..., n_classes) with n_classes >= 2, "
                         f"got shape {zshape}")
    lead = zshape[:-1]
    try:
        ok = np.broadcast_shapes(yshape, lead) == lead
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"labels of shape {yshape} do not match logits of shape {zshape}: "
                         f"expected a shape that broadcasts to {lead}")
    if ymin < 0 or ymax >= zshape[-1]:
        bad = ymin if ymin < 0 else ymax
        raise ValueError(f"label {int(bad)} is out of range: expected labels in "
                         f"[0, {zshape[-1]}) for {zshape[-1]} classes")


# --------------------------------------------------------------------------------------------
# KLOM


def klom(*, unlearned: ArrayLike, oracle: ArrayLike, bins: int = 20, eps: float = 1e-5,
         clip: tuple[float, float] = (-100.0, 100.0), direction: str = "unlearned||oracle",
         variant: str = "canonical") -> np.ndarray:
    """Per-example KLOM between margins of unlearned models and oracles.

    ``unlearned`` is ``(n_unlearned, n_examples)`` and ``oracle`` ``(n_oracles, n_examples)``
    (numpy or torch). Returns a float64 numpy array of ``n_examples`` scores. See the module
    docstring for the canonical estimator, which bins float32 and float64 margins alike (exact
    float64 comparisons) and is never nan for finite margins.

    ``variant`` selects a reference implementation, reproduced as it runs in the environment it
    pins. ``"paper2024"``: NumPy 1.26, float64 edges; float32 margins are clipped at the clip
    bounds rounded to float32. ``"bench2025"`` and ``"easydub"``: NumPy 2 (NEP 50); float32
    margins are binned entirely in float32 (bounds, range, widening by 1, ``np.linspace``
    edges), float64 margins in float64. Float32 semantics apply when both inputs are float32;
    mixed float32 and float64 input is computed as float64. nan where the reference gives nan:
    ``"paper2024"`` when nothing of ``p`` or nothing of ``q`` is counted (a whole sample at the
    joint maximum, or all values equal) or the unclipped ``q`` holds ±inf; ``"bench2025"`` when
    nothing of ``p`` is counted; ``"easydub"`` never (0 there). ``p`` is the unlearned sample
    and ``q`` the oracles for ``direction="unlearned||oracle"``, and the other way round.
    """
    spec = VARIANTS.get(variant) if isinstance(variant, str) else None
    if spec is None:
        raise ValueError(f"variant={variant!r} is not known: expected one of {tuple(VARIANTS)}")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction={direction!r} is not known: expected one of {DIRECTIONS}")
    if (isinstance(bins, bool) or not isinstance(bins, (int, np.integer))
            or not 1 <= bins <= MAX_BINS):
        raise ValueError(f"bins must be an integer in [1, {MAX_BINS}], got {bins!r}")
    if variant == "paper2024" and bins < 2:
        raise ValueError(f"variant 'paper2024' uses `bins` edges and needs bins >= 2, got {bins}")
    if (isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating))
            or not 0 < eps < 1):
        raise ValueError(f"eps must be a number with 0 < eps < 1 (the floor of an empty oracle "
                         f"bin; published: 1e-5), got {eps!r}")
    try:
        cmin, cmax = (float(c) for c in clip)
    except (TypeError, ValueError):
        raise ValueError(f"clip must be a pair (min, max), got {clip!r}") from None
    if not (np.isfinite(cmin) and np.isfinite(cmax) and cmin < cmax):
        raise ValueError(f"clip must be finite bounds with min < max, got {clip!r}")

    u, o = model_arrays(unlearned, oracle)
    if u.shape[1] != o.shape[1]:
        raise ValueError(f"unlearned and oracle must cover the same examples: got "
                         f"{u.shape[1]} and {o.shape[1]} examples (shapes {u.shape}, {o.shape})")

    named = [("unlearned", u), ("oracle", o)]
    if direction == "oracle||unlearned":
        named.reverse()
    # the references run on float32 margins in float32 where their NumPy does so (see the
    # module docstring); mixed float32 and float64 input is computed as float64
    float32 = spec.numpy is not None and u.dtype == o.dtype == np.float32
    return _klom_chunks(named, spec, int(bins), float(eps), cmin, cmax, float32)


def model_arrays(unlearned, oracle, min_models: int = 1, why: str = ""):
    """The two margin arrays as real numpy arrays, each ``(n_models >= min_models, n)``."""
    u = as_real(unlearned, "unlearned")
    o = as_real(oracle, "oracle")
    for name, a in (("unlearned", u), ("oracle", o)):
        if a.ndim != 2 or a.shape[0] < min_models:
            raise ValueError(f"{name} must have shape (n_models, n_examples) with n_models >= "
                             f"{min_models}{why}, got shape {a.shape}")
    return u, o


def in_column_chunks(n_columns: int, width: int, work: Callable[[slice], object]) -> None:
    """Call ``work(cols)`` for each slice of at most ``width`` of ``n_columns`` columns, in a
    few threads (the compiled kernels and numpy's loops release the GIL); in this thread
    where one is enough."""
    chunks = [slice(s, min(s + width, n_columns)) for s in range(0, n_columns, width)]
    n_threads = max(1, min(len(chunks), _MAX_THREADS, os.cpu_count() or 1))

    def share(first: int) -> None:  # one task per thread: queueing each chunk costs ~10%
        for cols in chunks[first::n_threads]:
            work(cols)

    if n_threads == 1:
        share(0)
        return
    with ThreadPoolExecutor(n_threads) as pool:
        list(pool.map(share, range(n_threads)))


def _klom_chunks(named, spec, bins, eps, cmin, cmax, float32=False):
    """Score every example, chunk by chunk of examples, in a few threads."""
    (_, p_in), (_, q_in) = named
    n, n_ex = p_in.shape[0] + q_in.shape[0], p_in.shape[1]
    out = np.empty(n_ex)

    def work(cols):
        out[cols] = _score_chunk(named, cols, spec, bins, eps, cmin, cmax, float32)

    in_column_chunks(n_ex, max(1, min(n_ex, _CHUNK_ELEMENTS // n)), work)
    return out


def _score_chunk(named, cols, spec, bins, eps, cmin, cmax, float32=False):
    n_p, n_q = len(named[0][1]), len(named[1][1])
    if spec.histogram and bins <= _binning().FAST_MAX_BINS and (n_p + 1) * (n_q + 1) <= 1 << 20:
        return _score_chunk_fast(named, cols, spec, bins, eps, cmin, cmax)
    if float32 and spec.numpy == 2:
        return _score_chunk_float32(named, cols, spec, bins, eps, cmin, cmax)
    (_, p_all), (_, q_all) = named
    if float32:  # NumPy 1.x value-based casting: float32 margins are clipped in float32, at the
        # bounds rounded to float32 (unless a bound lies beyond float32's range: then float64)
        cmin, cmax = _float32_bounds(cmin, cmax)
    # each group with its clip bounds (paper2024 does not clip q)
    groups = [(p_all, (cmin, cmax)), (q_all, (cmin, cmax) if spec.clip_q else (-np.inf, np.inf))]
    lo, hi = _joint_range([(a[:, cols], bounds) for a, bounds in groups])
    if np.isnan(lo).any() or np.isnan(hi).any():
        raise _nan_error(named)
    unusable = ~(np.isfinite(lo) & np.isfinite(hi))  # paper2024: ±inf in the unclipped q
    lo[unusable] = hi[unusable] = 0.0
    if spec.widen:
        hi = np.where(hi == lo, lo + 1.0, hi)
    binning = _binning().Binning(lo, hi, spec, bins)
    cp, cq = (binning.counts(a, cols.start, *bounds) for a, bounds in groups)
    score = _divergence(cp, cq, len(p_all), len(q_all), spec, eps)
    if spec.on_equal is not None:
        score[hi == lo] = spec.on_equal
    score[unusable] = np.nan
    return score


def _score_chunk_fast(named, cols, spec, bins, eps, cmin, cmax):
    """The canonical estimator with at most 24 bins, in one compiled call (``binning``)."""
    b = _binning()
    (_, p), (_, q) = named
    c = cols.stop - cols.start
    lo, hi, state, score = np.empty(c), np.empty(c), np.empty(c, np.int8), np.empty(c)
    counts = np.zeros((2, bins, c), np.int32)
    table = _term_table(len(p), len(q), spec, eps)
    if not b.histogram_chunk(p, q, cols.start, cmin, cmax, table, lo, hi, state, *counts, score):
        raise _nan_error(named)
    redo = np.flatnonzero(state == b.REDO)
    if redo.size:  # range too narrow for the estimate: every value, literally
        exact = [b.exact_counts(a, cols.start, redo, lo, hi, lo, hi, spec, bins) for a in (p, q)]
        score[redo] = _divergence(*exact, len(p), len(q), spec, eps)
    score[state == b.FLAT] = spec.on_equal
    return score


def _float32_bounds(cmin, cmax):
    """Clip bounds as NumPy 1.x applies them to float32 margins: both rounded to float32 if both
    fit in its range, else both kept (``np.clip`` then promotes to float64)."""
    with np.errstate(over="ignore"):
        b = np.float32(cmin), np.float32(cmax)
    return (float(b[0]), float(b[1])) if np.isfinite(b).all() else (cmin, cmax)


def _score_chunk_float32(named, cols, spec, bins, eps, cmin, cmax):
    """bench2025 and easydub on float32 margins, as their code runs under NumPy 2 (NEP 50).

    Everything stays float32: both samples are clipped at the bounds rounded to float32 (±inf
    where they overflow), the joint min and max are float32 scalars, the widened maximum of an
    all-equal example is ``min + 1`` in float32, and ``np.linspace`` builds float32 edges from
    them. Each value is slotted against those edges themselves (``numpy.digitize`` semantics),
    in a compiled loop.
    """
    count_slots_edges = _binning().count_slots_edges
    (_, p_all), (_, q_all) = named
    with np.errstate(over="ignore"):
        bounds = np.float32(cmin), np.float32(cmax)
    p, q = p_all[:, cols], q_all[:, cols]
    lo = np.clip(np.minimum(p.min(0), q.min(0)), *bounds)
    hi = np.clip(np.maximum(p.max(0), q.max(0)), *bounds)
    if np.isnan(lo).any() or np.isnan(hi).any():
        raise _nan_error(named)
    unusable = ~(np.isfinite(lo) & np.isfinite(hi))  # ±inf margins, bounds beyond float32
    lo[unusable] = hi[unusable] = 0
    top = np.where(lo >= hi, lo + np.float32(1), hi)  # float32, as in the reference
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        edges = _binning().linspace_at(lo[:, None], top[:, None], bins + 1,
                             np.arange(bins + 1, dtype=np.float32))
        width = top.astype(np.float64) - lo
        scale = np.where(width > 0, bins / width, 0.0)
    edges = edges.astype(np.float64)
    low, high = lo.astype(np.float64), hi.astype(np.float64)  # clamping to the joint range
    counts = []  # is clipping to the bounds
    for a in (p_all, q_all):
        c = np.zeros((lo.size, bins + 1), np.int64)  # the last slot: values past the last edge
        count_slots_edges(a, cols.start, low, high, edges, scale, c)
        counts.append(c)
    score = _divergence(*counts, len(p_all), len(q_all), spec, eps)
    score[unusable] = np.nan
    return score


def _joint_range(groups):
    """Per-example min and max (float64) over groups of (values, clip bounds), clipped."""
    lows, highs = [], []
    for a, bounds in groups:  # clipping is monotone: min(clip(x)) == clip(min(x))
        lows.append(np.clip(a.min(0).astype(np.float64), *bounds))
        highs.append(np.clip(a.max(0).astype(np.float64), *bounds))
    return np.minimum(*lows), np.maximum(*highs)


def _divergence(cp, cq, n_p, n_q, spec, eps):
    """KL(p || q) per row from slot counts, with the variant's normalisation and smoothing."""
    if spec.per_model and not spec.renorm and (n_p + 1) * (n_q + 1) <= 1 << 20:
        # each bin's term depends on its two counts only: look it up in a (cached) table (the
        # spare slot is empty: nothing is dropped in these variants)
        index = cp * (n_q + 1)
        index += cq
        return np.take(_term_table(n_p, n_q, spec, eps).ravel(), index).sum(1)
    cp, cq = cp[:, :-1], cq[:, :-1]
    score = _terms(cp, cq, n_p, n_q, spec, eps).sum(1)
    if spec.renorm:  # scipy.stats.entropy: nan when nothing of p was counted (0 / 0)
        score[~(cp > 0).any(1)] = np.nan
    if spec.floor_all:  # the 2024 code divides q's counts by their sum unguarded: 0 / 0 when
        score[~(cq > 0).any(1)] = np.nan  # nothing of q was counted, and nan survives the floor
    return score


def term_table(n_p: int, n_q: int, eps: float) -> np.ndarray:
    """The canonical estimator's term of one bin, for every pair of counts ``(0..n_p, 0..n_q)``
    of ``n_p`` and ``n_q`` models."""
    return _term_table(n_p, n_q, VARIANTS["canonical"], float(eps))


@functools.lru_cache(maxsize=16)
def _term_table(n_p, n_q, spec, eps):
    """The term of every pair of counts (0..n_p, 0..n_q), for variants without row sums."""
    return _terms(np.arange(n_p + 1)[:, None], np.arange(n_q + 1)[None, :], n_p, n_q, spec, eps)


def _terms(cp, cq, n_p, n_q, spec, eps):
    """Per-bin terms p * log(p / q) of KL(p || q); zero where p == 0."""
    if spec.per_model:
        p, q = cp / n_p, cq / n_q
    else:  # the references normalise by the number of samples counted (zeros if none)
        p = cp / np.maximum(cp.sum(1, keepdims=True), 1)
        q = cq / np.maximum(cq.sum(1, keepdims=True), 1)
    present = cp > 0
    if spec.floor_all or not spec.renorm:  # without renormalisation a floor where p == 0
        q = np.maximum(q, eps)  # changes nothing
    else:
        q = np.where(present, np.maximum(q, eps), q)
    with np.errstate(divide="ignore", invalid="ignore"):
        if spec.renorm:  # scipy.stats.entropy renormalises both
            p = p / p.sum(1, keepdims=True)
            q = q / q.sum(1, keepdims=True)
        ratio = np.where(present, p / q, 1.0)
    return p * np.log(ratio, out=ratio)


def _nan_error(named):
    parts = []
    for name, a in named:
        where = np.argwhere(np.isnan(a))
        if len(where):
            first = ", ".join(f"({m}, {e})" for m, e in where[:5])
            parts.append(f"{name} has {len(where)} nan value(s), first at (model, example) "
                         f"{first}")
    return ValueError("klom: margins must not be nan: " + "; ".join(parts))


# --------------------------------------------------------------------------------------------
# summaries


def group_index(n_scores, forget, n_train, groups):
    """Positions in the score array of each requested group."""
    if isinstance(n_train, bool) or not isinstance(n_train, (int, np.integer)) or n_train < 0:
        raise ValueError(f"n_train must be an integer >= 0, got {n_train!r}")
    groups = GROUPS if groups is None else (groups,) if isinstance(groups, str) else tuple(groups)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or not groups or len(set(groups)) != len(groups):
        raise ValueError(f"groups={groups!r}: expected distinct names among {GROUPS}")
    f = _as_numpy(forget, "forget")
    if f.ndim != 1 or (f.size and f.dtype.kind not in "iu"):
        raise ValueError(f"forget must be a 1-D array of integer indices, got shape {f.shape} "
                         f"and dtype {f.dtype}")
    if f.size and f.dtype.kind == "u" and f.max() > np.iinfo(np.intp).max:
        raise ValueError(f"forget index {int(f.max())} is out of range: expected indices in "
                         f"[0, {n_train})")
    f = f.astype(np.intp)
    if f.size and (f.min() < 0 or f.max() >= n_train):
        bad = f[(f < 0) | (f >= n_train)][0]
        raise ValueError(f"forget index {bad} is out of range: expected indices in [0, {n_train})")
    if np.unique(f).size != f.size:
        vals, cnt = np.unique(f, return_counts=True)
        raise ValueError(f"forget indices must be distinct, {vals[cnt > 1][:5].tolist()} repeat")
    train_len = {(True, True): n_train, (True, False): f.size,
                 (False, True): n_train - f.size, (False, False): 0}
    n_tr = train_len["forget" in groups, "retain" in groups]
    n_val = n_scores - n_tr
    if n_val < 0 or (n_val > 0) != ("validation" in groups):
        expected = f"{n_tr} + n_validation (n_validation >= 1)" if "validation" in groups \
            else str(n_tr)
        raise ValueError(f"{n_scores} scores do not fit groups {groups} with n_train={n_train} "
                         f"and {f.size} forget examples: expected {expected} scores")
    out = {}
    if "forget" in groups and "retain" in groups:
        is_forget = np.zeros(n_train, bool)
        is_forget[f] = True
        out["forget"], out["retain"] = np.flatnonzero(is_forget), np.flatnonzero(~is_forget)
    else:  # forget alone or retain alone (if either)
        for g in groups:
            if g != "validation":
                out[g] = np.arange(n_tr)
    if "validation" in groups:
        out["validation"] = np.arange(n_tr, n_scores)
    return {g: out[g] for g in GROUPS if g in out}


def _stats(x):
    if x.size == 0:
        return {"p95": float("nan"), "p99": float("nan"), "mean": float("nan"),
                "std": float("nan"), "count": 0}
    p95, p99 = np.percentile(x, [95, 99])
    return {"p95": float(p95), "p99": float(p99), "mean": float(x.mean()),
            "std": float(x.std()), "count": int(x.size)}


def summarize(scores: ArrayLike, *, forget: ArrayLike, n_train: int,
              groups: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    """Per-group statistics {"p95", "p99", "mean", "std", "count"} of per-example scores.

    ``scores`` covers the training examples (in dataset order) then the validation examples.
    With ``groups`` it covers only those groups: ("forget",) in the order of ``forget``,
    ("retain",) the train examples not forgotten, ("validation",) the validation examples,
    and combinations in the order train, then validation.
    """
    s = _as_numpy(scores, "scores").astype(np.float64, copy=False)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {s.shape}")
    index = group_index(s.size, forget, n_train, groups)
    return {g: _stats(s[i]) for g, i in index.items()}


def headline(summary: Mapping[str, Mapping[str, float]]) -> float:
    """Mean of the 95th percentiles of the groups present in a summary."""
    return float(np.mean([v["p95"] for v in summary.values()]))

"""The compiled inner loops of KLOM: per-example bin counts of a sample of margins.

``count_slots`` (bins given by a range) and ``count_slots_edges`` (bins given by explicit edges:
the float32 edges of the NumPy 2 references) are compiled by numba on first use (about half a
second each; cached on disk next to this file) and release the GIL, so chunks of examples can be
counted in several threads.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def count_slots(x: np.ndarray, start: int, low: np.ndarray, high: np.ndarray, lo: np.ndarray,
                step: np.ndarray, hi: np.ndarray, scale: np.ndarray, offset: np.ndarray,
                n_seg: int, k_max: int, shift: int, counts: np.ndarray) -> None:
    """Add every value of ``x[:, start: start + c]`` to ``counts[example, slot]`` (c, n_slots).

    Per example (``low`` ... ``offset`` are arrays of length c, one value per example): each
    value is clamped to ``[low, high]``; its edge index is estimated as ``k = min(int(v * scale +
    offset), k_max)``, where ``offset`` holds an upward bias large enough that the estimate is
    the true index or one above it; then ``k`` is lowered by one exactly when ``v`` lies below
    edge ``k``, the edges (indices 0 to ``n_seg``) being ``np.linspace``'s: ``k * step + lo``,
    and ``hi`` for the last one. The slot is ``k + shift``, and never lies outside ``[shift,
    k_max + shift]`` while the estimate is finite, whatever the arguments. The caller chooses
    them, and redoes by the reference algorithm any example whose range is too narrow for the
    estimate.
    """
    n, c = x.shape[0], counts.shape[0]
    slots = np.empty(c, np.intp)
    for r in range(n):
        row = x[r, start: start + c]
        for j in range(c):  # plain comparisons (not min/max) and loads: vector instructions
            v = np.float64(row[j])
            v = low[j] if v < low[j] else v
            v = high[j] if v > high[j] else v
            k = np.intp(v * scale[j] + offset[j])
            k = k_max if k > k_max else k
            last, inner = hi[j], k * step[j] + lo[j]
            k -= 1 if v < (last if k == n_seg else inner) else 0
            slots[j] = (0 if k < 0 else k) + shift
        for j in range(c):
            counts[j, slots[j]] += 1


@numba.njit(nogil=True, cache=True)
def count_slots_edges(x: np.ndarray, start: int, low: np.ndarray, high: np.ndarray,
                      edges: np.ndarray, scale: np.ndarray, counts: np.ndarray) -> None:
    """Add every value of ``x[:, start: start + c]`` to ``counts[example, slot]`` (c, n_edges),
    against explicit bin edges, as ``numpy.digitize(v, edges) - 1`` does.

    Per example: each value is clamped to ``[low, high]``; its slot is the largest ``k`` with
    ``edges[example, k] <= v`` (0 if there is none), so the last slot (``k = n_edges - 1``)
    holds the values at or past the last edge. The search starts from the estimate ``(v -
    edges[example, 0]) * scale[example]`` and walks down, then up, edge by edge, so it is exact
    for any estimate, any finite edges that never decrease (as ``numpy.digitize`` requires)
    and any range, however narrow; a good estimate only makes it fast. Comparisons are done in
    float64, which is exact for float32 values and edges.
    """
    n, c = x.shape[0], counts.shape[0]
    last = edges.shape[1] - 1
    for r in range(n):
        row = x[r, start: start + c]
        for j in range(c):
            v = np.float64(row[j])
            v = low[j] if v < low[j] else v
            v = high[j] if v > high[j] else v
            t = (v - edges[j, 0]) * scale[j]
            k = 0
            if t >= last:
                k = last
            elif t > 0:
                k = np.intp(t)
            while k > 0 and v < edges[j, k]:
                k -= 1
            while k < last and edges[j, k + 1] <= v:
                k += 1
            counts[j, k] += 1


# --------------------------------------------------------------------------------------------
# The canonical estimator's fast path (at most 24 bins): range, bins, counts and divergence of a
# chunk of examples in one compiled call.

#: Most bins of the fast path (three 64-bit words of 8-bit counters per example).
FAST_MAX_BINS = 24
FLAT, REDO, ESTIMATE = 0, 1, 2  # per-example state (see histogram_chunk)


@numba.njit(nogil=True, cache=True)
def _min_max(x: np.ndarray, start: int, lo: np.ndarray, hi: np.ndarray) -> None:
    """Fold the values of ``x[:, start: start + c]`` into the running ``lo`` and ``hi`` (a nan
    makes ``lo`` nan for good); branch-free, so in vector instructions."""
    c = lo.shape[0]
    for r in range(x.shape[0]):
        row = x[r, start: start + c]
        for j in range(c):
            v = row[j]
            a, b = lo[j], hi[j]
            lo[j] = v if (v < a) | (v != v) else a
            hi[j] = v if v > b else b


@numba.njit(nogil=True, cache=True)
def _count_words(x: np.ndarray, start: int, lo: np.ndarray, step: np.ndarray, scale: np.ndarray,
                 offset: np.ndarray, kmax: int, words: np.ndarray, counts: np.ndarray) -> None:
    """Add the bin counts of ``x[:, start: start + c]`` (clipped to the bins' range) to
    ``counts`` (bins, c): each value's bin as in ``count_slots`` (the estimate settled against
    ``numpy.histogram``'s edge), added to 8-bit counters packed in three 64-bit ``words`` per
    example, emptied every 255 rows."""
    c, top = lo.shape[0], np.float64(kmax)
    w0, w1, w2 = words[0], words[1], words[2]
    one, zero = np.uint64(1), np.uint64(0)
    for r0 in range(0, x.shape[0], 255):
        w0[:], w1[:], w2[:] = zero, zero, zero
        for r in range(r0, min(r0 + 255, x.shape[0])):
            row = x[r, start: start + c]
            for j in range(c):  # branch-free: vector instructions
                v = np.float64(row[j])  # a value beyond a clip bound lands in the end bin
                t = v * scale[j] + offset[j]  # anyway: clamping the estimate is enough
                t = top if t > top else t
                k = np.int64(0.0 if t < 0.0 else t)
                k -= 1 if v < np.float64(k) * step[j] + lo[j] else 0
                k = 0 if k < 0 else k
                bit = one << np.uint64((k & 7) << 3)
                w = k >> 3
                w0[j] += bit if w == 0 else zero
                w1[j] += bit if w == 1 else zero
                w2[j] += bit if w == 2 else zero
        for k in range(counts.shape[0]):
            word, shift, to = words[k >> 3], np.uint64((k & 7) << 3), counts[k]
            for j in range(c):
                to[j] += np.int32((word[j] >> shift) & np.uint64(255))


@numba.njit(nogil=True, cache=True)
def histogram_chunk(p: np.ndarray, q: np.ndarray, start: int, cmin: float, cmax: float,
                    table: np.ndarray, lo: np.ndarray, hi: np.ndarray, state: np.ndarray,
                    counts_p: np.ndarray, counts_q: np.ndarray, score: np.ndarray) -> bool:
    """The canonical KLOM of the examples ``start ... start + c`` (c = ``len(score)``), bins =
    ``counts_p.shape[0]`` <= 24 (counts are ``(bins, c)``): per example the joint range ``lo``,
    ``hi`` of both samples clipped to ``[cmin, cmax]``, the ``numpy.histogram`` counts of each
    sample on it, and the sum over bins of ``table[count_p, count_q]``. False (and nothing else
    done) if any value is nan. ``state`` says which examples are flat (every value equal: score
    left to the caller) and which have a range too narrow for the float64 estimate (``redo``:
    the caller counts their values by the reference's algorithm and scores them again).
    """
    c, bins = score.shape[0], counts_p.shape[0]
    mn, mx = np.full(c, np.inf, p.dtype), np.full(c, -np.inf, p.dtype)
    _min_max(p, start, mn, mx)
    mn2, mx2 = np.full(c, np.inf, q.dtype), np.full(c, -np.inf, q.dtype)
    _min_max(q, start, mn2, mx2)
    step, scale, offset = np.zeros(c), np.zeros(c), np.full(c, 0.5)
    for j in range(c):
        if mn[j] != mn[j] or mn2[j] != mn2[j]:
            return False
        a = min(np.float64(mn[j]), np.float64(mn2[j]))
        b = max(np.float64(mx[j]), np.float64(mx2[j]))
        lo[j], hi[j] = min(max(a, cmin), cmax), min(max(b, cmin), cmax)
        delta, magnitude = hi[j] - lo[j], max(abs(lo[j]), abs(hi[j]))
        state[j] = FLAT
        if delta > 0:  # the tolerance of _Binning: rounding of the estimate and of the edges
            s = bins / delta  # (the 2**-1074 term changes tol only for huge scales: skipped
            tol = 2.0**-49 * (4 * magnitude * s + bins + 2)  # below, it would be subnormal)
            tol += 2.0**-1070 * s if s > 2.0**900 else 0.0
            if tol < 0.125 and magnitude < 1e300 and s < 1e300 and delta / bins > 0:
                state[j] = ESTIMATE
                step[j], scale[j], offset[j] = delta / bins, s, tol - lo[j] * s
            else:
                state[j] = REDO
    words = np.empty((3, c), np.uint64)
    _count_words(p, start, lo, step, scale, offset, bins - 1, words, counts_p)
    _count_words(q, start, lo, step, scale, offset, bins - 1, words, counts_q)
    score[:] = 0.0
    flat_table, n_q = table.ravel(), table.shape[1]
    for k in range(bins):  # per example, the terms summed in bin order
        cp, cq = counts_p[k], counts_q[k]
        for j in range(c):
            score[j] += flat_table[cp[j] * n_q + cq[j]]
    return True

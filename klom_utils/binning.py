"""The compiled inner loops of KLOM: per-example bin counts of a sample of margins.

``count_slots`` (bins given by a range) and ``count_slots_edges`` (bins given by explicit edges:
the float32 edges of the NumPy 2 references) serve every variant; ``histogram_chunk`` is the
canonical estimator's fast path (at most 24 bins: range, counts and divergence of a chunk of
examples in one call, the values read twice); ``histogram_slots`` and ``split_scores`` score
random halves of the models for the intervals from bins computed once. All are compiled by
numba on first use (cached on disk next to this file) and release the GIL, so chunks of
examples can be counted in several threads. ``Binning`` and ``exact_slots`` (numpy) hold the
float64 estimate's parameters and the references' own algorithm, for ranges too narrow for it.
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
# Any variant: float64 estimates settled in ``count_slots``, and the reference's own algorithm

class Binning:
    """The bins of a chunk of examples (joint ranges ``lo``, ``hi``), and counting into them.

    A float64 estimate of each value's edge index, biased up by a tolerance that bounds every
    rounding error (of the estimate and of the edges) 16 times over, is the true index or one
    above; the compiled kernel settles which against the reference's own edge, bit for bit.
    Examples whose range is too narrow for the estimate are redone with the reference's
    algorithm, literally.
    """

    def __init__(self, lo, hi, spec, bins):
        self.lo, self.hi, self.spec, self.bins = lo, hi, spec, bins
        self.n_seg = bins + spec.n_edges_extra - 1
        delta = hi - lo
        magnitude = np.maximum(abs(lo), abs(hi))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            flat = ~(delta > 0)  # every value equal: the caller decides the score
            self.step = delta / self.n_seg
            scale = np.where(flat, 0.0, self.n_seg / delta)
            # rounding of scale, of the products and of the sums, each at most 2**-53
            # relative (or 2**-1074 absolute), and of the edges
            tol = 2.0**-49 * (4 * magnitude * scale + self.n_seg + 2) + 2.0**-1070 * scale
            self.redo = ~flat & ~((tol < 0.125) & (magnitude < 1e300) & (scale < 1e300)
                                  & (self.step > 0))
        if spec.widen:  # still flat after widening (|min| >= 2**53): every edge is the minimum,
            self.redo |= flat  # so the reference drops every value
        estimate = ~(flat | self.redo)
        self.scale = np.where(estimate, scale, 0.0)
        self.offset = np.where(estimate, tol - lo * self.scale, 0.5)

    def counts(self, a, start, cmin, cmax):
        """Counts per example and slot, (c, bins + 1), of the values of ``a[:, start: start +
        c]``, clipped to ``[cmin, cmax]``; the last slot holds the samples a reference
        implementation drops."""
        spec, bins, lo, hi = self.spec, self.bins, self.lo, self.hi
        out = np.zeros((lo.size, bins + 1), np.int64)
        k_max = bins - 1 if spec.histogram else self.n_seg
        low, high = np.clip(lo, cmin, cmax), np.clip(hi, cmin, cmax)
        count_slots(a, start, low, high, lo, self.step, hi, self.scale, self.offset, self.n_seg,
                    k_max, spec.shift, out)
        if self.redo.any():  # range too narrow for the estimate: every value, literally
            cols = np.flatnonzero(self.redo)
            out[cols] = exact_counts(a, start, cols, low, high, lo, hi, spec, bins)
        return out


def exact_counts(a, start, cols, low, high, lo, hi, spec, bins):
    """Slot counts (len(cols), bins + 1) of the values of ``a[:, start + cols]`` clamped to
    ``[low, high]``, by the reference's own algorithm."""
    v = np.clip(a[:, start + cols].astype(np.float64), low[cols], high[cols]).ravel()
    slots = exact_slots(v, np.tile(cols, len(a)), lo, hi, spec, bins)
    index = np.tile(np.arange(cols.size), len(a)) * (bins + 1) + slots
    return np.bincount(index, minlength=cols.size * (bins + 1)).reshape(-1, bins + 1)


def linspace_at(lo, hi, num, k):
    """``np.linspace(lo, hi, num)[k]``, bit for bit, elementwise (broadcasting)."""
    div = num - 1
    delta = hi - lo
    step = delta / div
    # np.linspace scales k / div instead where the step underflows to 0 (a subnormal range)
    y = np.where(step == 0, (k / div) * delta, k * step) + lo
    return np.where(k == div, hi, y)


def exact_slots(v, col, lo, hi, spec, bins):
    """Slots of values v in examples col, exactly as the reference computes them."""
    n_edges = bins + spec.n_edges_extra
    lo, hi = lo[col], hi[col]
    if spec.histogram:  # numpy.histogram's uniform-bin algorithm, literally
        j = ((v - lo) / (hi - lo) * bins).astype(np.intp)
        j[j == bins] -= 1
        j -= v < linspace_at(lo, hi, n_edges, j)
        j += (v >= linspace_at(lo, hi, n_edges, j + 1)) & (j != bins - 1)
        return j
    # numpy.digitize(right=False): k = number of edges <= v; a value equal to the maximum
    # (past the last edge) is dropped into the spare slot
    edges = linspace_at(lo[:, None], hi[:, None], n_edges, np.arange(n_edges))
    k = (edges <= v[:, None]).sum(1) - 1
    return np.where(k < n_edges - 1, k + spec.shift, bins)


# --------------------------------------------------------------------------------------------
# The canonical estimator's fast path (at most 24 bins): range, bins, counts and divergence of a
# chunk of examples in one compiled call.

#: Most bins of the fast path (three 64-bit words of 8-bit counters per example).
FAST_MAX_BINS = 24
FLAT, REDO, ESTIMATE = 0, 1, 2  # per-example state (see histogram_chunk)
_TOL, _TINY, _HUGE = 2.0**-49, 2.0**-1070, 2.0**900  # constants, not powers in the loop


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


@numba.njit(nogil=True, cache=True, inline="always")
def _bin(v: float, lo: float, step: float, scale: float, offset: float, top: float) -> int:
    """The ``numpy.histogram`` bin of a value: the float64 estimate (as in ``count_slots``)
    settled against the edge. A value beyond a clip bound lands in the end bin anyway:
    clamping the estimate to ``[0, top]`` is enough (and keeps it finite)."""
    t = v * scale + offset
    t = top if t > top else t
    k = np.int64(0.0 if t < 0.0 else t)
    k -= 1 if v < np.float64(k) * step + lo else 0
    return 0 if k < 0 else k


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
                k = _bin(np.float64(row[j]), lo[j], step[j], scale[j], offset[j], top)
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
def _range_bins(p: np.ndarray, q: np.ndarray, start: int, cmin: float, cmax: float, bins: int,
                lo: np.ndarray, hi: np.ndarray, state: np.ndarray, step: np.ndarray,
                scale: np.ndarray, offset: np.ndarray) -> bool:
    """Per example of the chunk: the joint range of both samples clipped to ``[cmin, cmax]``,
    its state (flat, redo or estimate) and the parameters of the float64 estimate (as
    ``Binning``); False if any value is nan."""
    c = lo.shape[0]
    mn, mx = np.full(c, np.inf, p.dtype), np.full(c, -np.inf, p.dtype)
    _min_max(p, start, mn, mx)
    mn2, mx2 = np.full(c, np.inf, q.dtype), np.full(c, -np.inf, q.dtype)
    _min_max(q, start, mn2, mx2)
    nan = False
    for j in range(c):
        nan |= (mn[j] != mn[j]) | (mn2[j] != mn2[j])
    if nan:
        return False
    n_seg = np.float64(bins)
    for j in range(c):  # branch-free (selects), so in vector instructions
        a = min(np.float64(mn[j]), np.float64(mn2[j]))
        b = max(np.float64(mx[j]), np.float64(mx2[j]))
        low, high = min(max(a, cmin), cmax), min(max(b, cmin), cmax)
        lo[j], hi[j] = low, high
        delta, magnitude = high - low, max(abs(low), abs(high))
        wide = delta > 0
        d = delta if wide else 1.0
        s, width = n_seg / d, d / n_seg
        # the tolerance of Binning: rounding of the estimate and of the edges (the 2**-1070
        # term matters for huge scales only; elsewhere it would be a slow subnormal)
        tol = _TOL * (4 * magnitude * s + n_seg + 2) + _TINY * (s if s > _HUGE else 0.0)
        ok = wide & (tol < 0.125) & (magnitude < 1e300) & (s < 1e300) & (width > 0)
        state[j] = ESTIMATE if ok else (REDO if wide else FLAT)
        step[j] = width if ok else 0.0
        scale[j] = s if ok else 0.0
        offset[j] = tol - low * s if ok else 0.5
    return True


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
    step, scale, offset = np.zeros(c), np.zeros(c), np.full(c, 0.5)
    if not _range_bins(p, q, start, cmin, cmax, bins, lo, hi, state, step, scale, offset):
        return False
    words = np.empty((3, c), np.uint64)
    _count_words(p, start, lo, step, scale, offset, bins - 1, words, counts_p)
    _count_words(q, start, lo, step, scale, offset, bins - 1, words, counts_q)
    _sum_terms(counts_p, counts_q, table, score)
    return True


@numba.njit(nogil=True, cache=True)
def _term(counts_p: np.ndarray, counts_q: np.ndarray, flat: np.ndarray, n_q: int, k: int,
          out: np.ndarray, add: bool) -> None:
    """Set (or add) the term of bin k of every example (k = bins: the empty spare slot)."""
    if k == counts_p.shape[0]:
        for j in range(out.shape[0]):
            out[j] = out[j] + flat[0] if add else flat[0]
        return
    cp, cq = counts_p[k], counts_q[k]
    for j in range(out.shape[0]):
        t = flat[cp[j] * n_q + cq[j]]
        out[j] = out[j] + t if add else t


@numba.njit(nogil=True, cache=True)
def _sum_terms(counts_p: np.ndarray, counts_q: np.ndarray, table: np.ndarray,
               score: np.ndarray) -> None:
    """Per example, the sum of the terms of its ``bins + 1`` slots (the last one empty) in
    numpy's pairwise order (``ndarray.sum`` of a row: eight accumulators from 8 terms on), so
    that scores equal those of ``take(...).sum(1)`` bit for bit."""
    flat, n_q, n = table.ravel(), table.shape[1], counts_p.shape[0] + 1
    if n < 8:
        score[:] = 0.0
        for k in range(n):
            _term(counts_p, counts_q, flat, n_q, k, score, True)
        return
    r = np.empty((8, score.shape[0]))
    for m in range(8):
        _term(counts_p, counts_q, flat, n_q, m, r[m], False)
    i = 8
    while i < n - n % 8:
        for m in range(8):
            _term(counts_p, counts_q, flat, n_q, i + m, r[m], True)
        i += 8
    for j in range(score.shape[0]):
        score[j] = ((r[0, j] + r[1, j]) + (r[2, j] + r[3, j])) + ((r[4, j] + r[5, j])
                                                                  + (r[6, j] + r[7, j]))
    for k in range(i, n):
        _term(counts_p, counts_q, flat, n_q, k, score, True)


# --------------------------------------------------------------------------------------------
# Half-splits for intervals: every value binned once on its example's full joint range, then the
# halves of many random splits counted from those bins.


@numba.njit(nogil=True, cache=True)
def _slots_of(x: np.ndarray, start: int, lo: np.ndarray, step: np.ndarray, scale: np.ndarray,
              offset: np.ndarray, kmax: int, out: np.ndarray) -> None:
    c, top = lo.shape[0], np.float64(kmax)
    for r in range(x.shape[0]):
        row, to = x[r, start: start + c], out[r, start: start + c]
        for j in range(c):
            to[j] = np.uint8(_bin(np.float64(row[j]), lo[j], step[j], scale[j], offset[j], top))


@numba.njit(nogil=True, cache=True)
def histogram_slots(p: np.ndarray, q: np.ndarray, start: int, cmin: float, cmax: float,
                    bins: int, lo: np.ndarray, hi: np.ndarray, state: np.ndarray,
                    slots_p: np.ndarray, slots_q: np.ndarray) -> bool:
    """The bin (``numpy.histogram``'s, on the joint range of both samples clipped to ``[cmin,
    cmax]``; bins <= 255) of every value of the examples ``start ... start + len(lo)``, into
    ``slots_p`` and ``slots_q`` (uint8, the shape of ``p`` and ``q``); ``lo``, ``hi`` and
    ``state`` as in ``histogram_chunk`` (redo examples are left to the caller). False if any
    value is nan."""
    c = lo.shape[0]
    step, scale, offset = np.zeros(c), np.zeros(c), np.full(c, 0.5)
    if not _range_bins(p, q, start, cmin, cmax, bins, lo, hi, state, step, scale, offset):
        return False
    _slots_of(p, start, lo, step, scale, offset, bins - 1, slots_p)
    _slots_of(q, start, lo, step, scale, offset, bins - 1, slots_q)
    return True


@numba.njit(nogil=True, cache=True)
def _add_rows(slots: np.ndarray, rows: np.ndarray, start: int, words: np.ndarray,
              counts: np.ndarray) -> None:
    """Add to ``counts`` (bins <= 20, c) the bin counts of the given rows of ``slots[:, start:
    start + c]``, through 8-bit counters packed in five 32-bit words per example (32-bit lanes:
    twice as many per vector instruction as 64-bit ones)."""
    c = counts.shape[1]
    w0, w1, w2, w3, w4 = words[0], words[1], words[2], words[3], words[4]
    one, zero, two, three = np.uint32(1), np.uint32(0), np.uint32(2), np.uint32(3)
    for i0 in range(0, rows.shape[0], 255):
        words[:] = zero
        for i in range(i0, min(i0 + 255, rows.shape[0])):
            row = slots[rows[i], start: start + c]
            for j in range(c):
                k = np.uint32(row[j])
                bit = one << ((k & three) << three)
                w = k >> two
                w0[j] += bit if w == 0 else zero
                w1[j] += bit if w == 1 else zero
                w2[j] += bit if w == 2 else zero
                w3[j] += bit if w == 3 else zero
                w4[j] += bit if w == 4 else zero
        for k in range(counts.shape[0]):
            word, shift, to = words[k >> 2], np.uint32((k & 3) << 3), counts[k]
            for j in range(c):
                to[j] += np.int32((word[j] >> shift) & np.uint32(255))


@numba.njit(nogil=True, cache=True)
def split_scores(slots_p: np.ndarray, slots_q: np.ndarray, start: int, c: int,
                 halves_p: np.ndarray, halves_q: np.ndarray, table: np.ndarray,
                 out: np.ndarray) -> None:
    """Scores of one half of every split, for the examples ``start ... start + c``.

    ``halves_p`` ``(n_splits, h_p)`` holds the rows of ``slots_p`` in the half of each split
    (likewise ``halves_q``); ``table[count_p, count_q]`` is the term of one bin at ``h_p`` vs
    ``h_q`` models. ``out[s, start: start + c]`` receives the score of the half of split ``s``:
    the sum, in float32, of the terms of its counts on the examples' full-sample bins (bins =
    ``slots`` values, at most 20).
    """
    bins = 20
    words = np.empty((5, c), np.uint32)
    cp, cq = np.empty((bins, c), np.int32), np.empty((bins, c), np.int32)
    flat, n_q = table.ravel().astype(np.float32), np.int32(table.shape[1])
    for s in range(halves_p.shape[0]):
        cp[:], cq[:] = 0, 0
        _add_rows(slots_p, halves_p[s], start, words, cp)
        _add_rows(slots_q, halves_q[s], start, words, cq)
        cp *= n_q
        cp += cq
        score = out[s, start: start + c]
        score[:] = np.float32(0)
        for k in range(bins):  # empty bins add table[0, 0] = 0
            index = cp[k]
            for j in range(c):
                score[j] += flat[index[j]]

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

"""The compiled loops of the two-sample Kolmogorov-Smirnov statistic and its exact p-value.

Compiled by numba on first use (cached on disk next to this file); they release the GIL.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True, inline="always")
def _merge_step(row_u, row_o, i, k, a, b, n, m, best):
    """One step of the merge: take the smaller head (``a`` of ``row_u`` or ``b`` of
    ``row_o``), and where the next merged value differs, the gap ``|i m - k n|``."""
    take_u = np.int64(a <= b)
    v = min(a, b)
    i += take_u
    k += 1 - take_u
    a = row_u[i]
    b = row_o[k]
    best = max(best, abs(i * m - k * n) * np.int64(min(a, b) != v))
    return i, k, a, b, best


@numba.njit(nogil=True, cache=True)
def ks_sorted_rows(us: np.ndarray, os: np.ndarray, out: np.ndarray) -> None:
    """``out[r]`` = sup |F_u - F_o| of the rows ``us[r, :-1]`` (n values) and ``os[r, :-1]``
    (m values), each sorted ascending with a final ``+inf`` sentinel and finite values.

    One merge of the two rows, without branches on the data (they would be mispredicted half
    the time), four rows at a time (their steps overlap in the processor); the gap is taken
    only where the next merged value differs, so ties between and within the samples are
    stepped over together."""
    n, m = us.shape[1] - 1, os.shape[1] - 1
    rows = us.shape[0]
    r = 0
    while r + 4 <= rows:
        u0, u1, u2, u3 = us[r], us[r + 1], us[r + 2], us[r + 3]
        o0, o1, o2, o3 = os[r], os[r + 1], os[r + 2], os[r + 3]
        i0 = i1 = i2 = i3 = k0 = k1 = k2 = k3 = 0
        g0 = g1 = g2 = g3 = 0
        a0, a1, a2, a3 = u0[0], u1[0], u2[0], u3[0]
        b0, b1, b2, b3 = o0[0], o1[0], o2[0], o3[0]
        for _ in range(n + m):
            i0, k0, a0, b0, g0 = _merge_step(u0, o0, i0, k0, a0, b0, n, m, g0)
            i1, k1, a1, b1, g1 = _merge_step(u1, o1, i1, k1, a1, b1, n, m, g1)
            i2, k2, a2, b2, g2 = _merge_step(u2, o2, i2, k2, a2, b2, n, m, g2)
            i3, k3, a3, b3, g3 = _merge_step(u3, o3, i3, k3, a3, b3, n, m, g3)
        out[r], out[r + 1] = g0 / (n * m), g1 / (n * m)
        out[r + 2], out[r + 3] = g2 / (n * m), g3 / (n * m)
        r += 4
    while r < rows:
        i = k = g = 0
        a, b = us[r, 0], os[r, 0]
        for _ in range(n + m):
            i, k, a, b, g = _merge_step(us[r], os[r], i, k, a, b, n, m, g)
        out[r] = g / (n * m)
        r += 1


@numba.njit(nogil=True, cache=True)
def ks_exact_sf(c: int, n: int, m: int) -> float:
    """P(D >= c / (n m)) for the two-sample statistic D of samples of sizes n and m without
    ties: one minus the probability that a uniformly random lattice path from (0, 0) to
    (n, m) keeps |i m - j n| < c at every point (Hodges 1958), by dynamic programming over
    step probabilities (no large counts)."""
    if c <= 0:
        return 1.0
    inside = np.zeros(m + 1)
    inside[0] = 1.0
    for j in range(1, m + 1):  # first row: i = 0
        inside[j] = inside[j - 1] * (m - j + 1) / (n + m - j + 1) if j * n < c else 0.0
    for i in range(1, n + 1):
        for j in range(m + 1):
            if abs(i * m - j * n) >= c:
                inside[j] = 0.0
                continue
            # arrive from (i - 1, j) by a step in i, or from (i, j - 1) by a step in j
            left = n - i + 1 + m - j
            p = inside[j] * (n - i + 1) / left
            if j > 0:
                below = n - i + m - j + 1
                p += inside[j - 1] * (m - j + 1) / below
            inside[j] = p
    return min(max(1.0 - inside[m], 0.0), 1.0)

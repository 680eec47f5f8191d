"""The compiled loops of the two-sample Kolmogorov-Smirnov statistic and its exact p-value.

Compiled by numba on first use (cached on disk next to this file); they release the GIL.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def ks_sorted_rows(us: np.ndarray, os: np.ndarray, out: np.ndarray) -> None:
    """``out[r]`` = sup |F_u - F_o| of the rows ``us[r, :-1]`` (n values) and ``os[r, :-1]``
    (m values), each sorted ascending with a final ``+inf`` sentinel and finite values.

    One merge of the two rows, without branches on the data (they would be mispredicted half
    the time); the gap is taken only where the next merged value differs, so ties between
    and within the samples are stepped over together."""
    n, m = us.shape[1] - 1, os.shape[1] - 1
    for r in range(us.shape[0]):
        i = 0
        k = 0
        best = 0
        a = us[r, 0]
        b = os[r, 0]
        for _ in range(n + m):
            take_u = np.int64(a <= b)
            v = min(a, b)
            i += take_u
            k += 1 - take_u
            a = us[r, i]
            b = os[r, k]
            best = max(best, abs(i * m - k * n) * np.int64(min(a, b) != v))
        out[r] = best / (n * m)


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

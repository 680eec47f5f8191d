"""The compiled loop of U-LiRA (:mod:`klom_utils.membership`): per example, Gaussians fitted
to one half of each side's models, the other halves classified by the likelihood ratio.

Compiled by numba on first use (cached on disk next to this file); it releases the GIL.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def _fit(x: np.ndarray, rows: np.ndarray, floor: float, mean: np.ndarray,
         var: np.ndarray) -> None:
    """Per column of ``x[rows]``: the mean and the unbiased variance, floored at ``floor *
    (1 + |mean|)**2``, in float64 (rows in the outer loop: contiguous reads)."""
    mean[:] = 0.0
    for r in rows:
        row = x[r]
        for j in range(mean.shape[0]):
            mean[j] += np.float64(row[j])
    mean /= len(rows)
    var[:] = 0.0
    for r in rows:
        row = x[r]
        for j in range(mean.shape[0]):
            d = np.float64(row[j]) - mean[j]
            var[j] += d * d
    for j in range(mean.shape[0]):
        v = var[j] / (len(rows) - 1)
        lowest = floor * (1.0 + abs(mean[j])) ** 2
        var[j] = v if v > lowest else lowest


@numba.njit(nogil=True, cache=True)
def _right(x: np.ndarray, rows: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray,
           sign: float, halves: np.ndarray) -> None:
    """Set ``halves`` (per column) to twice the number of the models ``x[rows]`` whose
    log-likelihood ratio ``(a x + b) x + c`` has the sign ``sign``, ties counted once (half):
    integers, so that shares come out exact."""
    halves[:] = 0
    for r in rows:
        row = x[r]
        for j in range(halves.shape[0]):
            v = np.float64(row[j])
            llr = sign * ((a[j] * v + b[j]) * v + c[j])
            halves[j] += (2 if llr > 0 else 0) + (1 if llr == 0 else 0)


@numba.njit(nogil=True, cache=True)
def ulira_columns(u: np.ndarray, o: np.ndarray, perms_u: np.ndarray, perms_o: np.ndarray,
                  floor: float, total: np.ndarray) -> None:
    """Add to ``total`` (per column) the balanced accuracy of every split (one row of
    ``perms_u`` and ``perms_o`` each: the first half of the permutation, then the second,
    fits) and both assignments of its halves: ``(right_u + right_o) / 2``."""
    c = total.shape[0]
    mu, vu, mo, vo = np.empty(c), np.empty(c), np.empty(c), np.empty(c)
    a, b, k = np.empty(c), np.empty(c), np.empty(c)
    hu, ho = perms_u.shape[1] // 2, perms_o.shape[1] // 2
    right_u, right_o = np.empty(c, np.int64), np.empty(c, np.int64)
    for s in range(perms_u.shape[0]):
        halves_u = (perms_u[s, :hu], perms_u[s, hu:])
        halves_o = (perms_o[s, :ho], perms_o[s, ho:])
        for fit in range(2):
            _fit(u, halves_u[fit], floor, mu, vu)
            _fit(o, halves_o[fit], floor, mo, vo)
            for j in range(c):
                a[j] = -0.5 * (1 / vu[j] - 1 / vo[j])
                b[j] = mu[j] / vu[j] - mo[j] / vo[j]
                k[j] = -0.5 * (mu[j] ** 2 / vu[j] - mo[j] ** 2 / vo[j]) - 0.5 * np.log(vu[j] / vo[j])
            test_u, test_o = halves_u[1 - fit], halves_o[1 - fit]
            _right(u, test_u, a, b, k, 1.0, right_u)
            _right(o, test_o, a, b, k, -1.0, right_o)
            for j in range(c):
                total[j] += (right_u[j] / (2 * len(test_u)) + right_o[j] / (2 * len(test_o))) / 2

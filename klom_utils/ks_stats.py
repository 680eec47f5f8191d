"""Kolmogorov-Smirnov views of unlearned against retrained models.

* :func:`ks_statistics`: per example, the two-sample KS statistic ``D`` (largest gap between
  the empirical CDFs) of the unlearned models' margins and the oracles' margins. It lies in
  ``[0, 1]``: 0 when the two samples' CDFs agree everywhere, 1 when they do not overlap (the
  cap). Summarised per group like KLOM (95th percentile).
* :func:`model_level_ks`: the TOFU-style "forget quality" p-value. TOFU (Maini et al. 2024)
  compares the per-example values of *one* unlearned and *one* retrained model across the
  forget set with a KS test; with a population of models per side both of its samples come
  from the same examples, so that test's p-values are not uniform when nothing differs.
  Here each model gives one value, its mean margin over the forget set, and the KS test
  compares the ``n_u`` unlearned models' values with the ``n_o`` oracles' (independent
  draws): an exact two-sample p-value, uniform (up to its discreteness) when the unlearned
  models are distributed as retrained ones. Small p: the unlearned models are told apart.
"""

from __future__ import annotations

import math

import numpy as np

from ._typing import ArrayLike
from .metric import in_column_chunks, model_arrays

__all__ = ["ks_statistics", "ks_pvalue", "model_level_ks"]

_CHUNK_COLUMNS = 4096
#: Largest ``n * m`` for the exact p-value (dynamic programming over ``n * m`` cells).
EXACT_CELLS = 10**8


def _kernels():
    """The compiled loops (numba: heavy, so imported on first use, here only)."""
    from . import ks_kernels

    return ks_kernels


def ks_statistics(unlearned: ArrayLike, oracle: ArrayLike) -> np.ndarray:
    """Per example (column), the two-sample KS statistic of the unlearned models' margins
    ``(n_u, n_examples)`` and the oracles' ``(n_o, n_examples)``; float64, in ``[0, 1]``."""
    u, o = model_arrays(unlearned, oracle)
    if u.shape[1] != o.shape[1]:
        raise ValueError(f"unlearned margins cover {u.shape[1]} examples, oracle margins "
                         f"{o.shape[1]}: both must cover the same examples")
    for name, a in (("unlearned", u), ("oracle", o)):
        if np.isnan(a).any():
            col = int(np.argwhere(np.isnan(a))[0][1])
            raise ValueError(f"{name} margins hold nan (first at example {col}): the KS "
                             "statistic needs numbers")
    if u.dtype != o.dtype:
        u, o = u.astype(np.float64), o.astype(np.float64)
    kernel = _kernels().ks_sorted_rows
    out = np.empty(u.shape[1])

    in_column_chunks(u.shape[1], _CHUNK_COLUMNS, lambda cols: kernel(
        _sorted_rows(u[:, cols]), _sorted_rows(o[:, cols]), out[cols]))
    return out


def _sorted_rows(x: np.ndarray) -> np.ndarray:
    """The columns of ``x`` as sorted rows, each ending in a ``+inf`` sentinel (infinite
    margins become the dtype's largest finite values: the order is kept)."""
    rows = np.empty((x.shape[1], x.shape[0] + 1), x.dtype)
    rows[:, :-1] = x.T
    if not np.isfinite(rows[:, :-1]).all():
        big = np.finfo(x.dtype).max
        np.clip(rows[:, :-1], -big, big, out=rows[:, :-1])
    rows[:, -1] = np.inf
    rows.sort(axis=1)
    return rows


def ks_pvalue(d: float, n: int, m: int) -> float:
    """Two-sided p-value ``P(D >= d)`` of the two-sample KS statistic ``d`` for samples of
    sizes ``n`` and ``m`` without ties: exact where ``n * m <= 1e8`` (computed as one minus
    a probability, so values below about 1e-15 are rounding), else the asymptotic Kolmogorov
    distribution with Stephens' small-sample correction."""
    if not 0 <= d <= 1:
        raise ValueError(f"d must be a KS statistic in [0, 1], got {d!r}")
    if n < 1 or m < 1:
        raise ValueError(f"sample sizes must be positive, got n={n!r}, m={m!r}")
    if n * m <= EXACT_CELLS:
        c = int(math.ceil(d * n * m - 1e-7 * max(n, m)))  # d is a multiple of 1/lcm(n, m)
        return float(_kernels().ks_exact_sf(c, n, m))
    ne = n * m / (n + m)
    lam = (math.sqrt(ne) + 0.12 + 0.11 / math.sqrt(ne)) * d
    if lam < 0.2:
        return 1.0
    return float(min(max(2 * sum((-1) ** (k - 1) * math.exp(-2 * (k * lam) ** 2)
                                 for k in range(1, 101)), 0.0), 1.0))


def model_level_ks(unlearned: ArrayLike, oracle: ArrayLike, columns: ArrayLike) -> dict[str, float]:
    """The KS test of the models' mean margins over ``columns`` (for example the forget set):
    ``{"statistic", "p_value", "n_unlearned", "n_oracles"}``. See the module docstring."""
    u, o = model_arrays(unlearned, oracle)
    cols = np.asarray(columns)
    mu, mo = u[:, cols].mean(axis=1, dtype=np.float64), o[:, cols].mean(axis=1, dtype=np.float64)
    d = float(ks_statistics(mu[:, None], mo[:, None])[0])
    return {"statistic": d, "p_value": ks_pvalue(d, len(mu), len(mo)),
            "n_unlearned": len(mu), "n_oracles": len(mo)}

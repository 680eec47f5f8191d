"""The compiled loop of the accuracy lens (:mod:`klom_utils.accuracy_gaps`): per model, how
many forget, train and validation examples it gets right, in one pass over its row.

Compiled by numba on first use (cached on disk next to this file); it releases the GIL.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def right_counts(x: np.ndarray, forget: np.ndarray, n_train: int, out: np.ndarray) -> None:
    """Per row ``r`` of ``x`` (booleans: True is right; margins: positive is right),
    ``out[r]`` = (right among the columns ``forget``, among the columns before ``n_train``,
    among the columns from ``n_train`` on)."""
    for r in range(x.shape[0]):
        row = x[r]
        train = 0
        for j in range(n_train):  # branch-free: vector instructions
            train += 1 if row[j] > 0 else 0
        val = 0
        for j in range(n_train, row.shape[0]):
            val += 1 if row[j] > 0 else 0
        lost = 0
        for i in forget:
            lost += 1 if row[i] > 0 else 0
        out[r, 0], out[r, 1], out[r, 2] = lost, train, val

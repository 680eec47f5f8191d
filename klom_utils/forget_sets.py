"""Forget sets: checking them against a train split, the DIGITS sets of the embedded default,
and reading a forget set from a store.

DIGITS forget sets are written into a store once (atomically, under a lock) when the store is
created or trained, never while scoring.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ._typing import ArrayLike
from .claims import store_lock
from .data import SplitsLike, TensorDataset, load_digits
from .layout import forget_set_folder
from .store import Store


def retain_mask(n_train: int, forget: ArrayLike) -> np.ndarray:
    """Boolean mask over the train split: True for examples not in ``forget``."""
    forget = check_forget_indices(forget, n_train)
    mask = np.ones(int(n_train), dtype=bool)
    mask[forget] = False
    return mask


def check_forget_indices(forget: ArrayLike, n_train: int) -> np.ndarray:
    """``forget`` as an int64 array, checked to be unique indices into a train split of n."""
    forget = np.asarray(forget)
    if forget.ndim != 1 or (forget.size and not np.issubdtype(forget.dtype, np.integer)):
        raise ValueError(f"forget set must be a 1-D array of integer indices, got dtype "
                         f"{forget.dtype} and shape {forget.shape}")
    forget = forget.astype(np.int64)
    bad = forget[(forget < 0) | (forget >= n_train)]
    if bad.size:
        raise ValueError(f"forget set index {int(bad[0])} is outside the train split "
                         f"[0, {n_train})")
    if np.unique(forget).size != forget.size:
        raise ValueError("forget set has repeated indices")
    return forget


def _hash_rank(tag: str, n: int) -> np.ndarray:
    """Indices 0..n-1 in a pseudo-random order fixed by ``tag`` (sha256, version independent)."""
    keys = [hashlib.sha256(f"{tag}/{i}".encode()).digest()[:8] for i in range(n)]
    return np.array(sorted(range(n), key=keys.__getitem__), dtype=np.int64)


DIGITS_SUBPOPULATION_ANCHOR = 1  # train image 1, a "1"


def digits_forget_sets(dataset: TensorDataset | None = None) -> dict[int, tuple[np.ndarray, str]]:
    """The DIGITS forget sets: ``{k: (indices, description)}``, indices sorted int64.

    They mirror the kinds of the paper's CIFAR-10 sets: a small and a larger random set, and a
    sub-population (the nearest neighbours of one image within its class, as CIFAR-10 set 10 is
    in CLIP space). Random sets are drawn by ranking the indices with a hash of a tag.

    They are chosen so that doing nothing stays clearly distinguishable from the oracles (the
    forget set's KLOM well above the retain set's, with the default models). On DIGITS only about
    5% of the train images are memorised (most are predicted as well from their neighbours), so
    most random sets of 10 are not: set 1 uses the first tag (of 0..5) whose set is.
    """
    data = dataset if dataset is not None else load_digits()
    if data.name != "DIGITS":
        raise ValueError(f"digits forget sets need the DIGITS dataset, got {data.name!r}")
    n = data.n_train
    x = data.train_x.reshape(n, -1).numpy().astype(np.float64)
    y = data.train_y.numpy()
    anchor = DIGITS_SUBPOPULATION_ANCHOR
    same = np.flatnonzero(y == y[anchor])
    dist = ((x[same] - x[anchor]) ** 2).sum(1)
    nearest = same[np.argsort(dist, kind="stable")[:50]]
    return {
        1: (np.sort(_hash_rank("DIGITS/forget_set_1/2", n)[:10]),
            "10 random train images (small random set, like CIFAR-10 set 1; hash tag "
            "DIGITS/forget_set_1/2, the first of the tags tried whose set the models memorise)"),
        2: (np.sort(_hash_rank("DIGITS/forget_set_2", n)[:50]),
            "50 random train images (larger random set, about 3.5% of the train split)"),
        3: (np.sort(nearest),
            f"sub-population: the 50 train images of digit {int(y[anchor])} nearest in pixel "
            f"space to train image {anchor} (itself included)"),
    }


def write_digits_forget_sets(store: Store, dataset: TensorDataset | None = None,
                             overwrite: bool = False) -> list[int]:
    """Write the DIGITS forget sets (with descriptions) into ``store``; returns the ks written.

    Sets already in the store are kept unless ``overwrite``.
    """
    have = set(store.forget_set_ids("DIGITS"))
    written = []
    for k, (indices, description) in digits_forget_sets(dataset).items():
        if overwrite or k not in have:
            store.write_forget_set("DIGITS", k, indices, description=description)
            written.append(k)
    return written


def ensure_digits_forget_sets(store: Store, dataset: TensorDataset | None = None) -> None:
    """Write the DIGITS forget sets the store lacks, once: under a lock, so that job-array
    tasks starting together neither write them twice nor read a half-written set."""
    wanted = set(digits_forget_sets(dataset))
    if wanted <= set(store.forget_set_ids("DIGITS")):
        return
    with store_lock(store.root, "forget_set_indices_DIGITS"):
        write_digits_forget_sets(store, dataset)  # only the missing ones, each atomically


def forget_indices(store: Store, dataset: SplitsLike, k: int) -> np.ndarray:
    """Forget set ``k`` of ``dataset`` from the store, checked against the train split.

    DIGITS forget sets are written into the store first if it has none.
    """
    if isinstance(dataset, TensorDataset) and dataset.name == "DIGITS":
        ensure_digits_forget_sets(store, dataset)
    try:
        indices = store.forget_set(dataset.name, k)
    except FileNotFoundError as err:
        hint = (f"; download them with klom_utils.download('{forget_set_folder(dataset.name)}', "
                "local_dir=<the store>)" if dataset.name in ("CIFAR10", "LIVING17") else "")
        raise FileNotFoundError(f"{err}{hint}") from None
    try:
        return check_forget_indices(indices, dataset.n_train)
    except ValueError as err:
        raise ValueError(f"forget set {k} of {dataset.name}: {err}") from None

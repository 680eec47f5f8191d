"""A stand-in for EasyDUB's dataset (easydub/EasyDUB-dataset): random margins in its exact layout
(forget_sets/cifar10/, margins/cifar10/{pretrain,oracle}/...), at CIFAR-10's split sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_TRAIN, N_VAL = 50_000, 10_000
FORGET_SETS = {1: 10, 2: 100}


def forget_set(k: int) -> np.ndarray:
    """Forget set ``k``: unsorted (as CIFAR-10 set 10 is), so that column order matters."""
    return np.random.default_rng(100 + k).choice(N_TRAIN, FORGET_SETS[k], replace=False)


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)


def full_margins(kind: str, k: int, model: int) -> np.ndarray:
    """Margins (train then val) of one model: pretrain models memorise the forget sets (high
    margins there), oracles do not; retain and val differ by a small shift between the two."""
    rng = np.random.default_rng([0 if kind == "pretrain" else k, model])
    m = rng.normal(3.0, 1.5, N_TRAIN + N_VAL).astype(np.float32)
    if kind == "pretrain":
        m[:N_TRAIN] += 0.3
        for f in FORGET_SETS:
            m[forget_set(f)] = rng.normal(8.0, 0.5, FORGET_SETS[f])
    else:
        m[forget_set(k)] = rng.normal(-1.0, 2.0, FORGET_SETS[k])
    return m


def write_easydub(root: Path, n_models: int, epoch: int = 23) -> Path:
    """Write the stand-in under ``root`` as EasyDUB's code reads it; returns ``root``."""
    base = root / "margins" / "cifar10"
    for k in FORGET_SETS:
        _save(root / "forget_sets" / "cifar10" / f"forget_set_{k}.npy", forget_set(k))
    name = f"id_{{}}_epoch_{epoch}.npy"
    for i in range(n_models):
        m = full_margins("pretrain", 0, i)
        _save(base / "pretrain" / "retain" / "resnet9" / name.format(i), m[:N_TRAIN])
        _save(base / "pretrain" / "val" / "resnet9" / name.format(i), m[N_TRAIN:])
        for k in FORGET_SETS:
            _save(base / "pretrain" / f"forget_{k}" / "resnet9" / name.format(i), m[forget_set(k)])
            o = full_margins("oracle", k, i)
            keep = np.ones(N_TRAIN, dtype=bool)
            keep[forget_set(k)] = False
            folder = base / "oracle" / f"forget_{k}"
            _save(folder / "retain" / "resnet9" / name.format(i), o[:N_TRAIN][keep])
            _save(folder / "forget" / "resnet9" / name.format(i), o[forget_set(k)])
            _save(folder / "val" / "resnet9" / name.format(i), o[N_TRAIN:])
    return root

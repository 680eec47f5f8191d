"""EasyDUB's dataset (``easydub/EasyDUB-dataset``) read through the store's folder names.

EasyDUB keeps per-model margins of CIFAR-10 ResNet-9 models (no logits, no checkpoints)::

    forget_sets/cifar10/forget_set_<f>.npy
    margins/cifar10/pretrain/{retain,val}/resnet9/id_<k>_epoch_<e>.npy       (50000,) / (10000,)
    margins/cifar10/pretrain/forget_<f>/resnet9/id_<k>_epoch_<e>.npy        (|F_f|,)
    margins/cifar10/oracle/forget_<f>/{retain,forget,val}/resnet9/id_<k>_epoch_<e>.npy

:class:`EasyDUBView` answers for the store's folder names: ``full_models/CIFAR10`` is the
pretrain models, ``oracles/CIFAR10/forget_set_<f>`` the oracles of forget set ``f``, and
``unlearned/CIFAR10/do_nothing/forget_set_<f>`` the pretrain models again (doing nothing).
Train margins span the 50,000 train images in their order: the pretrain ``retain`` arrays already
do; an oracle's ``retain`` array omits the forget columns, so its values go to the columns not in
``forget_set_<f>`` (ascending) and its ``forget`` array to the forget set's columns, in the order
of the forget-set file. The same layout with another dataset's folder (``margins/digits/...``,
store name ``DIGITS``) and another architecture's (the one folder below each split) is read alike;
:func:`export` writes a store's margins in it (a stand-in of EasyDUB's dataset, or a population to
share in its format).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from .files import load_npy, save_npy
from .layout import FORGET_RE, check_split, full_models_folder, oracle_folder

REPO_ID = "easydub/EasyDUB-dataset"
#: Its top-level folders (the code also puts CIFAR-10's images under ``data/`` when it trains).
TOP_FOLDERS = ("margins", "forget_sets")
#: The store name of the dataset it holds, and its folder name there.
DATASET, DATASET_DIR = "CIFAR10", "cifar10"
ARCH = "resnet9"
FILE_RE = re.compile(r"^id_(\d+)_epoch_(\d+)\.npy$")
FULL_RE = re.compile(r"^full_models/([A-Z0-9]+)$")
ORACLE_RE = re.compile(r"^oracles/([A-Z0-9]+)/forget_set_(\d+)$")
DO_NOTHING_RE = re.compile(r"^unlearned/([A-Z0-9]+)/do_nothing/forget_set_(\d+)$")
ORACLE_DIR_RE = re.compile(r"^forget_(\d+)$")
DATASET_DIR_RE = re.compile(r"^[a-z0-9]+$")


def _dataset_dirs(root: Path) -> list[str]:
    return sorted({d for top in TOP_FOLDERS for d in _names(root / top)
                   if DATASET_DIR_RE.match(d) and (root / top / d).is_dir()})


def is_easydub(root: str | Path) -> bool:
    """True when ``root`` is laid out like EasyDUB's dataset (its margins or forget sets)."""
    return bool(_dataset_dirs(Path(root)))


class EasyDUBView:
    """The models and forget sets of an EasyDUB dataset at ``root``, by the store's names."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def datasets(self) -> list[str]:
        """Store names (upper case) of the datasets it holds: ``["CIFAR10"]`` for EasyDUB's."""
        return [d.upper() for d in _dataset_dirs(self.root)]

    # ---- folders

    def source(self, folder: str) -> tuple[str, str, int] | None:
        """``(dataset folder, "pretrain", 0)`` or ``(dataset folder, "oracle", f)`` for a store
        folder name this layout answers."""
        folder = folder.strip("/")
        m = FULL_RE.match(folder) or DO_NOTHING_RE.match(folder)
        if m:
            return m.group(1).lower(), "pretrain", 0
        m = ORACLE_RE.match(folder)
        return (m.group(1).lower(), "oracle", int(m.group(2))) if m else None

    def physical(self, folder: str) -> Path | None:
        """The folder of EasyDUB's files behind a store folder name (None: not one of them)."""
        source = self.source(folder)
        if source is None:
            return None
        dataset, kind, k = source
        base = self.root / "margins" / dataset
        return base / "pretrain" if kind == "pretrain" else base / "oracle" / f"forget_{k}"

    def holds(self, folder: str) -> bool:
        path = self.physical(folder)
        return path is not None and path.is_dir()

    def folders(self) -> list[str]:
        """Store names of the model folders present: per dataset the full models, then the oracles."""
        out = []
        for name in self.datasets():
            base = self.root / "margins" / name.lower()
            out += [full_models_folder(name)] if (base / "pretrain").is_dir() else []
            ks = sorted(int(m.group(1)) for m in map(ORACLE_DIR_RE.match, _names(base / "oracle")) if m)
            out += [oracle_folder(name, k) for k in ks]
        return out

    # ---- models

    def _parts(self, folder: str, split: str) -> list[Path]:
        """The folders of per-model files that make ``split``'s margins of ``folder``."""
        base = self.physical(folder)
        if base is None:
            raise ValueError(f"{folder!r} is not a folder of EasyDUB's dataset")
        if check_split(split) == "val":
            return [_arch(base / "val")]
        return [_arch(base / "retain")] + ([] if base.name == "pretrain" else [_arch(base / "forget")])

    @staticmethod
    def _files(part: Path) -> dict[int, Path]:
        """model id → its file in ``part`` (the latest epoch where several are saved)."""
        best: dict[int, tuple[int, Path]] = {}
        for m in map(FILE_RE.match, _names(part)):
            if m:
                i, ep = int(m.group(1)), int(m.group(2))
                if ep >= best.get(i, (-1, part))[0]:
                    best[i] = (ep, part / m.group(0))
        return {i: p for i, (_, p) in best.items()}

    def model_ids(self, folder: str) -> list[int]:
        """Ids with any file in ``folder`` (sorted)."""
        ids: set[int] = set()
        for split in ("train", "val"):
            for part in self._parts(folder, split):
                ids |= set(self._files(part))
        return sorted(ids)

    def complete_model_ids(self, folder: str) -> list[int]:
        """Ids with every file that train and val margins need."""
        sets = [set(self._files(part)) for s in ("train", "val") for part in self._parts(folder, s)]
        return sorted(set.intersection(*sets)) if sets else []

    def margins(self, folder: str, split: str, model_ids: Sequence[int] | None = None) -> np.ndarray:
        """float32 ``(n_models, n_examples)``; train margins span every train image (see the
        module docstring). ``model_ids`` None: every complete model."""
        ids = self.complete_model_ids(folder) if model_ids is None else [int(i) for i in model_ids]
        if not ids:
            raise FileNotFoundError(f"{folder!r} ({self.physical(folder)}) holds no complete model")
        parts = [self._files(p) for p in self._parts(folder, split)]
        for part, files in zip(self._parts(folder, split), parts):
            missing = [i for i in ids if i not in files]
            if missing:
                raise FileNotFoundError(f"no margins of models {missing[:10]} in {part}")
        rows = [np.stack([load_npy(files[i]) for i in ids]).astype(np.float32, copy=False)
                for files in parts]
        if any(r.ndim != 2 for r in rows):
            raise ValueError(f"{folder!r}: EasyDUB margins files must be 1-D arrays")
        if len(rows) == 1:
            return rows[0]
        return self._scatter(folder, *rows)

    def _scatter(self, folder: str, retain: np.ndarray, forget: np.ndarray) -> np.ndarray:
        """Oracle retain and forget columns put back at their train indices."""
        source = self.source(folder)
        dataset, _, k = source if source else (DATASET_DIR, "", 0)
        indices = self.forget_set(k, dataset.upper())
        n_train = retain.shape[1] + len(indices)
        if forget.shape[1] != len(indices) or len(np.unique(indices)) != len(indices) \
                or indices.min() < 0 or indices.max() >= n_train:
            raise ValueError(f"{folder!r}: oracle forget margins have {forget.shape[1]} columns and "
                             f"retain {retain.shape[1]}, which do not fit the {len(indices)} "
                             f"indices of forget_set_{k}.npy into one train split")
        out = np.empty((retain.shape[0], n_train), dtype=np.float32)
        keep = np.ones(n_train, dtype=bool)
        keep[indices] = False
        out[:, keep] = retain
        out[:, indices] = forget
        return out

    # ---- forget sets

    def forget_set_path(self, k: int, dataset: str = DATASET) -> Path:
        return self.root / "forget_sets" / dataset.lower() / f"forget_set_{int(k)}.npy"

    def forget_set(self, k: int, dataset: str = DATASET) -> np.ndarray:
        path = self.forget_set_path(k, dataset)
        if not path.is_file():
            raise FileNotFoundError(f"EasyDUB dataset {str(self.root)!r} has no forget set {k} of "
                                    f"{dataset} (it has: {self.forget_set_ids(dataset) or 'none'})")
        indices = load_npy(path)
        if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(f"{path} holds {indices.dtype} {indices.shape}, expected 1-D integers")
        return indices.astype(np.int64)

    def forget_set_ids(self, dataset: str = DATASET) -> list[int]:
        folder = self.root / "forget_sets" / dataset.lower()
        return sorted(int(m.group(1)) for m in map(FORGET_RE.match, _names(folder)) if m)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _arch(split_folder: Path) -> Path:
    """The architecture's folder below a split's (``resnet9`` in EasyDUB's dataset): the one
    there is; ``resnet9`` where there is none yet."""
    dirs = [d for d in _names(split_folder) if (split_folder / d).is_dir()]
    if len(dirs) > 1:
        raise ValueError(f"{split_folder} holds the margins of several architectures ({dirs}): "
                         "keep one per dataset")
    return split_folder / (dirs[0] if dirs else ARCH)


def export(root: str | Path, dataset: str, arch: str, pretrain: np.ndarray,
           oracles: dict[int, np.ndarray], forget_sets: dict[int, np.ndarray], n_train: int,
           *, epoch: int = 0) -> Path:
    """Write margins (train then val columns, one row per model, ids from 0) in EasyDUB's layout
    under ``root``: the full models as ``pretrain``, ``oracles[k]`` as the oracles of forget set
    ``k`` (each forget set's indices in ``forget_sets``); files are written atomically."""
    base = Path(root) / "margins" / dataset.lower()
    name = f"id_{{}}_epoch_{int(epoch)}.npy"

    def rows(folder: Path, array: np.ndarray) -> None:
        for i, row in enumerate(np.asarray(array, dtype=np.float32)):
            save_npy(folder / arch / name.format(i), row)

    rows(base / "pretrain" / "retain", pretrain[:, :n_train])
    rows(base / "pretrain" / "val", pretrain[:, n_train:])
    for k, indices in forget_sets.items():
        indices = np.asarray(indices, dtype=np.int64)
        save_npy(Path(root) / "forget_sets" / dataset.lower() / f"forget_set_{int(k)}.npy", indices)
        rows(base / "pretrain" / f"forget_{int(k)}", pretrain[:, indices])
        if k in oracles:
            keep = np.ones(n_train, dtype=bool)
            keep[indices] = False
            o = oracles[k]
            rows(base / "oracle" / f"forget_{int(k)}" / "retain", o[:, :n_train][:, keep])
            rows(base / "oracle" / f"forget_{int(k)}" / "forget", o[:, indices])
            rows(base / "oracle" / f"forget_{int(k)}" / "val", o[:, n_train:])
    return Path(root)

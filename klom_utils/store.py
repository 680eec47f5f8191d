"""Model stores: local folders laid out like the Hub dataset ``royrin/KLOM-models``.

A store holds model folders (``full_models/<D>``, ``oracles/<D>/forget_set_<k>``,
``unlearned/<D>/<method>/forget_set_<k>``) with per-model files, and forget sets under
``forget_set_indices/<D>``. A Hub snapshot is a store; so is what ``klom train`` writes. The
folder and file names are in :mod:`klom_utils.layout`; every file is written atomically
(:mod:`klom_utils.files`).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence, Union

import numpy as np

from ._typing import ArrayLike
from .easydub import REPO_ID as EASYDUB_REPO
from .easydub import EasyDUBView, is_easydub
from .files import (
    atomic_write,
    load_npy,
    load_npy_cached,
    load_tensor_cached,
    load_torch,
    load_torch_cached,
    logits_stack,
    save_npy,
    save_torch,
)
from .layout import (
    DOWNLOAD_RECORD,
    EPOCH_LOGITS_RE,
    FORGET_RE,
    KNOWN_SPLIT_SIZES,
    LOGITS_RE,
    MARGINS_RE,
    SPLITS,
    STATE_DICT_RE,
    check_split,
    forget_set_file,
    forget_set_folder,
    logits_name,
    margins_name,
    stacked_margins_name,
    state_dict_name,
)
from .metric import margins

if TYPE_CHECKING:
    import torch

#: A :class:`Store` or the path of one.
StoreLike = Union["Store", str, "os.PathLike[str]"]
#: Labels of a split, or a function that returns them (called only where logits need them).
Labels = Union[ArrayLike, Callable[[], Any], None]
#: The population of folders in the KLOM-models layout (the Hub's, or trained here).
KLOM_MODELS_POPULATION = "royrin/KLOM-models layout"


# -- the store ---------------------------------------------------------------------------------


def open_store(path: str | os.PathLike, *, create: bool = False) -> "Store":
    """Open a folder in the KLOM-models layout (a Hub snapshot or one written here) or in
    EasyDUB's (``easydub/EasyDUB-dataset``, read through the same folder names: see
    :mod:`klom_utils.easydub`).

    With ``create=True`` the folder is made if needed and must be writable.
    """
    root = Path(path).expanduser()
    if create:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise PermissionError(f"cannot create store folder {str(root)!r}: {err}") from err
        if not os.access(root, os.W_OK):
            raise PermissionError(f"store folder {str(root)!r} is not writable")
    elif not root.is_dir():
        raise FileNotFoundError(
            f"no store at {str(root)!r}: expected a folder in the KLOM-models or EasyDUB layout "
            "(download one with klom_utils.download or train one with `klom train`)"
        )
    return Store(root)


def as_store(store: StoreLike) -> "Store":
    """``store`` itself if it is a :class:`Store`, else the store at that path."""
    return store if isinstance(store, Store) else open_store(store)


class RecordMismatchError(ValueError):
    """A folder's record says its models were made with other settings than those asked."""


class Store:
    """A model store rooted at ``root``; see the module docstring for the layout."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        #: EasyDUB's files read by the store's folder names, where the root holds them
        self.easydub = EasyDUBView(self.root) if is_easydub(self.root) else None

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def path(self, relpath: str) -> Path:
        """Absolute path of ``relpath`` inside the store (for a model folder of EasyDUB's
        layout, the folder of its files)."""
        if self._mapped(relpath):
            return self.easydub.physical(relpath)  # type: ignore[union-attr,return-value]
        return self.root / relpath

    def _mapped(self, folder: str) -> bool:
        """True when ``folder`` is read from EasyDUB's files (no folder of that name here)."""
        return self.easydub is not None and not (self.root / folder).is_dir() \
            and self.easydub.holds(folder)

    def population(self, folder: str) -> str:
        """Which population the models of ``folder`` belong to: EasyDUB's dataset or the
        KLOM-models layout (the Hub's ``royrin/KLOM-models`` or models trained here)."""
        return EASYDUB_REPO if self._mapped(folder) else KLOM_MODELS_POPULATION

    def has_logits(self, folder: str) -> bool:
        """True when ``folder`` holds logits files (EasyDUB's dataset holds margins only)."""
        return not self._mapped(folder) and bool(self._logit_files(folder, "train"))

    # ---- listing

    def _folder(self, folder: str) -> Path:
        path = self.path(folder)
        if not path.is_dir():
            raise FileNotFoundError(f"store {str(self.root)!r} has no folder {folder!r}")
        return path

    def files_matching(self, folder: str, pattern: re.Pattern) -> list[re.Match]:
        path = self.root / folder
        if not path.is_dir():
            return []
        return [m for m in map(pattern.match, sorted(os.listdir(path))) if m]

    def folders(self) -> list[str]:
        """Relative paths of every folder that holds model files."""
        found = set()
        for dirpath, _, filenames in os.walk(self.root):
            if any(
                p.match(f)
                for f in filenames
                for p in (MARGINS_RE, LOGITS_RE, EPOCH_LOGITS_RE, STATE_DICT_RE)
            ) or any(f.endswith("_margins_all.pt") for f in filenames):
                found.add(Path(dirpath).relative_to(self.root).as_posix())
        if self.easydub is not None:
            found |= set(self.easydub.folders())
        return sorted(found)

    def _margin_files(self, folder: str, split: str) -> dict[int, dict[int, str]]:
        """model id → epoch → margins file name."""
        out: dict[int, dict[int, str]] = {}
        for m in self.files_matching(folder, MARGINS_RE):
            if m.group(2) == split:
                out.setdefault(int(m.group(1)), {})[int(m.group(3))] = m.group(0)
        return out

    def _logit_files(self, folder: str, split: str) -> dict[int, str]:
        """model id → logits file name (final logits preferred over per-epoch ones)."""
        out: dict[int, str] = {}
        epochs: dict[int, int] = {}
        for m in self.files_matching(folder, EPOCH_LOGITS_RE):
            if m.group(2) == split:
                mid, ep = int(m.group(1)), int(m.group(3))
                if ep >= epochs.get(mid, -1):
                    out[mid], epochs[mid] = m.group(0), ep
        for m in self.files_matching(folder, LOGITS_RE):
            if m.group(1) == split:
                out[int(m.group(2))] = m.group(0)
        return out

    def model_ids(self, folder: str) -> list[int]:
        """Ids of the models that ``folder`` holds any file of (sorted)."""
        self._folder(folder)
        if self._mapped(folder):
            return self.easydub.model_ids(folder)  # type: ignore[union-attr]
        ids = set()
        for split in SPLITS:
            ids |= set(self._margin_files(folder, split)) | set(self._logit_files(folder, split))
        ids |= {int(m.group(1)) for m in self.files_matching(folder, STATE_DICT_RE)}
        if not ids:
            stacked = [s for s in SPLITS if (self.root / folder / stacked_margins_name(s)).exists()]
            if stacked:
                ids = set(range(self._stacked(folder, stacked[0]).shape[0]))
        return sorted(ids)

    def has_model(self, folder: str, model_id: int) -> bool:
        """True when every file :meth:`write_model` writes for ``model_id`` is present."""
        if self._mapped(folder):
            return int(model_id) in self.easydub.complete_model_ids(folder)  # type: ignore[union-attr]
        path = self.root / folder
        margin_ids = [self._margin_files(folder, s).get(int(model_id)) for s in SPLITS]
        return all(margin_ids) and all(
            (path / logits_name(s, model_id)).exists() for s in SPLITS
        )

    def complete_model_ids(self, folder: str) -> list[int]:
        """Ids of the models whose every file :meth:`write_model` writes is present (a few
        listings of the folder, however many models; :meth:`has_model` for a single id)."""
        if not self.path(folder).is_dir():
            return []
        if self._mapped(folder):
            return self.easydub.complete_model_ids(folder)  # type: ignore[union-attr]
        names = {m.group(0) for m in self.files_matching(folder, LOGITS_RE)}
        ids = set.intersection(*(set(self._margin_files(folder, s)) for s in SPLITS))
        return sorted(i for i in ids if all(logits_name(s, i) in names for s in SPLITS))

    def readable_model_ids(self, folder: str) -> list[int]:
        """Ids whose train and val margins can be read: per split a margins or a logits file
        (EasyDUB's folders: every file the margins need)."""
        if not self.path(folder).is_dir():
            return []
        if self._mapped(folder):
            return self.easydub.complete_model_ids(folder)  # type: ignore[union-attr]
        per_split = [set(self._margin_files(folder, s)) | set(self._logit_files(folder, s))
                     for s in SPLITS]
        return sorted(set.intersection(*per_split))

    def logits_of(self, folder: str, split: str, model_ids: Sequence[int]) -> np.ndarray:
        """Logits of several models, float32 ``(len(model_ids), n_examples, n_classes)``
        (the folder is listed once)."""
        self._no_logits_in_easydub(folder)
        files = self._logit_files(folder, check_split(split))
        missing = [i for i in model_ids if int(i) not in files]
        if missing:
            raise FileNotFoundError(f"no {split} logits of models {missing[:10]} in {folder!r}")
        arrays: list = []
        for i in model_ids:
            array = load_tensor_cached(self.root / folder / files[int(i)])
            if arrays and array.shape != arrays[0].shape:
                raise ValueError(f"{folder}/{files[int(i)]} has logits of shape {array.shape}, "
                                 f"the others {arrays[0].shape}: a file of another model or "
                                 "dataset? (delete it and rerun the command that wrote it)")
            arrays.append(array)
        return np.stack(arrays)

    def _no_logits_in_easydub(self, folder: str) -> None:
        if self._mapped(folder):
            raise FileNotFoundError(f"{folder!r} is read from EasyDUB's dataset, which holds "
                                    "margins only (no logits, no checkpoints)")

    # ---- reading

    def _stacked(self, folder: str, split: str) -> np.ndarray:
        value = load_torch(self.root / folder / stacked_margins_name(split))
        array = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
        if array.ndim != 2:
            raise ValueError(
                f"{folder}/{stacked_margins_name(split)} has shape {array.shape}, "
                "expected (n_models, n_examples)"
            )
        return array.astype(np.float32, copy=False)

    def logits(self, folder: str, split: str, model_id: int) -> torch.Tensor:
        """Logits of one model on ``split`` as a float32 torch tensor (n_examples, n_classes)."""
        self._no_logits_in_easydub(folder)
        name = self._logit_files(folder, check_split(split)).get(int(model_id))
        if name is None:
            raise FileNotFoundError(f"no {split} logits of model {model_id} in {folder!r}")
        tensor = load_torch(self.root / folder / name)
        if not hasattr(tensor, "ndim") or tensor.ndim != 2:
            raise ValueError(f"{folder}/{name} does not hold a 2-D logits tensor")
        return tensor.float()

    def margins(
        self,
        folder: str,
        split: str,
        labels: Labels = None,
        model_ids: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Margins of the models in ``folder`` on ``split``: float32 (n_models, n_examples).

        Sources, in order of preference: per-model margins files (latest epoch), the stacked
        ``<split>_margins_all.pt``, or logits files with ``labels`` (the array, or a function
        returning it, called only if logits are read). Rows follow ``model_ids`` (default:
        every model of the folder, sorted). EasyDUB's folders: see :mod:`klom_utils.easydub`.
        """
        check_split(split)
        self._folder(folder)
        if self._mapped(folder):
            return self.easydub.margins(folder, split, model_ids)  # type: ignore[union-attr]
        margin_files = self._margin_files(folder, split)
        logit_files = self._logit_files(folder, split)
        stacked_path = self.root / folder / stacked_margins_name(split)
        if model_ids is None:
            ids = sorted(set(margin_files) | set(logit_files))
            if not ids and stacked_path.exists():
                return self._stacked(folder, split)
            if not ids:
                raise FileNotFoundError(
                    f"{folder!r} holds no {split} margins, stacked margins or logits"
                )
        else:
            ids = [int(i) for i in model_ids]
        if ids and all(i in margin_files for i in ids):
            return self._stack_rows(
                folder, [(i, margin_files[i][max(margin_files[i])]) for i in ids], split
            )
        if stacked_path.exists():
            stacked = self._stacked(folder, split)
            bad = [i for i in ids if not 0 <= i < stacked.shape[0]]
            if bad:
                raise ValueError(
                    f"model ids {bad[:5]} are outside the {stacked.shape[0]} rows of "
                    f"{folder}/{stacked_margins_name(split)}"
                )
            return stacked[ids]
        rows = []
        for i in ids:
            if i in margin_files:
                rows.append(load_npy(self.root / folder / margin_files[i][max(margin_files[i])]))
            elif i in logit_files:
                rows.append(self._margins_from_logits(folder, logit_files[i], split, labels))
            else:
                raise FileNotFoundError(f"no {split} margins or logits of model {i} in {folder!r}")
        return self._check_rows(folder, split, rows)

    def _stack_rows(self, folder, id_files, split) -> np.ndarray:
        rows = [load_npy_cached(self.root / folder / f) for _, f in id_files]
        return self._check_rows(folder, split, rows)

    @staticmethod
    def _check_rows(folder: str, split: str, rows: list) -> np.ndarray:
        lengths = {np.shape(r) for r in rows}
        if len(lengths) > 1:
            raise ValueError(f"{split} margins in {folder!r} have different shapes: {sorted(lengths)}")
        return np.stack(rows).astype(np.float32, copy=False)

    def _margins_from_logits(self, folder: str, name: str, split: str, labels) -> np.ndarray:
        if callable(labels):
            labels = labels()
        if labels is None:
            raise ValueError(
                f"{folder}/{name} holds logits, not margins: pass the {split} labels "
                "(labels=...) to turn them into margins"
            )
        tensor = load_torch(self.root / folder / name)
        labels = np.asarray(labels)
        rows = int(tensor.shape[0]) if getattr(tensor, "ndim", 0) >= 1 else -1
        if getattr(tensor, "ndim", 0) != 2 or rows != labels.shape[0]:
            raise ValueError(
                f"{folder}/{name} has {rows} rows but the {split} split has {labels.shape[0]} "
                f"labels{self._which_split_hint(folder, rows)}"
            )
        n_classes = int(labels.max()) + 1 if labels.size else 0
        if int(tensor.shape[1]) != n_classes:
            raise ValueError(f"{folder}/{name} has logits for {int(tensor.shape[1])} classes but "
                             f"the {split} labels have {n_classes}: a file of another model "
                             "or dataset? (delete it and rerun the command that wrote it)")
        return np.asarray(margins(tensor.float().numpy(), labels))

    @staticmethod
    def _which_split_hint(folder: str, rows: int) -> str:
        for dataset, sizes in KNOWN_SPLIT_SIZES.items():
            if f"/{dataset}" in f"/{folder}":
                for split, size in sizes.items():
                    if rows == size:
                        return f"; {rows} rows is the size of the {dataset} {split} split"
        return ""

    def state_dict(self, folder: str, model_id: int, epoch: int | None = None) -> dict:
        """State dict of a model (latest saved epoch unless ``epoch`` is given)."""
        return self.state_dicts(folder, [model_id], epoch)[0]

    def state_dicts(self, folder: str, model_ids: Iterable[int],
                    epoch: int | None = None) -> list[dict]:
        """State dicts of ``model_ids`` (each at its latest saved epoch unless ``epoch`` is
        given), from one listing of the folder. Files read before in this process, unchanged
        since, come from a bounded memory cache (:func:`klom_utils.files.load_torch_cached`)."""
        self._no_logits_in_easydub(folder)
        epochs: dict[int, dict[int, str]] = {}
        for m in self.files_matching(folder, STATE_DICT_RE):
            epochs.setdefault(int(m.group(1)), {})[int(m.group(2))] = m.group(0)
        paths = []
        for model_id in model_ids:
            saved = epochs.get(int(model_id))
            if not saved:
                raise FileNotFoundError(f"no checkpoint of model {model_id} in {folder!r}")
            at = max(saved) if epoch is None else epoch
            if at not in saved:
                raise FileNotFoundError(
                    f"no checkpoint of model {model_id} at epoch {at} in {folder!r}; "
                    f"saved epochs: {sorted(saved)}"
                )
            paths.append(self.root / folder / saved[at])
        return [load_torch_cached(path) for path in paths]

    # ---- forget sets

    def forget_set(self, dataset: str, k: int) -> np.ndarray:
        """Indices (int64, into the train split) of forget set ``k``."""
        path = self.root / forget_set_file(dataset, k)
        if not path.exists() and self._easydub_forget_sets(dataset):
            return self.easydub.forget_set(k, dataset)  # type: ignore[union-attr]
        if not path.exists():
            have = self.forget_set_ids(dataset)
            raise FileNotFoundError(
                f"store {str(self.root)!r} has no forget set {k} for {dataset}"
                f" (it has: {have or 'none'})"
            )
        indices = load_npy(path)
        if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(f"{path} holds {indices.dtype} {indices.shape}, expected 1-D integers")
        return indices.astype(np.int64)

    def forget_set_ids(self, dataset: str) -> list[int]:
        """Which forget sets the store holds for ``dataset``."""
        if self._easydub_forget_sets(dataset):
            return self.easydub.forget_set_ids(dataset)  # type: ignore[union-attr]
        return sorted(int(m.group(1)) for m in self.files_matching(forget_set_folder(dataset), FORGET_RE))

    def _easydub_forget_sets(self, dataset: str) -> bool:
        """True when ``dataset``'s forget sets are read from EasyDUB's ``forget_sets/``."""
        return self.easydub is not None and dataset in self.easydub.datasets() \
            and not (self.root / forget_set_folder(dataset)).is_dir() \
            and bool(self.easydub.forget_set_ids(dataset))

    def forget_set_description(self, dataset: str, k: int) -> str | None:
        path = self.root / forget_set_file(dataset, k)
        meta = path.with_suffix(".json")
        return json.loads(meta.read_text()).get("description") if meta.exists() else None

    # ---- writing

    def write_forget_set(self, dataset: str, k: int, indices: Iterable[int],
                         description: str | None = None) -> Path:
        """Write forget set ``k`` (and a JSON sidecar with its description)."""
        array = np.asarray(list(indices) if not hasattr(indices, "__array__") else indices)
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"forget set indices must be 1-D integers, got {array.dtype} {array.shape}")
        if len(np.unique(array)) != len(array):
            raise ValueError(f"forget set {k} of {dataset} has duplicate indices")
        if array.size and array.min() < 0:
            raise ValueError(f"forget set {k} of {dataset} has negative indices "
                             f"({int(array.min())}): expected indices into the train split")
        path = self.root / forget_set_file(dataset, k)
        save_npy(path, array.astype(np.int64))
        if description is not None:
            self.write_json(
                forget_set_file(dataset, k)[: -len(".npy")] + ".json",
                {"description": description, "size": int(len(array))},
            )
        return path

    def write_model(self, folder: str, model_id: int, *, train_logits: ArrayLike,
                    val_logits: ArrayLike, train_labels: ArrayLike, val_labels: ArrayLike,
                    state_dict: Mapping[str, Any] | None = None, epoch: int) -> None:
        """Write one model's checkpoint, logits and margins; the val margins file goes last."""
        self.write_models(folder, [model_id], train_logits=[train_logits],
                          val_logits=[val_logits], train_labels=train_labels,
                          val_labels=val_labels, state_dicts=[state_dict], epoch=epoch)

    def write_models(self, folder: str, model_ids: Sequence[int], *,
                     train_logits: Any, val_logits: Any, train_labels: ArrayLike,
                     val_labels: ArrayLike, state_dicts: Sequence[Mapping[str, Any] | None]
                     | None = None, epoch: int) -> None:
        """Write the models ``model_ids`` of ``folder`` as :meth:`write_model` does, one after
        the other, their margins computed at once.

        ``train_logits`` and ``val_logits``: ``(len(model_ids), n_examples, n_classes)``, stacked
        or one array per model; ``train_labels`` and ``val_labels``: the splits' labels, for
        the margins; ``state_dicts``: one checkpoint (or None) per model, None for none;
        ``epoch``: the epoch in the file names. Counts and shapes are checked before anything
        is written. The logits and margins written stay in this process's memory cache, so
        reading them back costs no disk read."""
        ids = [int(i) for i in model_ids]
        if state_dicts is not None and len(state_dicts) != len(ids):
            raise ValueError(f"{len(state_dicts)} state dicts for {len(ids)} models")
        per_split = {}
        for split, logits, labels in (("train", train_logits, train_labels),
                                      ("val", val_logits, val_labels)):
            stacked = logits_stack(split, logits, np.asarray(labels), ids)
            per_split[split] = (stacked, np.asarray(margins(stacked.numpy(), labels),
                                                    dtype=np.float32))
        path = self.root / folder
        for j, model_id in enumerate(ids):
            state_dict = state_dicts[j] if state_dicts is not None else None
            if state_dict is not None:
                save_torch(path / state_dict_name(model_id, epoch),
                           {k: v.detach().cpu().clone() if hasattr(v, "detach") else v
                            for k, v in state_dict.items()})
            for split, (stacked, rows) in per_split.items():
                # a copy of its own: a view into the stack would save the whole stack
                save_torch(path / logits_name(split, model_id), stacked[j].clone(), keep=True)
                save_npy(path / margins_name(split, model_id, epoch), rows[j], keep=True)

    def write_json(self, relpath: str, obj: Any) -> Path:
        """Write a small JSON metadata file atomically."""
        text = json.dumps(obj, indent=2, sort_keys=True)
        return atomic_write(self.root / relpath, lambda tmp: tmp.write_text(text))

    def read_json(self, relpath: str) -> Any:
        """The content of a JSON file of the store."""
        return json.loads((self.root / relpath).read_text())

    def downloads(self) -> dict[str, dict]:
        """The download record: downloaded folder → ``repo``, ``revision`` (as asked),
        ``commit`` (as resolved), ``files``, ``bytes``; empty where nothing was recorded."""
        path = self.root / DOWNLOAD_RECORD
        return dict(self.read_json(DOWNLOAD_RECORD).get("folders", {})) if path.is_file() else {}

    def record_download(self, entries: Mapping[str, dict]) -> Path:
        """Add downloaded folders to the download record (a folder downloaded again replaces
        its entry)."""
        return self.write_json(DOWNLOAD_RECORD, {"folders": {**self.downloads(), **entries}})

    def download_revisions(self, folders: Iterable[str]) -> dict[str, str]:
        """Downloaded folder → commit, for the recorded downloads inside or around ``folders``."""
        out = {}
        for folder in folders:
            path = self.path(folder)
            rel = path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else folder
            for name, entry in self.downloads().items():
                if rel == name or rel.startswith(name + "/") or name.startswith(rel + "/"):
                    out[name] = str(entry.get("commit"))
        return out

    def record_or_compare(self, relpath: str, record: dict) -> list[str]:
        """Write ``record`` if ``relpath`` is new; else list how the stored record differs.

        Used to refuse resuming a folder with other settings; nested keys read ``a.b``. A
        folder that holds no model yet (a run stopped before finishing one) takes the new
        record, with a warning.
        """
        if not (self.root / relpath).exists():
            self.write_json(relpath, record)
            return []
        old, new = _flatten(self.read_json(relpath)), _flatten(json.loads(json.dumps(record)))
        diff = [f"{k}: store has {old.get(k)!r}, asked {new.get(k)!r}"
                for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        folder = Path(relpath).parent.as_posix()
        if diff and not self.model_ids(folder):  # a run stopped before its first model
            warnings.warn(f"{folder} recorded other settings ({'; '.join(diff)}) but holds no "
                          "model: the new settings replace them", stacklevel=2)
            self.write_json(relpath, record)
            return []
        return diff


def _flatten(record: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in record.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def split_labels(labels: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(train_labels, val_labels)`` as numpy arrays (or Nones) from a dataset (anything with
    ``train_y`` and ``val_y``, such as :class:`~klom_utils.data.TensorDataset`), a pair of
    arrays, or None (folders that hold margins need no labels)."""
    if labels is None:
        return None, None
    if hasattr(labels, "train_y") and hasattr(labels, "val_y"):
        return np.asarray(labels.train_y), np.asarray(labels.val_y)
    if isinstance(labels, (tuple, list)) and len(labels) == 2:
        return tuple(None if y is None else np.asarray(y) for y in labels)  # type: ignore[return-value]
    raise ValueError(f"labels must be a TensorDataset, a pair (train_labels, val_labels) or "
                     f"None, got {type(labels).__name__}")


def folder_margins(store: Store, folder: str, labels: Any,
                   model_ids: Sequence[int] | None) -> np.ndarray:
    """Margins (n_models, n_train + n_val) of ``model_ids`` in ``folder``, train then val.

    ``labels``: the dataset, or its labels ``(train, val)``, or None where the folder holds
    margins (files or stacked; logits need labels, read from ``labels`` only then: a dataset
    whose labels load on first use is never loaded for margins on disk); ``model_ids`` None:
    every model."""
    return np.concatenate([
        store.margins(folder, "train", labels=lambda: split_labels(labels)[0], model_ids=model_ids),
        store.margins(folder, "val", labels=lambda: split_labels(labels)[1], model_ids=model_ids),
    ], axis=1)

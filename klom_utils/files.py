"""Store files written atomically and read safely: a killed run never leaves a truncated file
under a final name, and a damaged file is named in a :class:`CorruptFileError`.

``.pt`` files may come from the internet, so they are read with ``weights_only=True``.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
import secrets
import shutil
import struct
import threading
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterable, Union

import numpy as np

from .layout import MODEL_FILES


def _torch() -> Any:
    import torch  # heavy: imported on first use, here only

    return torch


def atomic_write(path: Union[str, "os.PathLike[str]"], write_fn: Callable[[Path], object]) -> Path:
    """Call ``write_fn(tmp_path)``, then rename the temporary file to ``path``.

    An interrupted run leaves at most a hidden ``.tmp`` file, never a truncated file under the
    final name. The temporary name carries a random token (no two writers share one), and
    ``write_fn`` creates the file itself, with the permissions of the umask.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_fn(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        # torch reports an unwritable folder as a RuntimeError: ask the folder itself
        if isinstance(err, (OSError, RuntimeError)) and not os.access(path.parent, os.W_OK):
            raise PermissionError(f"cannot write in {str(path.parent)!r}: the store is "
                                  "read-only for this user (choose a writable store "
                                  "folder)") from None
        if isinstance(err, (OSError, RuntimeError)) and _disk_full(path.parent, err):
            raise OSError(f"cannot write {str(path)!r}: no space left on the device that holds "
                          "it; free some space (or choose another store) and rerun") from None
        raise
    return path


def _disk_full(folder: Path, err: BaseException) -> bool:
    """True when writing in ``folder`` failed for lack of space (torch says only "iostream
    error")."""
    if getattr(err, "errno", None) == errno.ENOSPC:
        return True
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


TMP_RE = re.compile(r"^\.(?P<name>.+)\.[^.]+\.tmp$")


def remove_stale_tmp(store_root: Union[str, "os.PathLike[str]"], folder: str,
                     model_ids: Iterable[int]) -> int:
    """Delete the hidden ``.tmp`` files that a killed run left for ``model_ids`` of ``folder``
    (call it only while holding their claims, so no living writer owns them); returns how many
    were removed."""
    wanted, removed = {int(i) for i in model_ids}, 0
    path = Path(store_root) / folder
    for name in os.listdir(path) if path.is_dir() else []:
        m = TMP_RE.match(name)
        if not m:
            continue
        final = m.group("name")
        ids = [int(x.group(g)) for rx, g in MODEL_FILES for x in [rx.match(final)] if x]
        if ids and ids[0] in wanted:
            (path / name).unlink(missing_ok=True)
            removed += 1
    return removed


def save_npy(path: Path, array: np.ndarray, *, keep: bool = False) -> None:
    """``np.save`` of ``array`` to ``path``, atomically. ``keep``: a copy of the array becomes
    the file's entry in the memory cache of :func:`load_npy_cached` (else the cache forgets
    the path)."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    kept = _frozen(np.array(array, copy=True)) if keep else None
    _write_kept(path, write, "npy", kept)


def float_tensor(x: Any) -> Any:
    """``x`` (an array or a tensor) as a float32 CPU tensor of its own: a copy, so that a view
    into a stacked batch never saves the whole batch."""
    return _torch().as_tensor(x).detach().float().cpu().clone()


def logits_stack(split: str, logits: Any, labels: np.ndarray, ids: list) -> Any:
    """The logits of the models ``ids`` on ``split`` as one float32 tensor ``(len(ids), n,
    C)``, from a stack or one array per model, checked against the split's labels."""
    n = labels.shape[0]
    if hasattr(logits, "shape"):
        stacked = float_tensor(logits)
        if stacked.ndim != 3 or tuple(stacked.shape[:2]) != (len(ids), n):
            raise ValueError(f"{split} logits of models {ids[:5]} have shape "
                             f"{tuple(stacked.shape)}, expected ({len(ids)}, {n}, n_classes): "
                             "one row per model, one per example of the labels")
        return stacked
    rows = [float_tensor(x) for x in logits]
    if len(rows) != len(ids):
        raise ValueError(f"{len(rows)} {split} logits for {len(ids)} models")
    for i, row in zip(ids, rows):
        if row.ndim != 2 or row.shape[0] != n or row.shape != rows[0].shape:
            raise ValueError(f"{split} logits of model {i} have shape {tuple(row.shape)}, "
                             f"expected ({n}, n_classes) to match the labels"
                             + ("" if row.shape[0] != n else ", as the other models'"))
    return float_tensor(np.stack([row.numpy() for row in rows]))


def save_torch(path: Path, obj: Any, *, keep: bool = False) -> None:
    """``torch.save`` of ``obj`` to ``path``, atomically. ``keep`` (for a floating CPU
    tensor, such as logits): its values, as a float32 copy, become the file's entry in the
    memory cache of :func:`load_tensor_cached`; otherwise the cache forgets the path."""
    torch = _torch()
    kept = None
    if keep and isinstance(obj, torch.Tensor) and obj.is_floating_point() and not obj.is_cuda:
        kept = _frozen(np.array(obj.detach().float().numpy(), copy=True))
    _write_kept(path, lambda tmp: torch.save(obj, tmp), "tensor", kept)


def _write_kept(path: Path, write: Callable[[Path], object], kind: str,
                kept: np.ndarray | None) -> None:
    """:func:`atomic_write`, then ``kept`` (or nothing) as the file's entry in the cache: only
    if the file under ``path`` is still the one this call wrote (same device and inode)."""
    written: list = []

    def write_and_note(tmp: Path) -> None:
        write(tmp)
        stat = os.stat(tmp)
        written.append((stat.st_dev, stat.st_ino))

    atomic_write(path, write_and_note)
    _forget(path)
    if kept is not None:
        signature = _signature(path)
        if signature[:2] == written[0]:  # no other writer replaced it since
            _store(os.path.abspath(path), (kind, signature, kept, kept.nbytes))


class CorruptFileError(ValueError):
    """A store file that cannot be read (truncated, not the expected format); names the file."""


def corrupt_error(path: Path, err: Exception) -> CorruptFileError:
    """The error that names a damaged file and says how to replace it."""
    detail = (str(err).strip().splitlines() or ["no detail"])[0].split(". ")[0]
    return CorruptFileError(
        f"cannot read {str(path)!r} ({type(err).__name__}: {detail}): the file is damaged (a "
        "copy or a run cut short?); delete it and rerun the command that wrote it (klom "
        "train, klom unlearn, klom datamodels or the download)")


def load_torch(path: Path) -> Any:
    """``torch.load`` of a store file (weights only); a damaged file is a CorruptFileError."""
    torch = _torch()
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" in str(err).lower():
            raise CorruptFileError(
                f"refused to load {str(path)!r}: it holds Python objects other than tensors and "
                "plain containers (loaded with weights_only=True, unsupported global); a file "
                "from an untrusted source? Use checkpoints of state dicts only") from None
        raise corrupt_error(path, err) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, struct.error) as err:
        raise corrupt_error(path, err) from None


#: Bytes that the cached loaders (:func:`load_torch_cached`, :func:`load_tensor_cached`,
#: :func:`load_npy_cached`) keep in memory together (least recently used dropped first).
CACHE_BYTES = 256 << 20
# path: (kind, file signature, object, bytes); one entry per path
_cache: "OrderedDict[str, tuple[str, tuple, Any, int]]" = OrderedDict()
_cached_bytes = 0
_cache_lock = threading.Lock()


def _signature(path: Path) -> tuple:
    stat = os.stat(path)
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def _cached(path: Path, kind: str, load: Callable[[Path], Any],
            size: Callable[[Any], int | None]) -> Any:
    """``load(path)``, kept in memory as ``kind`` while the file is unchanged (same device,
    inode, size and times) and :func:`_forget` has not been called for it; ``size`` gives an
    object's bytes, None for objects not to keep."""
    signature = _signature(path)
    where = os.path.abspath(path)
    with _cache_lock:
        hit = _cache.get(where)
        if hit is not None and hit[:2] == (kind, signature):
            _cache.move_to_end(where)
            return hit[2]
    obj = load(path)
    nbytes = size(obj)
    if nbytes is not None:
        _store(where, (kind, signature, obj, nbytes))
    return obj


def _store(where: str, entry: tuple) -> None:
    """Put ``entry`` in the cache under ``where`` (nothing larger than a quarter of it)."""
    global _cached_bytes
    if entry[3] > CACHE_BYTES // 4:
        return
    with _cache_lock:
        old = _cache.pop(where, None)
        _cached_bytes += entry[3] - (old[3] if old else 0)
        _cache[where] = entry
        while _cached_bytes > CACHE_BYTES:
            _cached_bytes -= _cache.popitem(last=False)[1][3]


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _forget(path: Path) -> None:
    """Drop what the cache holds of ``path`` (this process just rewrote it)."""
    if _cache:
        with _cache_lock:
            global _cached_bytes
            old = _cache.pop(os.path.abspath(path), None)
            _cached_bytes -= old[3] if old else 0


def load_torch_cached(path: Path) -> Any:
    """:func:`load_torch` of a checkpoint (a dict of tensors), served from a memory cache while
    the file is unchanged (see :data:`CACHE_BYTES`); callers get tensors of their own
    (clones), so they may change them freely. Other content is loaded every time."""
    torch = _torch()

    def size(obj: Any) -> int | None:
        if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return sum(v.nbytes for v in obj.values())
        return None

    obj = _cached(path, "state_dict", load_torch, size)
    if size(obj) is None:
        return obj
    return {k: v.clone() for k, v in obj.items()}


def load_tensor_cached(path: Path) -> np.ndarray:
    """A ``.pt`` file that holds one tensor (logits), as a read-only float32 array served from
    the same memory cache (copy it to change it)."""
    torch = _torch()

    def load(p: Path) -> np.ndarray:
        value = load_torch(p)
        if not isinstance(value, torch.Tensor):
            raise corrupt_error(p, ValueError(f"expected one tensor, found {type(value).__name__}"))
        array = value.detach().float().numpy()
        if value.untyped_storage().nbytes() > array.nbytes:  # a view into a larger saved
            array = array.copy()  # storage: keep only what it shows
        return _frozen(array)

    return _cached(path, "tensor", load, lambda a: a.nbytes)


def load_npy_cached(path: Path) -> np.ndarray:
    """:func:`load_npy` served from the same memory cache: a read-only array (copy it to change
    it); for files read again and again, such as the oracles' margins in a comparison."""
    return _cached(path, "npy", lambda p: _frozen(load_npy(p)), lambda a: a.nbytes)


def load_npy(path: Path, **kwargs: Any) -> np.ndarray:
    """``np.load`` of a store ``.npy`` file (no pickles); a damaged file is a CorruptFileError."""
    try:
        return np.load(path, allow_pickle=False, **kwargs)
    except (ValueError, EOFError, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise corrupt_error(path, err) from None

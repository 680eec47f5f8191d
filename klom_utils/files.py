"""Store files written atomically and read safely: a killed run never leaves a truncated file
under a final name, and a damaged file is named in a :class:`CorruptFileError`.

``.pt`` files may come from the internet, so they are read with ``weights_only=True``.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
import shutil
import tempfile
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
    final name.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except PermissionError:
        raise PermissionError(f"cannot write in {str(path.parent)!r}: the store is read-only "
                              "for this user (choose a writable store folder)") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write_fn(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600: others may share the store
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, (OSError, RuntimeError)) and _disk_full(path.parent, err):
            raise OSError(f"cannot write {str(path)!r}: no space left on the device that holds "
                          "it; free some space (or choose another store) and rerun") from None
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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


def save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` of ``array`` to ``path``, atomically (and forgotten by the cache of
    :func:`load_npy_cached`)."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    atomic_write(path, write)
    _forget(path)


def float_tensor(x: Any) -> Any:
    """``x`` (an array or a tensor) as a float32 CPU tensor of its own: a copy, so that a view
    into a stacked batch never saves the whole batch."""
    return _torch().as_tensor(x).detach().float().cpu().clone()


def save_torch(path: Path, obj: Any) -> None:
    """``torch.save`` of ``obj`` to ``path``, atomically (and forgotten by the cache of
    :func:`load_torch_cached`)."""
    torch = _torch()
    atomic_write(path, lambda tmp: torch.save(obj, tmp))
    _forget(path)


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
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise corrupt_error(path, err) from None


#: Bytes that :func:`load_torch_cached` and :func:`load_npy_cached` keep in memory together
#: (least recently used dropped first).
CACHE_BYTES = 256 << 20
_cache: "OrderedDict[str, tuple[tuple, Any, int]]" = OrderedDict()  # path: (stat, obj, bytes)
_cached_bytes = 0
_cache_lock = threading.Lock()


def _cached(path: Path, load: Callable[[Path], Any], size: Callable[[Any], int | None]) -> Any:
    """``load(path)``, kept in memory while the file is unchanged (same device, inode, size and
    times) and :func:`_forget` has not been called for it; ``size`` gives an object's bytes,
    None for objects not to keep. One entry per path."""
    stat = os.stat(path)
    where = os.path.abspath(path)
    signature = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    with _cache_lock:
        hit = _cache.get(where)
        if hit is not None and hit[0] == signature:
            _cache.move_to_end(where)
            return hit[1]
    obj = load(path)
    nbytes = size(obj)
    if nbytes is None or nbytes > CACHE_BYTES // 4:
        return obj
    with _cache_lock:
        global _cached_bytes
        old = _cache.pop(where, None)
        _cached_bytes += nbytes - (old[2] if old else 0)
        _cache[where] = (signature, obj, nbytes)
        while _cached_bytes > CACHE_BYTES:
            _cached_bytes -= _cache.popitem(last=False)[1][2]
    return obj


def _forget(path: Path) -> None:
    """Drop what the cache holds of ``path`` (this process just rewrote it)."""
    if _cache:
        with _cache_lock:
            global _cached_bytes
            old = _cache.pop(os.path.abspath(path), None)
            _cached_bytes -= old[2] if old else 0


def load_torch_cached(path: Path) -> Any:
    """:func:`load_torch` of a checkpoint (a dict of tensors), served from a memory cache while
    the file is unchanged (see :data:`CACHE_BYTES`); callers get tensors of their own
    (clones), so they may change them freely. Other content is loaded every time."""
    torch = _torch()

    def size(obj: Any) -> int | None:
        if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return sum(v.nbytes for v in obj.values())
        return None

    obj = _cached(path, load_torch, size)
    if size(obj) is None:
        return obj
    return {k: v.clone() for k, v in obj.items()}


def load_npy_cached(path: Path) -> np.ndarray:
    """:func:`load_npy` served from the same memory cache: a read-only array (copy it to change
    it); for files read again and again, such as the oracles' margins in a comparison."""
    def load(p: Path) -> np.ndarray:
        array = load_npy(p)
        array.flags.writeable = False
        return array

    return _cached(path, load, lambda a: a.nbytes)


def load_npy(path: Path, **kwargs: Any) -> np.ndarray:
    """``np.load`` of a store ``.npy`` file (no pickles); a damaged file is a CorruptFileError."""
    try:
        return np.load(path, allow_pickle=False, **kwargs)
    except (ValueError, EOFError, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise corrupt_error(path, err) from None

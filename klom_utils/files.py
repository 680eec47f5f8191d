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
    """``np.save`` of ``array`` to ``path``, atomically."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    atomic_write(path, write)


def float_tensor(x: Any) -> Any:
    """``x`` (an array or a tensor) as a float32 CPU tensor of its own: a copy, so that a view
    into a stacked batch never saves the whole batch."""
    return _torch().as_tensor(x).detach().float().cpu().clone()


def save_torch(path: Path, obj: Any) -> None:
    """``torch.save`` of ``obj`` to ``path``, atomically (and forgotten by the cache of
    :func:`load_torch_cached`)."""
    torch = _torch()
    atomic_write(path, lambda tmp: torch.save(obj, tmp))
    if _cache:
        resolved = str(Path(path).resolve())
        with _cache_lock:
            for key in [k for k in _cache if k[0] == resolved]:
                del _cache[key]


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


#: Bytes of tensors :func:`load_torch_cached` keeps in memory (least recently used dropped).
CACHE_BYTES = 256 << 20
_cache: "OrderedDict[tuple, tuple[dict, int]]" = OrderedDict()
_cache_lock = threading.Lock()


def load_torch_cached(path: Path) -> Any:
    """:func:`load_torch` of a checkpoint (a dict of tensors), served from a memory cache of at
    most :data:`CACHE_BYTES` while the file is unchanged (same inode, size and modification
    time); callers get tensors of their own (clones), so they may change them freely. Other
    content is loaded every time and not kept."""
    stat = os.stat(path)
    key = (str(Path(path).resolve()), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns,
           stat.st_ctime_ns)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
    if hit is None:
        obj = load_torch(path)
        torch = _torch()
        if not (isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values())):
            return obj
        size = sum(v.nbytes for v in obj.values())
        if size > CACHE_BYTES // 4:
            return obj
        hit = (obj, size)
        with _cache_lock:
            _cache[key] = hit
            total = sum(n for _, n in _cache.values())
            while total > CACHE_BYTES:
                total -= _cache.popitem(last=False)[1][1]
    return {k: v.clone() for k, v in hit[0].items()}


def load_npy(path: Path, **kwargs: Any) -> np.ndarray:
    """``np.load`` of a store ``.npy`` file (no pickles); a damaged file is a CorruptFileError."""
    try:
        return np.load(path, allow_pickle=False, **kwargs)
    except (ValueError, EOFError, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise corrupt_error(path, err) from None

"""Per-model claims: an exclusive lock file per model id, so that concurrent processes on one
store (job-array tasks, a second terminal) never train or unlearn the same model twice.

:func:`claimed` takes the locks without waiting (``filelock``, one file per model under
``<store>/.claims/``). The operating system releases the lock of a killed process, so the
next run does what it left.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Collection, Iterator, List, Sequence, Tuple, Union

from filelock import FileLock, Timeout

from .files import remove_stale_tmp
from .layout import CLAIMS_FOLDER

Root = Union[str, "os.PathLike[str]"]


def claim_path(store_root: Root, folder: str, model_id: int) -> Path:
    """The lock file of model ``model_id`` of ``folder`` (kept out of the model folders)."""
    return Path(store_root) / CLAIMS_FOLDER / folder / f"{int(model_id)}.lock"


@contextlib.contextmanager
def claimed(store_root: Root, folder: str, model_ids: Sequence[int]) -> Iterator[List[int]]:
    """Claim the models ``model_ids`` of ``folder``; yields the ids this process holds.

    Ids that another living process holds are left out (not waited for). The claims are
    released when the block ends, or by the operating system when the process dies.
    """
    held, locks, ids = [], [], list(model_ids)
    if ids:  # nothing to claim: nothing written (status reads read-only stores)
        claim_path(store_root, folder, 0).parent.mkdir(parents=True, exist_ok=True)
    try:
        for i in ids:
            lock = FileLock(str(claim_path(store_root, folder, i)), timeout=0)
            try:
                lock.acquire()
            except Timeout:
                continue
            locks.append(lock)
            held.append(int(i))
        yield held
    finally:
        for lock in locks:
            lock.release()


def claimed_chunks(store_root: Root, folder: str, model_ids: Sequence[int], size: int,
                   complete: Callable[[], Collection[int]]) -> Iterator[Tuple[List[int], int]]:
    """Walk ``model_ids`` ``size`` at a time; yields ``(chunk, covered)``: the ids of each
    slice that this process claimed and that are not complete yet (``complete()``: the ids
    complete now, one listing of the folder per chunk, called after the claim, so a model
    another process finished meanwhile is skipped), and the slice's length (for progress).
    The claims are held while the caller works on the chunk; hidden ``.tmp`` files a killed
    run left for them are removed first."""
    for start in range(0, len(model_ids), size):
        part = list(model_ids[start:start + size])
        with claimed(store_root, folder, part) as mine:
            remove_stale_tmp(store_root, folder, mine)
            done = set(complete()) if mine else set()
            yield [i for i in mine if i not in done], len(part)


def held_claims(store_root: Root, folder: str) -> List[int]:
    """Ids of ``folder`` that a living process has claimed (being worked on right now)."""
    claims = claim_path(store_root, folder, 0).parent
    ids = sorted(int(p.stem) for p in claims.glob("*.lock")) if claims.is_dir() else []
    with claimed(store_root, folder, ids) as free:  # what we can take, nobody holds
        return [i for i in ids if i not in free]


@contextlib.contextmanager
def store_lock(store_root: Root, name: str, timeout: float = 120) -> Iterator[None]:
    """A lock of the whole store for a one-off write (``name``: what it guards), waited for."""
    path = Path(store_root) / CLAIMS_FOLDER / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path), timeout=timeout):
        yield

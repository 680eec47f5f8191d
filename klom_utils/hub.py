"""Download folders of the Hub dataset ``royrin/KLOM-models`` into a local store.

The download goes through ``huggingface_hub.snapshot_download`` (caching, resuming, offline
use with ``HF_HUB_OFFLINE=1``); only the folders asked for are fetched, and optionally only some
kinds of files (margins and logits are small; checkpoints are large).
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath
from typing import Iterable

from .progress import tqdm_class
from .store import Store

REPO_ID = "royrin/KLOM-models"

#: The folders that the dataset card of royrin/KLOM-models names.
CARD_FOLDERS = (
    "full_models/CIFAR10",
    "full_models/CIFAR10_augmented",
    "full_models/LIVING17",
    *(f"oracles/CIFAR10/forget_set_{k}" for k in range(1, 11)),
    "forget_set_indices/CIFAR10",
    "forget_set_indices/LIVING17",
)

# File patterns (relative to a model folder) for each kind of file.
FILE_KINDS = {
    "margins": ("*_margins_*.npy", "*_margins_all.pt"),
    "logits": ("*_logits_*.pt",),
    "checkpoints": ("sd_*.pt",),
}
DEFAULT_KINDS = ("margins", "logits")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


#: Top-level folders of the dataset (the card's, and the authors' stacked oracle margins).
TOP_FOLDERS = ("full_models", "oracles", "forget_set_indices", "oracle_models")


def _clean_folder(folder: str) -> str:
    if not isinstance(folder, str) or not folder.strip("/"):
        raise ValueError(f"a folder must be a non-empty path such as 'full_models/CIFAR10', got {folder!r}")
    if any(c in folder for c in "*?[]"):
        raise ValueError(f"folder {folder!r}: wildcards are not accepted (they would fetch far "
                         f"more than meant); name folders, e.g. {CARD_FOLDERS[0]!r}")
    path = PurePosixPath(folder.strip("/"))
    if folder.startswith("/") or ".." in path.parts:
        raise ValueError(f"folder {folder!r} must be a path inside the repository, like "
                         "'oracles/CIFAR10/forget_set_3'")
    if path.parts[0] not in TOP_FOLDERS:
        raise ValueError(f"folder {folder!r}: the dataset has no top-level folder "
                         f"{path.parts[0]!r}; expected one of {', '.join(TOP_FOLDERS)}")
    return path.as_posix()


def _unreachable(err: BaseException) -> bool:
    """True when ``err`` (or what caused it) is a failed connection, not a missing file."""
    seen = 0
    current: BaseException | None = err
    while current is not None and seen < 10:
        name = type(current).__name__
        if any(word in name for word in ("Connect", "Timeout", "NameResolution", "Network")):
            return True
        current, seen = current.__cause__ or current.__context__, seen + 1
    return False


def allow_patterns(folders: Iterable[str], kinds: Iterable[str] | None = DEFAULT_KINDS) -> list[str]:
    """The ``allow_patterns`` that fetch ``folders`` with only the chosen kinds of model files.

    Forget-set folders (``forget_set_indices/...``) are always fetched whole.
    ``kinds=None`` fetches every file of the folders.
    """
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        unknown = [k for k in kinds if k not in FILE_KINDS]
        if unknown or not kinds:
            raise ValueError(f"kinds must be a non-empty subset of {sorted(FILE_KINDS)} or None, "
                             f"got {kinds!r}")
    patterns = []
    for folder in folders:
        if kinds is None or folder.startswith("forget_set_indices"):
            patterns.append(f"{folder}/*")
        else:
            patterns += [f"{folder}/{p}" for p in (p for k in kinds for p in FILE_KINDS[k])]
    return patterns


def _missing_message(folder: str, repo_id: str, cache: str, offline: bool) -> str:
    how = (
        f"downloads are disabled (HF_HUB_OFFLINE=1 or offline=True), and the cache at {cache} "
        "does not hold it. On a machine with network, run once: "
        f"klom_utils.download([{folder!r}]) (or `hf download {repo_id} --repo-type dataset "
        f"--include '{folder}/*'`), then use the same cache offline."
        if offline
        else "check the folder name against the dataset card (e.g. 'oracles/CIFAR10/forget_set_3')."
    )
    return f"folder {folder!r} of {repo_id} is not available: {how}"


def download(
    folders: str | Iterable[str],
    *,
    kinds: Iterable[str] | str | None = DEFAULT_KINDS,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
    progress: bool = True,
    repo_id: str = REPO_ID,
    endpoint: str | None = None,
) -> Store:
    """Fetch ``folders`` of ``royrin/KLOM-models`` and return them as a :class:`Store`.

    ``kinds`` picks model files: any of ``"margins"``, ``"logits"``, ``"checkpoints"`` (default
    margins and logits, without the large checkpoints); ``None`` takes everything. ``offline``
    defaults to the ``HF_HUB_OFFLINE`` environment variable; offline, only the cache is read.
    """
    snapshot_download, LocalEntryNotFoundError, constants = _hub_api()
    folder_list = [_clean_folder(f) for f in ([folders] if isinstance(folders, str) else list(folders))]
    if not folder_list:
        raise ValueError(f"name at least one folder to download, for example {CARD_FOLDERS[0]!r}")
    if offline is None:
        offline = _truthy(os.environ.get("HF_HUB_OFFLINE"))
    cache = str(local_dir or cache_dir or constants.HF_HUB_CACHE)
    try:
        path = snapshot_download(
            repo_id=repo_id,
            repo_type="dataset",
            revision=revision,
            cache_dir=cache_dir,
            local_dir=local_dir,
            allow_patterns=allow_patterns(folder_list, kinds),
            local_files_only=offline,
            tqdm_class=None if progress else _silent_tqdm(),
            endpoint=endpoint,
        )
    except LocalEntryNotFoundError as err:  # includes an incomplete cached snapshot
        if not offline and _unreachable(err):
            raise ConnectionError(
                f"cannot reach the Hugging Face Hub at {endpoint or constants.ENDPOINT} (no network, or "
                f"a proxy or firewall in the way), and the cache at {cache} does not hold "
                f"{folder_list[0]!r}: connect, or copy a cache made elsewhere and use "
                "offline=True (HF_HUB_OFFLINE=1)") from None
        raise FileNotFoundError(_missing_message(folder_list[0], repo_id, cache, offline)) from err
    store = Store(path)  # may not exist yet when nothing matched
    for folder in folder_list:
        target = store.path(folder)
        if not target.is_dir() or not any(target.iterdir()):
            raise FileNotFoundError(_missing_message(folder, repo_id, cache, offline))
    return store


def _hub_api():
    """``snapshot_download``, its not-found error and huggingface_hub's settings, imported when
    a download starts (here only): its constants read the ``HF_*`` environment variables at
    import, so a process that sets them before downloading gets them."""
    import huggingface_hub.constants as constants
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    return snapshot_download, LocalEntryNotFoundError, constants


def _silent_tqdm():
    class SilentTqdm(tqdm_class()):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return SilentTqdm

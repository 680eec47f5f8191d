"""Download folders of the Hub datasets ``royrin/KLOM-models`` and ``easydub/EasyDUB-dataset``
into a local store.

The download goes through ``huggingface_hub.snapshot_download`` (caching, resuming, offline
use with ``HF_HUB_OFFLINE=1``); only the folders asked for are fetched, and optionally only some
kinds of files (margins and logits are small; checkpoints are large). Online, the file list and
sizes come first from the Hub's file metadata (:func:`download_plan`): a download larger than the
free disk space is refused before it starts, and the resolved commit is recorded in the store
(:meth:`klom_utils.store.Store.record_download`).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from typing import Iterable

from . import easydub
from .progress import tqdm_class
from .store import Store

#: The Hub dataset of the KLOM paper's models (the default repository).
REPO_ID = "royrin/KLOM-models"
#: EasyDUB's Hub dataset (margins only, in its own layout).
EASYDUB_REPO_ID = easydub.REPO_ID

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
#: The repositories whose layouts a store reads: their top-level folders and an example folder.
REPOS = {REPO_ID: (TOP_FOLDERS, CARD_FOLDERS[0]),
         EASYDUB_REPO_ID: (easydub.TOP_FOLDERS, "margins/cifar10/oracle/forget_2")}
_SET = r"forget_set_([1-9]|10)"  # the ten CIFAR-10 forget sets
#: Where each repository's folders may lead, below the top level: each level's allowed names
#: (regular expressions), so that a misspelt folder is refused before any request.
LEVELS = {
    REPO_ID: {"full_models": ("CIFAR10|CIFAR10_augmented|LIVING17",),
              "oracles": ("CIFAR10", f"{_SET}|only_margins", _SET),
              "forget_set_indices": ("CIFAR10|LIVING17",),
              "oracle_models": ("CIFAR10|LIVING17", "only_margins", r"forget_set_\d+")},
    EASYDUB_REPO_ID: {"margins": ("cifar10", "pretrain|oracle", r"retain|val|forget_([1-9]|10)",
                                  "retain|val|forget|resnet9", "resnet9"),
                      "forget_sets": ("cifar10",)},
}
_LOOK_LIKE = {REPO_ID: "'full_models/CIFAR10', 'oracles/CIFAR10/forget_set_1' … '_10', "
                       "'forget_set_indices/CIFAR10'",
              EASYDUB_REPO_ID: "'margins/cifar10/pretrain', 'margins/cifar10/oracle/forget_2', "
                               "'forget_sets/cifar10'"}
REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$")


def check_repo(repo: str) -> str:
    """``repo`` if it is one of :data:`REPOS`; else a ValueError naming them."""
    if repo not in REPOS:
        raise ValueError(f"repo {repo!r} is not a dataset whose layout a store reads: expected one "
                         f"of {', '.join(REPOS)}")
    return repo


def check_revision(revision: str | None) -> str | None:
    """``revision`` (a branch, tag or commit) if well formed; else a ValueError."""
    if revision is not None and (not isinstance(revision, str) or not REVISION_RE.match(revision)
                                 or ".." in revision or revision.endswith(("/", ".lock"))):
        raise ValueError(f"revision {revision!r} is not a branch, tag or commit name (letters, "
                         "digits, '.', '_', '-', '/'; e.g. 'main' or a 40-hex commit)")
    return revision


def _clean_folder(folder: str, repo: str = REPO_ID, strict: bool = True) -> str:
    top, example = REPOS[check_repo(repo)]
    if not isinstance(folder, str) or not folder.strip("/"):
        raise ValueError(f"a folder must be a non-empty path such as {example!r}, got {folder!r}")
    if any(c in folder for c in "*?[]"):
        raise ValueError(f"folder {folder!r}: wildcards are not accepted (they would fetch far "
                         f"more than meant); name folders, e.g. {example!r}")
    path = PurePosixPath(folder.strip("/"))
    if folder.startswith("/") or ".." in path.parts or "." in path.parts:
        raise ValueError(f"folder {folder!r} must be a path inside the repository, like {example!r}")
    if path.parts[0] not in top:
        raise ValueError(f"folder {folder!r}: {repo} has no top-level folder "
                         f"{path.parts[0]!r}; expected one of {', '.join(top)}")
    if strict:  # (a local copy may hold another dataset's folder, e.g. DIGITS)
        levels = LEVELS[repo][path.parts[0]]
        for depth, part in enumerate(path.parts[1:]):
            if depth >= len(levels) or not re.fullmatch(levels[depth], part):
                raise ValueError(f"folder {folder!r}: {repo} has no {part!r} there (its folders "
                                 f"look like {_LOOK_LIKE[repo]})")
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
    example = REPOS.get(repo_id, (None, CARD_FOLDERS[0]))[1]
    how = (
        f"downloads are disabled (HF_HUB_OFFLINE=1 or offline=True), and the cache at {cache} "
        "does not hold it. On a machine with network, run once: "
        f"klom_utils.download([{folder!r}], repo={repo_id!r}) (or `hf download {repo_id} --repo-type dataset "
        f"--include '{folder}/*'`), then use the same cache offline."
        if offline
        else f"check the folder name against the dataset card (e.g. {example!r})."
    )
    return f"folder {folder!r} of {repo_id} is not available: {how}"


@dataclass
class DownloadPlan:
    """What a download would fetch: ``files`` (path, bytes), their ``total`` bytes, the
    ``commit`` the revision resolves to."""

    repo: str
    revision: str | None
    commit: str
    folders: list
    files: list

    @property
    def total(self) -> int:
        return sum(size for _, size in self.files)

    def listing(self, max_files: int | None = None) -> str:
        """One line per file with its size (the first ``max_files``), then the total."""
        shown = self.files if max_files is None else self.files[:max_files]
        lines = [f"{human_bytes(size):>10}  {path}" for path, size in shown]
        if len(shown) < len(self.files):
            lines.append(f"{'':>10}  ... and {len(self.files) - len(shown)} more files")
        return "\n".join(lines + [f"{human_bytes(self.total):>10}  total: {len(self.files)} files "
                                  f"({self.total} bytes)", f"{'':>10}  of {self.repo}",
                                  f"{'':>10}  at {self.commit}"])


def human_bytes(n: float) -> str:
    """``n`` bytes as ``"1.5 GB"`` (powers of 1000, as the Hub shows sizes)."""
    if abs(n) < 1000:
        return f"{n:.0f} B"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if abs(n) < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} TB"


def _checked(folders: str | Iterable[str], repo: str, revision: str | None) -> list[str]:
    check_revision(revision)
    folder_list = [_clean_folder(f, repo) for f in ([folders] if isinstance(folders, str) else list(folders))]
    if not folder_list:
        raise ValueError(f"name at least one folder to download, for example {REPOS[repo][1]!r}")
    return folder_list


def _patterns(folder_list: list[str], repo: str, kinds) -> list[str]:
    # EasyDUB's folders hold margins only, in nested folders: fetched whole
    return allow_patterns(folder_list, kinds if repo == REPO_ID else None)


def download_plan(folders: str | Iterable[str], *, kinds: Iterable[str] | str | None = DEFAULT_KINDS,
                  revision: str | None = None, repo: str = REPO_ID,
                  endpoint: str | None = None) -> DownloadPlan:
    """The files (with sizes, from the Hub's file metadata) that :func:`download` would fetch,
    fetching none. Names are checked before any request; a folder without files is an error."""
    folder_list = _checked(folders, check_repo(repo), revision)
    patterns = _patterns(folder_list, repo, kinds)
    hub = _hub_api()
    try:
        info = hub.HfApi(endpoint=endpoint).dataset_info(repo, revision=revision, files_metadata=True)
    except hub.not_found as err:
        raise FileNotFoundError(f"{repo} has no revision {revision!r} ({type(err).__name__})"
                                if revision else f"{repo}: {type(err).__name__}") from None
    except Exception as err:
        if _unreachable(err):
            raise ConnectionError(
                f"cannot reach the Hugging Face Hub at {endpoint or hub.constants.ENDPOINT} (no "
                f"network, or a proxy or firewall in the way) to list the files of "
                f"{folder_list[0]!r}: connect, or read a cache made elsewhere with offline=True "
                "(HF_HUB_OFFLINE=1; local_plan lists a local copy)") from None
        raise
    siblings = list(hub.filter_repo_objects(info.siblings or [], allow_patterns=patterns,
                                        key=lambda s: s.rfilename))
    for folder in folder_list:
        if not any(s.rfilename.startswith(folder + "/") for s in siblings):
            raise FileNotFoundError(_missing_message(folder, repo, "", False))
    return DownloadPlan(repo=repo, revision=revision, commit=str(info.sha), folders=folder_list,
                        files=[(s.rfilename, int(s.size or 0)) for s in siblings])


def local_plan(root: str | os.PathLike, folders: str | Iterable[str], *,
               kinds: Iterable[str] | str | None = DEFAULT_KINDS, repo: str = REPO_ID) -> DownloadPlan:
    """:func:`download_plan` read from a local copy of ``repo`` at ``root`` (a snapshot, a
    ``local_dir`` download, or a stand-in in its layout): the same files and sizes, offline."""
    check_repo(repo)
    folder_list = [_clean_folder(f, repo, strict=False)
                   for f in ([folders] if isinstance(folders, str) else list(folders))]
    root = Path(root)
    files = sorted(p.relative_to(root).as_posix() for f in folder_list if (root / f).is_dir()
                   for p in (root / f).rglob("*") if p.is_file())
    kept = list(_hub_api().filter_repo_objects(files, allow_patterns=_patterns(folder_list, repo, kinds)))
    return DownloadPlan(repo=repo, revision=None, commit=f"a local copy ({Path(root).name}/)",
                        folders=folder_list, files=[(f, (root / f).stat().st_size) for f in kept])


def free_bytes(path: str | os.PathLike) -> int:
    """Free disk space where ``path`` (or its nearest existing parent) is."""
    target = Path(path).expanduser().absolute()
    while not target.exists() and target != target.parent:
        target = target.parent
    return shutil.disk_usage(target).free


def _check_space(plan: DownloadPlan, target: Path, snapshot: Path) -> None:
    """Refuse a download larger than the free space at ``target`` (files already in
    ``snapshot`` at their size do not count)."""
    needed = sum(size for path, size in plan.files
                 if not ((snapshot / path).is_file() and (snapshot / path).stat().st_size == size))
    free = free_bytes(target)
    if needed > free:
        raise OSError(f"download of {len(plan.files)} files from {plan.repo} needs {human_bytes(needed)} "
                      f"({needed} bytes) but {target} has {human_bytes(free)} ({free} bytes) free: "
                      "free space, or fetch fewer folders or kinds (--dry-run lists the sizes)")


def download(
    folders: str | Iterable[str],
    *,
    kinds: Iterable[str] | str | None = DEFAULT_KINDS,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_dir: str | os.PathLike | None = None,
    offline: bool | None = None,
    progress: bool = True,
    repo: str = REPO_ID,
    endpoint: str | None = None,
) -> Store:
    """Fetch ``folders`` of ``repo`` (``royrin/KLOM-models``, or ``easydub/EasyDUB-dataset``
    whose folders are fetched whole) and return them as a :class:`Store`.

    ``kinds`` picks KLOM-models' model files: any of ``"margins"``, ``"logits"``,
    ``"checkpoints"`` (default margins and logits, without the large checkpoints); ``None``
    takes everything. ``revision``: a branch, tag or commit; the commit it resolves to is
    recorded in the store (:meth:`Store.downloads`). Online, a download larger than the free
    disk space is refused before it starts. ``offline`` defaults to the ``HF_HUB_OFFLINE``
    environment variable; offline, only the cache is read.
    """
    folder_list = _checked(folders, check_repo(repo), revision)
    patterns = _patterns(folder_list, repo, kinds)
    hub = _hub_api()
    constants = hub.constants
    if offline is None:
        offline = _truthy(os.environ.get("HF_HUB_OFFLINE"))
    cache = str(local_dir or cache_dir or constants.HF_HUB_CACHE)
    plan = None
    if not offline:
        plan = download_plan(folder_list, kinds=kinds, revision=revision, repo=repo, endpoint=endpoint)
        repo_folder = Path(cache) / f"datasets--{repo.replace('/', '--')}" / "snapshots" / plan.commit
        _check_space(plan, Path(cache), Path(local_dir) if local_dir else repo_folder)
    try:
        path = hub.snapshot_download(
            repo_id=repo,
            repo_type="dataset",
            revision=revision,
            cache_dir=cache_dir,
            local_dir=local_dir,
            allow_patterns=patterns,
            local_files_only=offline,
            tqdm_class=None if progress else _silent_tqdm(),
            endpoint=endpoint,
        )
    except hub.LocalEntryNotFoundError as err:  # includes an incomplete cached snapshot
        if not offline:
            _raise_unreachable(err, endpoint or constants.ENDPOINT, cache, folder_list[0])
        raise FileNotFoundError(_missing_message(folder_list[0], repo, cache, offline)) from err
    store = Store(path)  # may not exist yet when nothing matched
    for folder in folder_list:
        target = Path(path) / folder
        if not target.is_dir() or not any(target.iterdir()):
            raise FileNotFoundError(_missing_message(folder, repo, cache, offline))
    if plan is not None:
        store.record_download({f: {"repo": repo, "revision": revision or "main", "commit": plan.commit,
                                   "files": sum(p.startswith(f + "/") for p, _ in plan.files),
                                   "bytes": sum(n for p, n in plan.files if p.startswith(f + "/"))}
                               for f in folder_list})
    return store


def _raise_unreachable(err: BaseException, endpoint: str, cache: str, folder: str) -> None:
    if _unreachable(err):
        raise ConnectionError(
            f"cannot reach the Hugging Face Hub at {endpoint} (no network, or "
            f"a proxy or firewall in the way), and the cache at {cache} does not hold "
            f"{folder!r}: connect, or copy a cache made elsewhere and use "
            "offline=True (HF_HUB_OFFLINE=1)") from None


def _hub_api() -> SimpleNamespace:
    """huggingface_hub's parts, imported when a download or listing starts (here only): its
    constants read the ``HF_*`` environment variables at import, so a process that sets them
    before downloading gets them."""
    import huggingface_hub.constants as constants
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
    from huggingface_hub.utils import filter_repo_objects

    return SimpleNamespace(snapshot_download=snapshot_download, constants=constants, HfApi=HfApi,
                           LocalEntryNotFoundError=LocalEntryNotFoundError,
                           not_found=(RevisionNotFoundError, RepositoryNotFoundError),
                           filter_repo_objects=filter_repo_objects)


def _silent_tqdm():
    class SilentTqdm(tqdm_class()):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return SilentTqdm

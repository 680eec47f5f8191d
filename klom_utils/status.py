"""What a store holds, folder by folder: the report of ``klom status``."""

from __future__ import annotations

from .layout import RECORD_FILES, SPLITS, logits_name
from .store import Store


def store_status(store: Store) -> dict:
    """What ``store`` holds, per folder: model ids complete (every file :meth:`Store.write_model`
    writes, or both logits files in a Hub folder), partial (some files, e.g. of a killed run),
    missing (gaps below the highest id, counted separately from 1000 up, the held-out
    oracles), the recorded recipe, and the forget sets of each dataset."""
    folders = {}
    for folder in store.folders():
        ids = store.model_ids(folder)
        complete = set(store.complete_model_ids(folder))
        readable = {i for i in ids if all((store.root / folder / logits_name(s, i)).exists()
                                          for s in SPLITS)}
        done = complete | readable
        partial = sorted(set(ids) - done)
        missing = []
        for low, high in ((0, 1000), (1000, None)):
            inside = [i for i in ids if i >= low and (high is None or i < high)]
            if inside:
                missing += sorted(set(range(low, max(inside) + 1)) - set(inside))
        record = next((store.read_json(f"{folder}/{name}") for name in RECORD_FILES
                       if (store.root / folder / name).exists()), None)
        folders[folder] = {"complete": sorted(done), "partial": partial, "missing": missing,
                           "record": record}
    forget_root = store.root / "forget_set_indices"
    datasets = {p.name for p in forget_root.iterdir() if p.is_dir()} if forget_root.is_dir() else set()
    for name in store.easydub.datasets() if store.easydub is not None else []:
        if store._easydub_forget_sets(name):
            datasets.add(name)
    return {"store": str(store.root), "folders": folders,
            "forget_sets": {d: store.forget_set_ids(d) for d in sorted(datasets)}}

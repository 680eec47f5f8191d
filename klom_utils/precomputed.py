"""KLOM from the Hub's precomputed files alone: no images, no training.

Works alike for every dataset of ``royrin/KLOM-models`` (CIFAR-10, CIFAR10_augmented,
LIVING-17); :func:`klom_utils.evaluate.do_nothing_klom` scores doing nothing from them.
Margins come from what a folder holds, through :meth:`Store.margins` (the reader every step
uses): per-model margins files (``##__val_margins_#.npy``), stacked margins
(``{train,val}_margins_all.pt``), or logits with the labels. The oracles of forget set ``k`` are
the models of ``oracles/<D>/forget_set_<k>`` where the store has them, else the stacked margins
the authors' code keeps in ``oracle_models/<D>/only_margins/forget_set_<k>`` (older code:
``oracles/<D>/only_margins/forget_set_<k>``). The Hub's LIVING-17 full models hold train
*logits*, so their train margins need the LIVING-17 labels
(:func:`klom_utils.data.read_living17_labels`: the label files alone, no images).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .layout import KNOWN_SPLIT_SIZES, oracle_folder, stacked_margins_folder
from .store import Store, folder_margins, split_labels


def oracle_margins_folder(store: Store, dataset: str, forget_set: int) -> str:
    """The folder holding the oracles of ``forget_set``: ``oracles/<D>/forget_set_<k>``, else
    the stacked ``oracle_models/<D>/only_margins/forget_set_<k>`` (or the older
    ``oracles/<D>/only_margins/forget_set_<k>``)."""
    k = int(forget_set)
    candidates = [oracle_folder(dataset, k), stacked_margins_folder(dataset, k),
                  f"oracles/{dataset}/only_margins/forget_set_{k}"]
    for folder in candidates:
        if store.path(folder).is_dir():
            return folder
    raise FileNotFoundError(f"store {str(store.root)!r} has no oracles of {dataset} forget set "
                            f"{k}: none of {candidates}")


def precomputed_margins(store: Store, dataset: str, folder: str,
                        labels: Any = None,
                        model_ids: Iterable[int] | None = None) -> np.ndarray:
    """Margins (n_models, n_train + n_val) of a folder, train then val, from its files
    (:func:`klom_utils.store.folder_margins`), checked against ``dataset``'s split sizes
    where they are known. ``labels`` (a dataset or ``(train, val)``) are needed only where the
    folder holds logits instead of margins."""
    ids = None if model_ids is None else [int(i) for i in model_ids]
    try:
        m = folder_margins(store, folder, labels, ids)
    except ValueError as err:
        if labels is None and "holds logits" in str(err):
            raise ValueError(f"{err}{_labels_hint(dataset)}") from None
        raise
    sizes = KNOWN_SPLIT_SIZES.get(dataset)
    if sizes and m.shape[1] != sizes["train"] + sizes["val"]:
        raise ValueError(f"{folder}: margins cover {m.shape[1]} examples, expected "
                         f"{sizes['train']} train + {sizes['val']} val for {dataset}")
    return m


def _labels_hint(dataset: str) -> str:
    if dataset == "LIVING17":
        return (" (LIVING-17 labels: labels=klom_utils.data.read_living17_labels(data_root), "
                "from living17_{train,val}_labels.pt)")
    return f" (labels=klom_utils.data.load_dataset({dataset.lower()!r}))"


def train_width(store: Store, dataset: str, folder: str, labels: Any,
                ids: Iterable[int]) -> int:
    """Width of the train part of the folder's margins (known for the Hub's datasets)."""
    if dataset in KNOWN_SPLIT_SIZES:
        return KNOWN_SPLIT_SIZES[dataset]["train"]
    train_y, _ = split_labels(labels)
    return int(store.margins(folder, "train", labels=train_y, model_ids=list(ids)[:1]).shape[1])

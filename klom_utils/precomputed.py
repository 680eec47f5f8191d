"""KLOM from the Hub's precomputed files alone: no images, no training.

Works alike for every dataset of ``royrin/KLOM-models`` (CIFAR-10, CIFAR10_augmented,
LIVING-17). Margins come from what a folder holds, through :meth:`Store.margins` (the reader
every step uses): per-model margins files (``##__val_margins_#.npy``), stacked margins
(``{train,val}_margins_all.pt``), or logits with the labels. The oracles of forget set ``k`` are
the models of ``oracles/<D>/forget_set_<k>`` where the store has them, else the stacked margins
the authors' code keeps in ``oracle_models/<D>/only_margins/forget_set_<k>`` (older code:
``oracles/<D>/only_margins/forget_set_<k>``). The Hub's LIVING-17 full models hold train
*logits*, so their train margins need the LIVING-17 labels
(:func:`klom_utils.data.read_living17_labels`: the label files alone, no images).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

if TYPE_CHECKING:
    from ._typing import Record, StoreLike
    from .data import TensorDataset
    from .store import Store


def oracle_margins_folder(store: Store, dataset: str, forget_set: int) -> str:
    """The folder holding the oracles of ``forget_set``: ``oracles/<D>/forget_set_<k>``, else
    the stacked ``oracle_models/<D>/only_margins/forget_set_<k>`` (or the older
    ``oracles/<D>/only_margins/forget_set_<k>``)."""
    from .store import oracle_folder, stacked_margins_folder

    k = int(forget_set)
    candidates = [oracle_folder(dataset, k), stacked_margins_folder(dataset, k),
                  f"oracles/{dataset}/only_margins/forget_set_{k}"]
    for folder in candidates:
        if store.path(folder).is_dir():
            return folder
    raise FileNotFoundError(f"store {str(store.root)!r} has no oracles of {dataset} forget set "
                            f"{k}: none of {candidates}")


def precomputed_margins(store: Store, dataset: str, folder: str,
                        labels: TensorDataset | tuple | None = None,
                        model_ids: Iterable[int] | None = None) -> np.ndarray:
    """Margins (n_models, n_train + n_val) of a folder, train then val, from its files
    (:func:`klom_utils.evaluate.folder_margins`), checked against ``dataset``'s split sizes
    where they are known. ``labels`` (a dataset or ``(train, val)``) are needed only where the
    folder holds logits instead of margins."""
    from .evaluate import folder_margins
    from .store import KNOWN_SPLIT_SIZES

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


def do_nothing_klom(store: StoreLike, dataset: str, forget_set: int, *,
                    labels: TensorDataset | tuple | None = None, n_models: int | None = None,
                    **score_kwargs: Any) -> Record:
    """The KLOM record of doing nothing (the full models scored as the unlearned ones) against
    the oracles of ``forget_set``, from precomputed files alone.

    ``dataset``: any spelling (``"living17"``, ``"CIFAR10"``; ``"CIFAR10_augmented"`` reads
    ``full_models/CIFAR10_augmented`` and the oracles of the same recipe,
    ``oracles/CIFAR10_augmented/forget_set_<k>`` from ``klom train --augment``: never the
    plain ones; forget sets are the base dataset's);
    ``n_models``: full models used (default all; ids below 1000 in each folder);
    ``score_kwargs`` go to :func:`klom_utils.evaluate.score_arrays` (``level``, ``n_splits``,
    ``seed``, KLOM settings). Returns its record, with ``method``, ``dataset``,
    ``forget_set``, ``folders``, ``model_ids`` and ``oracle_ids`` filled in.
    """
    from .data import check_forget_indices, dataset_name
    from .evaluate import _open, score_arrays
    from .store import full_models_folder
    from .unlearn import HELD_OUT_ORACLE_START

    store = _open(store)
    augmented = str(dataset).lower().endswith("_augmented")
    base = dataset_name(str(dataset)[:-len("_augmented")] if augmented else dataset)
    recipe = f"{base}_augmented" if augmented else base
    full = full_models_folder(recipe)
    if not store.path(full).is_dir():
        raise FileNotFoundError(f"store {str(store.root)!r} has no {full!r}: download it "
                                f"(klom_utils.download([{full!r}]))")
    ofolder = oracle_margins_folder(store, recipe, forget_set)
    ids = [i for i in store.model_ids(full) if i < HELD_OUT_ORACLE_START]
    if n_models is not None:
        if isinstance(n_models, bool) or not isinstance(n_models, int) or n_models < 1:
            raise ValueError(f"n_models must be a positive integer or None, got {n_models!r}")
        ids = ids[:n_models]
    oracle_ids = [i for i in store.model_ids(ofolder) if i < HELD_OUT_ORACLE_START]
    unlearned = precomputed_margins(store, base, full, labels, ids)
    oracle = precomputed_margins(store, base, ofolder, labels, oracle_ids)
    n_train = _n_train(store, base, full, labels, ids)
    forget = check_forget_indices(store.forget_set(base, forget_set), n_train)
    record = score_arrays(unlearned, oracle, forget, n_train, **score_kwargs)
    n = min(len(ids), len(oracle_ids))
    record.update(method="do_nothing", dataset=recipe,
                  forget_set=int(forget_set), folders={"full": full, "oracles": ofolder},
                  model_ids=ids, oracle_ids=oracle_ids[:n], accuracy=None)
    return record


def _n_train(store: Store, dataset: str, folder: str, labels, ids) -> int:
    """Width of the train part of the folder's margins."""
    from .store import KNOWN_SPLIT_SIZES

    if dataset in KNOWN_SPLIT_SIZES:
        return KNOWN_SPLIT_SIZES[dataset]["train"]
    from .data import split_labels

    train_y, _ = split_labels(labels)
    return int(store.margins(folder, "train", labels=train_y, model_ids=ids[:1]).shape[1])

"""Which oracles of a forget set score a method, and which are held out for methods that
train on oracles.

In ``oracles/<D>/forget_set_<k>``, oracle ids ``>= HELD_OUT_ORACLE_START`` (1000) are held out:
methods may use them, scoring never does. A method that used other oracles records them
(``oracle_ids`` in its ``klom_unlearn.json``), and scoring then leaves those out as well.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

import numpy as np

from .layout import HELD_OUT_ORACLE_START, UNLEARN_RECORD, oracle_folder, unlearned_folder
from .store import Store


def used_oracle_ids(store: Store, dataset: str, forget_set: int, method: str) -> List[int]:
    """Oracle ids that ``method`` recorded as used to unlearn forget set ``k`` (none if none)."""
    relpath = f"{unlearned_folder(dataset, method, forget_set)}/{UNLEARN_RECORD}"
    if not store.path(relpath).exists():
        return []
    return [int(i) for i in store.read_json(relpath).get("oracle_ids") or []]


def scoring_oracle_ids(store: Store, dataset: str, forget_set: int,
                       method: Optional[str] = None) -> List[int]:
    """The oracles of forget set ``k`` to score against: ids below 1000, without those that
    ``method`` used."""
    used = set(used_oracle_ids(store, dataset, forget_set, method)) if method else set()
    return [i for i in store.model_ids(oracle_folder(dataset, forget_set))
            if i < HELD_OUT_ORACLE_START and i not in used]


def held_out_oracle_ids(store: Store, dataset: str, forget_set: int) -> List[int]:
    """Ids of the oracles of forget set ``k`` held out from scoring (``>= 1000``)."""
    folder = oracle_folder(dataset, forget_set)
    if not store.path(folder).is_dir():
        return []
    return [i for i in store.model_ids(folder) if i >= HELD_OUT_ORACLE_START]


def mean_oracle_logits(store: Store, dataset: str, forget_set: int,
                       oracle_ids: Sequence[int]) -> Any:
    """Mean train logits (n_train, C), float32 tensor, of the oracles ``oracle_ids`` of forget
    set ``k`` (summed in float64)."""
    if not oracle_ids:
        raise ValueError("mean_oracle_logits needs at least one oracle id")
    folder = oracle_folder(dataset, forget_set)
    total: Any = sum(store.logits(folder, "train", i).double() for i in oracle_ids)
    return (total / len(oracle_ids)).float()


def mean_logits(store: Store, folder: str, model_ids: Sequence[int]) -> np.ndarray:
    """Mean logits of ``model_ids`` of ``folder``, train then validation, ``(n_examples, C)``."""
    return np.concatenate([store.logits_of(folder, s, model_ids).mean(0)
                           for s in ("train", "val")])

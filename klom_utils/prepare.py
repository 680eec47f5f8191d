"""What a book chapter needs from a model store, and building it where it is missing.

Each chapter of the book reads a store that earlier chapters wrote. Run alone (a fresh Colab
runtime, an empty folder), a chapter calls :func:`prepare_store` first: it lists the models the
chapter needs, and on the embedded DIGITS default trains or unlearns only those that are missing
(training and unlearning are deterministic per model id and resumable, so a store built here
holds exactly the models the earlier chapters would have written). Inside ``make book`` the
store is already complete and nothing is trained twice. Paper-scale stores are never built
behind the reader's back: a missing CIFAR-10 group is an error that says which command makes it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

from .data import dataset_name, load_dataset
from .layout import HELD_OUT_ORACLE_START, full_models_folder, oracle_folder, unlearned_folder
from .store import Store, open_store
from .train import default_config, train_models
from .unlearning import unlearn_store

__all__ = ["StoreNeeds", "missing_models", "prepare_store"]

BUILDS_ITSELF = ("DIGITS",)  # datasets whose store a chapter may build on the CPU by itself


@dataclass(frozen=True)
class StoreNeeds:
    """The models a chapter reads: ``n_models`` per group, ``n_oracles`` per forget set."""

    dataset: str
    n_models: int
    forget_sets: Sequence[int]
    n_oracles: Optional[int] = None  # None: 2 * n_models (a noise floor at the same N)
    n_held_out_oracles: int = 0
    methods: Sequence[str] = field(default_factory=tuple)  # unlearned with the defaults

    def __post_init__(self):
        if isinstance(self.n_models, bool) or not isinstance(self.n_models, int) or self.n_models < 1:
            raise ValueError(f"n_models must be a positive integer, got {self.n_models!r}")
        if self.n_oracles is not None and (not isinstance(self.n_oracles, int) or self.n_oracles < 1):
            raise ValueError(f"n_oracles must be a positive integer or None, got {self.n_oracles!r}")
        if not isinstance(self.n_held_out_oracles, int) or self.n_held_out_oracles < 0:
            raise ValueError("n_held_out_oracles must be a non-negative integer, "
                             f"got {self.n_held_out_oracles!r}")
        if isinstance(self.methods, str):
            raise ValueError(f"methods must be a list of names, got the string {self.methods!r}")

    @property
    def oracle_ids(self) -> list:
        return list(range(2 * self.n_models if self.n_oracles is None else self.n_oracles))

    @property
    def held_out_ids(self) -> list:
        return list(range(HELD_OUT_ORACLE_START, HELD_OUT_ORACLE_START + self.n_held_out_oracles))

    def groups(self, name: str) -> list:
        """``(folder, forget_set, method, ids)`` for every group, in the order they are built."""
        full = list(range(self.n_models))
        out: list = [(full_models_folder(name), None, None, full)]
        for k in self.forget_sets:
            out.append((oracle_folder(name, k), k, None, self.oracle_ids + self.held_out_ids))
        for k in self.forget_sets:
            for method in self.methods:
                out.append((unlearned_folder(name, method, k), k, method, full))
        return out


def missing_models(store: Store, needs: StoreNeeds, name: str) -> list:
    """``(folder, forget_set, method, missing ids)`` for each group of ``needs`` not complete."""
    out = []
    for folder, k, method, ids in needs.groups(name):
        have = set(store.complete_model_ids(folder)) if store.path(folder).is_dir() else set()
        lacking = [i for i in ids if i not in have]
        if lacking:
            out.append((folder, k, method, lacking))
    return out


def prepare_store(store_dir, needs: StoreNeeds, *, device="auto", root=None, seed: int = 0,
                  progress: bool = False) -> Store:
    """The store at ``store_dir``, with every model ``needs`` lists; prints one line.

    On DIGITS the missing models are trained (full models, oracles, held-out oracles; the
    dataset's recipe with ``seed``, as the training chapter trains them) and unlearned
    (``needs.methods`` with their default settings) into the store; other datasets
    raise ``FileNotFoundError`` naming the missing folders and the command that fills them.
    """
    name = dataset_name(needs.dataset)
    store = open_store(store_dir, create=name in BUILDS_ITSELF)
    lacking = missing_models(store, needs, name)
    if not lacking:
        print(f"model store: has the {name} models this chapter needs")
        return store
    if name not in BUILDS_ITSELF:
        folders = ", ".join(f"{folder} ({len(ids)} models)" for folder, _, _, ids in lacking[:4])
        raise FileNotFoundError(
            f"store {str(store_dir)!r} lacks {name} models this chapter needs: {folders}"
            f"{' ...' if len(lacking) > 4 else ''}; run the training and unlearning chapters "
            "(or `klom train` / `klom unlearn`) with the same store_dir first")
    data = load_dataset(needs.dataset, root=root)
    start = time.perf_counter()
    trained, unlearned = _build(store, data, lacking, needs, device, seed, progress)
    print(f"model store: built the missing part of the embedded {data.name} store "
          f"(trained {trained} models, unlearned {unlearned}) in {time.perf_counter() - start:.0f} s")
    return store


def _build(store, data, lacking, needs, device, seed, progress) -> tuple:
    trained = unlearned = 0
    config = default_config(data.name, seed=seed)  # as the training chapter trains them
    for _folder, k, method, ids in lacking:
        if method is None:
            trained += len(train_models(data, store, ids, forget_set=k, device=device,
                                        config=config, progress=progress))
        else:
            run = unlearn_store(store, data, k, method, ids, seed=seed, device=device,
                                progress=progress)
            unlearned += len(run["written"])
    return trained, unlearned

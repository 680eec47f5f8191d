"""The store's names: folders, file names and record files, as in ``royrin/KLOM-models``.

A store holds model folders (``full_models/<D>``, ``oracles/<D>/forget_set_<k>``,
``unlearned/<D>/<method>/forget_set_<k>``, ``datamodels/<D>``) with per-model files, and
forget sets under ``forget_set_indices/<D>``. File names (``<id>`` a plain integer model id,
``<ep>`` an epoch index)::

    train_logits_<id>.pt  val_logits_<id>.pt          (n_examples, n_classes) float32
    <id>__train_margins_<ep>.npy  <id>__val_margins_<ep>.npy   (n_examples,) float32
    sd_<id>____epoch_<ep>.pt                          state dict
    train_margins_all.pt  val_margins_all.pt          stacked margins (n_models, n_examples)
    <id>__train_logits__<ep>.pt  <id>__val_logits_<ep>.pt      per-epoch logits (authors' code)
    <id>__subset.npy                                  train indices of a subset model

This module is the one table of these names; it reads and writes nothing.
"""

from __future__ import annotations

import re

SPLITS = ("train", "val")
#: Split sizes of the Hub's datasets, used to say which split a wrongly sized file holds.
KNOWN_SPLIT_SIZES = {"CIFAR10": {"train": 50_000, "val": 10_000},
                     "LIVING17": {"train": 44_200, "val": 3_400}}

#: Oracle ids from this one up are held out from scoring (for methods that need oracles).
HELD_OUT_ORACLE_START = 1000

#: Records written beside the models: how a folder was trained, unlearned, or its subset
#: models trained (``klom train``, ``klom unlearn``, ``klom datamodels``).
TRAIN_RECORD = "klom_train.json"
UNLEARN_RECORD = "klom_unlearn.json"
DATAMODELS_RECORD = "klom_datamodels.json"
RECORD_FILES = (TRAIN_RECORD, UNLEARN_RECORD, DATAMODELS_RECORD)
#: At a store's root: which repository, revision and commit each downloaded folder came from.
DOWNLOAD_RECORD = "klom_download.json"
#: Beside unlearned models: the measured wall time of the call that unlearned them.
COST_FILE = "klom_cost.json"
#: The estimated datamodel, inside :func:`datamodel_folder`.
DATAMODEL_FILE = "datamodel.npy"
#: Where per-model claims (lock files) live, under the store's root.
CLAIMS_FOLDER = ".claims"

MARGINS_RE = re.compile(r"^(\d+)__(train|val)_margins_(\d+)\.npy$")
LOGITS_RE = re.compile(r"^(train|val)_logits_(\d+)\.pt$")
EPOCH_LOGITS_RE = re.compile(r"^(\d+)__(train|val)_logits_{1,2}(\d+)\.pt$")
STATE_DICT_RE = re.compile(r"^sd_(\d+)____epoch_(\d+)\.pt$")
FORGET_RE = re.compile(r"^forget_set_(\d+)\.npy$")
SUBSET_RE = re.compile(r"^(\d+)__subset\.npy$")
#: Per-model files (subset models' index files included), each with the group of its model id.
MODEL_FILES = ((MARGINS_RE, 1), (LOGITS_RE, 2), (STATE_DICT_RE, 1), (SUBSET_RE, 1))


def full_models_folder(dataset: str) -> str:
    """Folder of the original models of ``dataset``."""
    return f"full_models/{dataset}"


def oracle_folder(dataset: str, k: int) -> str:
    """Folder of the oracles retrained without forget set ``k``."""
    return f"oracles/{dataset}/forget_set_{int(k)}"


def unlearned_folder(dataset: str, method: str, k: int) -> str:
    """Folder of the models unlearned by ``method`` for forget set ``k``."""
    return f"unlearned/{dataset}/{method}/forget_set_{int(k)}"


def datamodel_folder(dataset: str) -> str:
    """``datamodels/<DATASET>``: subset models, their subsets, and the estimated datamodel."""
    return f"datamodels/{dataset}"


def forget_set_folder(dataset: str) -> str:
    """Folder of the forget sets of ``dataset``."""
    return f"forget_set_indices/{dataset}"


def forget_set_file(dataset: str, k: int) -> str:
    """Path of forget set ``k`` relative to a store's root."""
    return f"{forget_set_folder(dataset)}/forget_set_{int(k)}.npy"


def stacked_margins_folder(dataset: str, k: int) -> str:
    """Where the authors' code keeps stacked oracle margins for forget set ``k``."""
    return f"oracle_models/{dataset}/only_margins/forget_set_{int(k)}"


def recipe_name(dataset: str, augment: bool) -> str:
    """The name a recipe's folders carry: ``"<D>_augmented"`` for augmented training (as the
    Hub's ``full_models/CIFAR10_augmented``), else the dataset's store name."""
    return f"{dataset}_augmented" if augment else dataset


def check_split(split: str) -> str:
    """``split`` if it is ``"train"`` or ``"val"``; else a ValueError."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def logits_name(split: str, model_id: int) -> str:
    return f"{check_split(split)}_logits_{int(model_id)}.pt"


def margins_name(split: str, model_id: int, epoch: int) -> str:
    return f"{int(model_id)}__{check_split(split)}_margins_{int(epoch)}.npy"


def state_dict_name(model_id: int, epoch: int) -> str:
    return f"sd_{int(model_id)}____epoch_{int(epoch)}.pt"


def stacked_margins_name(split: str) -> str:
    return f"{check_split(split)}_margins_all.pt"


def subset_name(model_id: int) -> str:
    """The file of the train indices a subset model saw."""
    return f"{int(model_id)}__subset.npy"

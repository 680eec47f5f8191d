"""The store's names (klom_utils.layout)."""

from __future__ import annotations

import pytest

from klom_utils.layout import full_models_folder, oracle_folder, stacked_margins_folder, unlearned_folder


def test_folder_names_follow_the_hub():
    assert full_models_folder("CIFAR10") == "full_models/CIFAR10"
    assert oracle_folder("CIFAR10", 3) == "oracles/CIFAR10/forget_set_3"
    assert unlearned_folder("DIGITS", "scrub", 2) == "unlearned/DIGITS/scrub/forget_set_2"
    assert stacked_margins_folder("CIFAR10", 1) == "oracle_models/CIFAR10/only_margins/forget_set_1"


def test_names_match_the_patterns_that_read_them():
    from klom_utils import layout

    assert layout.LOGITS_RE.match(layout.logits_name("val", 12)).group(2) == "12"
    assert layout.MARGINS_RE.match(layout.margins_name("train", 3, 23)).groups() == (
        "3", "train", "23")
    assert layout.STATE_DICT_RE.match(layout.state_dict_name(7, 0)).group(1) == "7"
    assert layout.SUBSET_RE.match(layout.subset_name(41)).group(1) == "41"
    assert layout.recipe_name("CIFAR10", True) == "CIFAR10_augmented"
    assert layout.recipe_name("CIFAR10", False) == "CIFAR10"
    assert layout.datamodel_folder("DIGITS") == "datamodels/DIGITS"
    with pytest.raises(ValueError, match="split must be one of"):
        layout.logits_name("test", 0)

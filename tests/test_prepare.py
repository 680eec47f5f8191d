"""prepare_store: a chapter run alone builds exactly the models it lacks, and only on DIGITS."""

from __future__ import annotations

import pytest

from klom_utils.prepare import StoreNeeds, missing_models, prepare_store
from klom_utils.store import open_store

torch = pytest.importorskip("torch")


def test_needs_are_validated():
    with pytest.raises(ValueError, match="n_models must be a positive integer, got 0"):
        StoreNeeds("digits", 0, [1])
    with pytest.raises(ValueError, match="n_oracles"):
        StoreNeeds("digits", 4, [1], n_oracles=-1)
    with pytest.raises(ValueError, match="the string 'scrub'"):
        StoreNeeds("digits", 4, [1], methods="scrub")


def test_groups_list_full_models_oracles_held_out_and_unlearned():
    needs = StoreNeeds("digits", 3, [1, 2], n_held_out_oracles=2, methods=["do_nothing"])
    groups = needs.groups("DIGITS")
    assert groups[0] == ("full_models/DIGITS", None, None, [0, 1, 2])
    assert groups[1] == ("oracles/DIGITS/forget_set_1", 1, None, [0, 1, 2, 3, 4, 5, 1000, 1001])
    assert groups[-1] == ("unlearned/DIGITS/do_nothing/forget_set_2", 2, "do_nothing", [0, 1, 2])


def test_builds_what_is_missing_once(tmp_path, capsys):
    needs = StoreNeeds("digits", 4, [3], n_oracles=5, n_held_out_oracles=1,
                       methods=["do_nothing"])
    store = prepare_store(tmp_path / "s", needs, device="cpu")
    line = capsys.readouterr().out.strip()
    assert line.startswith("model store: built the missing part")
    assert "trained 10 models, unlearned 4" in line  # 4 full + 5 oracles + 1 held out
    assert missing_models(store, needs, "DIGITS") == []
    prepare_store(tmp_path / "s", needs, device="cpu")
    assert "has the DIGITS models this chapter needs" in capsys.readouterr().out
    # asking for more builds only the difference
    more = StoreNeeds("digits", 5, [3], n_oracles=5, n_held_out_oracles=1)
    prepare_store(tmp_path / "s", more, device="cpu")
    assert "trained 1 models, unlearned 0" in capsys.readouterr().out


def test_paper_scale_store_is_never_built_behind_the_readers_back(tmp_path):
    store = open_store(tmp_path / "s", create=True)
    needs = StoreNeeds("cifar10", 100, [1])
    assert missing_models(store, needs, "CIFAR10")[0][0] == "full_models/CIFAR10"
    with pytest.raises(FileNotFoundError, match="lacks CIFAR10 models.*klom train"):
        prepare_store(tmp_path / "s", needs, device="cpu")
    with pytest.raises(FileNotFoundError, match="no store"):
        prepare_store(tmp_path / "absent", needs, device="cpu")
    assert not (tmp_path / "absent").exists()  # nothing written


def test_seed_trains_as_the_training_chapter_does(tmp_path, capsys):
    """A chapter run alone with seed=1 builds the models chapter 3 trains with seed=1."""
    from klom_utils.data import load_dataset
    from klom_utils.train import default_config, train_models

    needs = StoreNeeds("digits", 2, [1], n_oracles=1)
    store = prepare_store(tmp_path / "alone", needs, device="cpu", seed=1)
    reference = open_store(tmp_path / "chapter3", create=True)
    data = load_dataset("digits")
    train_models(data, reference, [0, 1], config=default_config("DIGITS", seed=1),
                 device="cpu", progress=False)
    assert store.read_json("full_models/DIGITS/klom_train.json") == reference.read_json(
        "full_models/DIGITS/klom_train.json")
    torch.testing.assert_close(store.logits("full_models/DIGITS", "val", 1),
                               reference.logits("full_models/DIGITS", "val", 1))
    seed0 = prepare_store(tmp_path / "seed0", needs, device="cpu")
    assert not torch.equal(seed0.logits("full_models/DIGITS", "val", 1),
                           store.logits("full_models/DIGITS", "val", 1))

"""Bad input and faults: nothing lost, nothing written before input is checked, one-line errors.

One test (or more) per finding of the reliability issue, in its order.
"""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch

from klom_utils import klom, open_store, summarize
from klom_utils.cli import main
from klom_utils.files import atomic_write, remove_stale_tmp
from klom_utils.train import default_config, train_models
from klom_utils.unlearning import METHODS, unlearn_store


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    """4 full models, 8 oracles of DIGITS forget set 3, do_nothing unlearned."""
    root = tmp_path_factory.mktemp("rel") / "store"
    train_models("digits", root, range(4), device="cpu", progress=False)
    train_models("digits", root, range(8), forget_set=3, device="cpu", progress=False)
    unlearn_store(root, "digits", 3, "do_nothing", range(4), device="cpu", progress=False)
    return root


def _cli(capsys, *args):
    status = main(list(args))
    out = capsys.readouterr()
    return status, out.out, out.err


# 1. configs checked before anything is written; a record without a model takes a new recipe

def test_bad_method_config_writes_nothing_and_the_fix_runs(small_store, capsys):
    for item in ("lr=nan", "epochs=-1", "batch_size=0"):
        status, _, err = _cli(capsys, "unlearn", "--dataset", "digits", "--store",
                              str(small_store), "--forget-set", "3", "--method",
                              "gradient_ascent", "--models", "0-1", "--config", item)
        assert status == 1 and "out of range" in err and err.count("\n") == 1, err
    assert not (small_store / "unlearned" / "DIGITS" / "gradient_ascent").exists()
    status, out, _ = _cli(capsys, "unlearn", "--dataset", "digits", "--store", str(small_store),
                          "--forget-set", "3", "--method", "gradient_ascent", "--models", "0-1",
                          "--config", "lr=0.01", "--quiet")
    assert status == 0 and "unlearned 2, 0 already in" in out


def test_bad_training_config_is_refused(tmp_path):
    for bad in (dict(lr=float("nan")), dict(epochs=0), dict(momentum=1.5),
                dict(batch_size=2.5)):
        with pytest.raises(ValueError, match="must be a"):
            train_models("digits", tmp_path / "s", [0], config=default_config("digits", **bad),
                         progress=False)
    assert not (tmp_path / "s" / "full_models").exists()


def test_a_record_without_models_accepts_a_new_recipe(tmp_path):
    store = open_store(tmp_path / "s", create=True)
    store.write_json("full_models/DIGITS/klom_train.json", {"epochs": 3, "lr": 1.0})  # killed
    with pytest.warns(UserWarning, match="holds no model: the new settings replace them"):
        assert train_models("digits", store, [0], device="cpu", progress=False) == [0]
    assert store.read_json("full_models/DIGITS/klom_train.json")["epochs"] == 20
    with pytest.raises(ValueError, match="trained with another config"):  # now it holds one
        train_models("digits", store, [1], config=default_config("digits", epochs=3,
                                                                 peak_epoch=1),
                     progress=False)


# 2. damaged files are named, with what to do

@pytest.mark.parametrize("name", ["val_logits_1.pt", "1__val_margins_19.npy"])
def test_truncated_files_are_named(small_store, tmp_path, capsys, name):
    import shutil

    store = tmp_path / "copy"
    shutil.copytree(small_store, store)
    folder = ("unlearned/DIGITS/do_nothing/forget_set_3" if name.endswith(".pt")  # accuracies
              else "oracles/DIGITS/forget_set_3")  # margins
    path = store / folder / name
    path.write_bytes(path.read_bytes()[:60])
    status, _, err = _cli(capsys, "score", "--dataset", "digits", "--store", str(store),
                          "--forget-set", "3", "--method", "do_nothing", "--n-splits", "10")
    assert status == 1 and err.count("\n") == 1, err
    assert name in err and "delete it and rerun the command that wrote it" in err


# 3. one-line errors

def test_json_under_a_file_bins_too_large_and_read_only_store(small_store, tmp_path, capsys):
    blocker = tmp_path / "f"
    blocker.write_text("x")
    base = ["score", "--dataset", "digits", "--store", str(small_store), "--forget-set", "3",
            "--method", "do_nothing", "--n-splits", "10"]
    status, _, err = _cli(capsys, *base, "--json", str(blocker / "out.json"))
    assert status == 1 and "is a file, not a folder" in err and err.count("\n") == 1
    status, _, err = _cli(capsys, *base, "--bins", "1099511627776")
    assert status == 1 and "bins must be an integer in [1, 100000]" in err
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    import shutil

    store = tmp_path / "ro"
    shutil.copytree(small_store, store)
    for path in [store, *store.rglob("*")]:
        if path.is_dir():
            path.chmod(0o555)
    try:
        status, _, err = _cli(capsys, "unlearn", "--dataset", "digits", "--store", str(store),
                              "--forget-set", "3", "--method", "gradient_ascent",
                              "--models", "0")
        assert status == 1 and "read-only" in err or "not writable" in err
    finally:
        for path in [store, *store.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)


def test_a_full_disk_is_named(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10, 10, 0))

    def write(tmp):
        raise RuntimeError("[enforce fail at inline_container.cc] basic_ios::clear: iostream error")

    with pytest.raises(OSError, match="no space left on the device"):
        atomic_write(tmp_path / "m" / "val_logits_0.pt", write)
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "m").iterdir())


# 4. the Hub client

@pytest.mark.parametrize("folder", ["*", "full_models/*", "models/CIFAR10"])
def test_download_refuses_wildcards_and_unknown_folders_before_any_request(folder, monkeypatch):
    import huggingface_hub

    from klom_utils import download

    def no_request(*a, **k):
        raise AssertionError("a request was made")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_request)
    with pytest.raises(ValueError, match="wildcards are not accepted|no top-level folder"):
        download(folder)


def test_an_unreachable_hub_is_said_first(tmp_path, monkeypatch):
    from klom_utils import download

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(ConnectionError, match="cannot reach the Hugging Face Hub"):
        download("full_models/CIFAR10", cache_dir=tmp_path, endpoint="http://127.0.0.1:9",
                 progress=False)


# 5. recipes compared before scoring

def test_full_models_and_oracles_of_other_recipes_are_not_scored_together(tmp_path, capsys):
    root = tmp_path / "s"
    train_models("digits", root, range(4), config=default_config("digits", epochs=10,
                                                                   peak_epoch=2),
                 device="cpu", progress=False)
    train_models("digits", root, range(8), forget_set=3, device="cpu", progress=False)
    unlearn_store(root, "digits", 3, "do_nothing", range(4), device="cpu", progress=False)
    base = ["score", "--dataset", "digits", "--store", str(root), "--forget-set", "3",
            "--method", "do_nothing", "--n-splits", "10"]
    status, _, err = _cli(capsys, *base)
    assert status == 1 and "different recipes (epochs: full models 10, oracles 20" in err
    status, out, err = _cli(capsys, *base, "--allow-mixed-recipes")
    assert status == 0 and "different recipes" in err


# 6. shared stores are readable

def test_store_files_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "a.npy", lambda tmp: np.save(open(tmp, "wb"), np.ones(3)))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


# 7. smaller ones

def test_klom_settings_and_inputs():
    u = np.random.default_rng(0).normal(size=(5, 20))
    for eps in (2.0, float("inf"), 0.0, "1e-5"):
        with pytest.raises(ValueError, match="0 < eps < 1"):
            klom(unlearned=u, oracle=u, eps=eps)
    with pytest.raises(ValueError, match="real numbers"):
        klom(unlearned=u > 0, oracle=u)
    with pytest.raises(ValueError, match="forget index 18446744073709551615 is out of range"):
        summarize(np.zeros(20), forget=np.array([2**64 - 1], dtype=np.uint64), n_train=10)


def test_logits_of_another_class_count_are_named(small_store, tmp_path):
    import shutil

    store = tmp_path / "copy"
    shutil.copytree(small_store, store)
    folder = store / "full_models" / "DIGITS"
    torch.save(torch.zeros(355, 12), folder / "val_logits_2.pt")
    s = open_store(store)
    with pytest.raises(ValueError, match="val_logits_2.pt has logits of shape"):
        s.logits_of("full_models/DIGITS", "val", [0, 1, 2])
    hub_like = store / "oracles" / "DIGITS" / "forget_set_9"  # logits only, as on the Hub
    hub_like.mkdir(parents=True)
    torch.save(torch.zeros(355, 10), hub_like / "val_logits_0.pt")
    torch.save(torch.zeros(355, 3), hub_like / "val_logits_1.pt")
    with pytest.raises(ValueError, match="val_logits_1.pt has logits for 3 classes"):
        s.margins("oracles/DIGITS/forget_set_9", "val", labels=np.arange(355) % 10)


def test_forget_sets_checked_and_nothing_made_for_an_unknown_one(tmp_path, capsys):
    store = open_store(tmp_path / "s", create=True)
    with pytest.raises(ValueError, match="negative indices"):
        store.write_forget_set("DIGITS", 5, [3, -1])
    status, _, err = _cli(capsys, "train", "--dataset", "digits", "--store",
                          str(tmp_path / "new"), "--models", "0", "--forget-set", "99")
    assert status == 1 and "no forget set 99 for DIGITS" in err
    assert not (tmp_path / "new").exists()


def test_stale_tmp_files_of_claimed_models_are_removed(tmp_path):
    folder = tmp_path / "full_models" / "DIGITS"
    folder.mkdir(parents=True)
    for name in (".val_logits_3.pt.ab12.tmp", ".3__val_margins_19.npy.x.tmp",
                 ".3__subset.npy.0f1e.tmp", ".val_logits_4.pt.cd34.tmp", "val_logits_3.pt"):
        (folder / name).write_text("x")
    assert remove_stale_tmp(tmp_path, "full_models/DIGITS", [3]) == 3
    assert sorted(p.name for p in folder.iterdir()) == [".val_logits_4.pt.cd34.tmp",
                                                        "val_logits_3.pt"]
    # a rerun of the training removes the ones its claims cover
    train_models("digits", tmp_path, [4], device="cpu", progress=False)
    assert not (folder / ".val_logits_4.pt.cd34.tmp").exists()


def test_unlearning_threads_do_not_change_results(small_store, tmp_path):
    """Every built-in method: --threads 1 and 2 give the same models, bit for bit."""
    import shutil

    store = tmp_path / "copy"
    shutil.copytree(small_store, store)
    train_models("digits", store, [1000, 1001], forget_set=3, device="cpu", progress=False)
    for method in METHODS:
        if method.startswith("datamodel"):
            continue  # needs a datamodel; same optimiser path as oracle_matching
        logits = []
        for threads in (1, 2):
            run = unlearn_store(store, "digits", 3, method, range(2), name=f"{method}_{threads}",
                                threads=threads, device="cpu", progress=False,
                                config={"epochs": 1} if method != "do_nothing" else None)
            logits.append(open_store(store).logits_of(run["folder"], "val", [0, 1]))
        np.testing.assert_array_equal(logits[0], logits[1], err_msg=method)


def test_digits_forget_sets_are_completed_once(tmp_path):
    from klom_utils.data import load_dataset
    from klom_utils.forget_sets import ensure_digits_forget_sets

    store = open_store(tmp_path / "s", create=True)
    data = load_dataset("digits")
    from klom_utils.forget_sets import digits_forget_sets

    indices, _ = digits_forget_sets(data)[1]
    store.write_forget_set("DIGITS", 1, indices)  # as if another task had written only set 1
    ensure_digits_forget_sets(store, data)
    assert store.forget_set_ids("DIGITS") == [1, 2, 3]

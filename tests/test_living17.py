"""LIVING-17: the user's tensor files, the Hub's precomputed files (written here in the Hub's
layout), and training and unlearning ResNet-18s on tiny random data in the authors' format."""

import json
import math

import numpy as np
import pytest
import torch

from klom_utils import data as kdata
from klom_utils.cli import main
from klom_utils.evaluate import do_nothing_klom, score
from klom_utils.models import ResNet18, load_model
from klom_utils.precomputed import oracle_margins_folder, precomputed_margins
from klom_utils.store import open_store
from klom_utils.unlearning import unlearn_store

N_TRAIN, N_VAL = kdata.LIVING17_SIZES["train"], kdata.LIVING17_SIZES["val"]


def write_living17_files(root, n_train, n_val, size=32, images=True, channels_last=False,
                         seed=0):
    """Tensor files in the authors' format: uint8 images, int64 labels."""
    g = torch.Generator().manual_seed(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("val", n_val)):
        labels = torch.arange(n) % 17
        torch.save(labels[torch.randperm(n, generator=g)], root / f"living17_{split}_labels.pt")
        if images:
            shape = (n, size, size, 3) if channels_last else (n, 3, size, size)
            x = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
            torch.save(x, root / f"living17_{split}_images.pt")


# ------------------------------------------------------------------------ the user's files

def test_missing_files_are_named_with_what_is_needed(tmp_path):
    with pytest.raises(FileNotFoundError, match="pass data_root / --data-root.*44200"):
        kdata.load_dataset("living17")
    write_living17_files(tmp_path, 5, 3, images=False)
    with pytest.raises(FileNotFoundError, match=r"missing living17_train_images\.pt, "
                                                r"living17_val_images\.pt\. LIVING-17 is read"):
        kdata.load_dataset("living17", root=tmp_path)


def test_tiny_files_load_and_are_checked(tmp_path):
    write_living17_files(tmp_path, 20, 6, channels_last=True)
    with pytest.raises(ValueError, match="living17_train_images.pt has 20 rows, expected 44200"):
        kdata.load_living17(tmp_path)
    d = kdata.load_living17(tmp_path, check_sizes=False)
    assert d.name == "LIVING17" and d.num_classes == 17 and d.mean == kdata.IMAGENET_MEAN
    assert d.train_x.shape == (20, 3, 32, 32) and d.train_x.dtype == torch.uint8
    assert d.val_y.dtype == torch.int64 and d.n_val == 6
    x = d.normalize(d.train_x[:2])
    expected = (d.train_x[0, 1, 0, 0] / 255 - 0.456) / 0.224
    assert float(x[0, 1, 0, 0]) == pytest.approx(float(expected), rel=1e-5)
    torch.save(torch.zeros(20, 3, 32, 32), tmp_path / "living17_train_images.pt")  # floats
    with pytest.raises(ValueError, match=r"living17_train_images\.pt holds torch\.float32 "
                                         r"\(20, 3, 32, 32\), expected uint8"):
        kdata.load_living17(tmp_path, check_sizes=False)
    torch.save(torch.full((6,), 17), tmp_path / "living17_val_labels.pt")
    with pytest.raises(ValueError, match="labels outside 0..16: 17..17"):
        kdata.read_living17_labels(tmp_path, check_sizes=False)


# ------------------------------------------------------------- precomputed files (Hub layout)

def logits_with_margins(margins, labels):
    """(n, 17) logits whose margins are ``margins``: the true class at m + log 16, others 0."""
    out = torch.zeros(len(labels), 17)
    out[torch.arange(len(labels)), torch.as_tensor(labels)] = torch.as_tensor(
        margins, dtype=torch.float32) + math.log(16)
    return out


@pytest.fixture(scope="module")
def hub_layout(tmp_path_factory):
    """A store in the Hub's LIVING-17 layout: full models with train logits, val margins and
    val logits; oracles as stacked margins only; forget set 1 (500 random images); and the
    label files (no images) in a data folder."""
    root = tmp_path_factory.mktemp("living17_hub")
    store, labels_dir = root / "store", root / "data"
    write_living17_files(labels_dir, N_TRAIN, N_VAL, images=False)
    train_y, val_y = kdata.read_living17_labels(labels_dir)
    rng = np.random.default_rng(0)
    forget = np.sort(rng.choice(N_TRAIN, 500, replace=False))
    (store / "forget_set_indices/LIVING17").mkdir(parents=True)
    np.save(store / "forget_set_indices/LIVING17/forget_set_1.npy", forget)
    base = rng.normal(2.0, 1.0, N_TRAIN + N_VAL).astype(np.float32)  # per-example typical margin
    full = store / "full_models/LIVING17"
    full.mkdir(parents=True)
    n_full, n_oracles = 20, 40
    for i in range(n_full):
        m = base + rng.normal(0, 0.5, base.shape).astype(np.float32)
        m[forget] += 4.0  # the full models memorised the forget set
        torch.save(logits_with_margins(m[:N_TRAIN], train_y), full / f"train_logits_{i}.pt")
        torch.save(logits_with_margins(m[N_TRAIN:], val_y), full / f"val_logits_{i}.pt")
        np.save(full / f"{i}__val_margins_24.npy", m[N_TRAIN:])
    oracles = base + rng.normal(0, 0.5, (n_oracles, base.size)).astype(np.float32)
    folder = store / "oracle_models/LIVING17/only_margins/forget_set_1"
    folder.mkdir(parents=True)
    torch.save(torch.from_numpy(oracles[:, :N_TRAIN].copy()), folder / "train_margins_all.pt")
    torch.save(torch.from_numpy(oracles[:, N_TRAIN:].copy()), folder / "val_margins_all.pt")
    return {"store": open_store(store), "labels": (train_y, val_y), "forget": forget,
            "n_full": n_full, "n_oracles": n_oracles, "labels_dir": labels_dir}


def test_precomputed_margins_from_the_hub_layout(hub_layout):
    store, labels = hub_layout["store"], hub_layout["labels"]
    assert oracle_margins_folder(store, "LIVING17", 1) == \
        "oracle_models/LIVING17/only_margins/forget_set_1"
    oracle = precomputed_margins(store, "LIVING17", oracle_margins_folder(store, "LIVING17", 1))
    assert oracle.shape == (hub_layout["n_oracles"], N_TRAIN + N_VAL)  # no labels needed
    with pytest.raises(ValueError, match="holds logits.*read_living17_labels"):
        precomputed_margins(store, "LIVING17", "full_models/LIVING17")
    full = precomputed_margins(store, "LIVING17", "full_models/LIVING17", labels)
    assert full.shape == (hub_layout["n_full"], N_TRAIN + N_VAL)
    # val margins come from the margins files, train margins from the logits and the labels
    np.testing.assert_allclose(full[2, N_TRAIN:], np.load(
        store.path("full_models/LIVING17/2__val_margins_24.npy")))
    assert store.margins("full_models/LIVING17", "val").shape == (hub_layout["n_full"], N_VAL)
    with pytest.raises(FileNotFoundError, match="no oracles of LIVING17 forget set 2"):
        oracle_margins_folder(store, "LIVING17", 2)


def test_wrong_split_named_by_its_living17_size(hub_layout, tmp_path):
    store = open_store(tmp_path, create=True)
    folder = store.path("full_models/LIVING17")
    folder.mkdir(parents=True)
    torch.save(torch.zeros(N_TRAIN, 17), folder / "val_logits_0.pt")  # the train split's rows
    with pytest.raises(ValueError, match="44200 rows is the size of the LIVING17 train split"):
        store.margins("full_models/LIVING17", "val", labels=hub_layout["labels"][1])


def test_do_nothing_klom_from_precomputed_files(hub_layout):
    r = do_nothing_klom(hub_layout["store"], "living17", 1, labels=hub_layout["labels"],
                        n_splits=10)
    assert r["method"] == "do_nothing" and r["dataset"] == "LIVING17"
    assert r["forget_size"] == 500 and r["forget"]["count"] == 500
    assert r["retain"]["count"] == N_TRAIN - 500 and r["validation"]["count"] == N_VAL
    assert r["n_unlearned"] == r["n_oracles"] == hub_layout["n_full"]
    assert r["folders"]["oracles"].startswith("oracle_models/LIVING17/only_margins")
    # the shifted forget set stands out; elsewhere doing nothing is right
    assert r["forget"]["mean"] > 2 * r["retain"]["mean"]
    assert r["forget"]["p95"] > r["validation"]["p95"] + 1.0
    assert r["retain"]["mean"] == pytest.approx(r["noise_floor"]["retain"]["mean"], rel=0.3)
    assert r["noise_floor"]["n_per_side"] == hub_layout["n_full"]
    json.dumps(r["forget"])  # plain numbers
    # the labels alone, read from the user's label files, are enough
    labels = kdata.read_living17_labels(hub_layout["labels_dir"])
    again = do_nothing_klom(hub_layout["store"], "LIVING17", 1, labels=labels, n_models=3,
                            n_splits=10)
    assert again["model_ids"] == [0, 1, 2] and again["n_unlearned"] == 3
    with pytest.raises(ValueError, match="n_models must be a positive integer or None, got 0"):
        do_nothing_klom(hub_layout["store"], "LIVING17", 1, labels=labels, n_models=0)


# ------------------------------------------------------------ training and unlearning (CPU)

@pytest.mark.slow
def test_train_unlearn_score_living17_on_tiny_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(kdata.LIVING17_SIZES, "train", 24)
    monkeypatch.setitem(kdata.LIVING17_SIZES, "val", 8)
    data_root, store_dir = tmp_path / "living17", tmp_path / "store"
    write_living17_files(data_root, 24, 8, size=16)
    store = open_store(store_dir, create=True)
    store.write_forget_set("LIVING17", 1, [0, 5, 9])
    common = ["--dataset", "living17", "--store", str(store_dir), "--data-root", str(data_root),
              "--epochs", "1", "--device", "cpu", "--quiet"]
    assert main(["train", "--models", "0", *common]) == 0
    assert main(["train", "--models", "0-1", "--forget-set", "1", *common]) == 0
    assert "living17 oracles of forget set 1: trained 2" in capsys.readouterr().out
    record = store.read_json("full_models/LIVING17/klom_train.json")
    assert (record["arch"], record["batch_size"], record["lr"], record["label_smoothing"],
            record["epochs"]) == ("resnet18", 1024, 0.6, 0.1, 1)
    assert record["peak_epoch"] == pytest.approx(12 / 25) and "augment" not in record
    sd = store.state_dict("full_models/LIVING17", 0)
    assert all(k.startswith("model.") for k in sd)
    model = load_model(sd, arch="auto")
    assert isinstance(model, ResNet18) and model.fc.out_features == 17
    assert store.logits("full_models/LIVING17", "train", 0).shape == (24, 17)
    # margins on un-augmented inputs in eval mode: the stored logits are the model's
    d = kdata.load_dataset("living17", root=data_root)
    with torch.no_grad():
        torch.testing.assert_close(model(d.normalize(d.val_x)),
                                   store.logits("full_models/LIVING17", "val", 0))
    out = unlearn_store(store, d, 1, "gradient_ascent", [0], device="cpu", progress=False)
    assert out["written"] == [0]
    r = score(store, d, 1, "gradient_ascent", n_splits=10)
    assert r["dataset"] == "LIVING17" and r["forget_size"] == 3 and r["n_per_side"] == 1
    assert r["noise_floor"]["n_per_side"] == 1  # 2 oracles: a floor at N = 1


def test_living17_recipe_and_command_line_errors(tmp_path, capsys):
    from klom_utils.train import default_config

    c = default_config("living17")
    assert (c.arch, c.epochs, c.peak_epoch, c.lr, c.batch_size, c.label_smoothing) == \
        ("resnet18", 25, 12, 0.6, 1024, 0.1)
    with pytest.raises(ValueError, match="ResNet-18s train one at a time.*got 2"):
        default_config("living17", stack=2)
    assert main(["train", "--dataset", "living17", "--store", str(tmp_path / "s"),
                 "--models", "0", "--device", "cpu", "--quiet"]) == 1
    assert "pass data_root / --data-root, a folder holding living17_train_images.pt" in \
        capsys.readouterr().err

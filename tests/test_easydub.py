"""EasyDUB's dataset read as a store, and scored as its own evaluation script scores it."""

import json

import numpy as np
import pytest
from easydub_standin import FORGET_SETS, N_TRAIN, N_VAL, forget_set, full_margins, write_easydub

import klom_utils.data
from klom_utils import open_store
from klom_utils.cli import main
from klom_utils.easydub import export
from klom_utils.files import save_npy
from klom_utils.layout import full_models_folder, margins_name, oracle_folder, unlearned_folder
from klom_utils.status import store_status

N_MODELS = 20


@pytest.fixture(scope="module")
def easydub_root(tmp_path_factory):
    return write_easydub(tmp_path_factory.mktemp("easydub"), N_MODELS)


@pytest.fixture(autouse=True)
def no_cifar10(monkeypatch):
    """Scoring margins must read neither the CIFAR-10 images nor their labels."""
    def refuse(*args, **kwargs):
        raise AssertionError("CIFAR-10 was read")
    monkeypatch.setattr(klom_utils.data, "download_cifar10", refuse)
    monkeypatch.setattr(klom_utils.data, "read_cifar10_labels", refuse)


def test_open_store_reads_the_layout_by_the_store_names(easydub_root):
    store = open_store(easydub_root)
    assert store.folders() == [full_models_folder("CIFAR10"), oracle_folder("CIFAR10", 1),
                               oracle_folder("CIFAR10", 2)]
    assert store.forget_set_ids("CIFAR10") == [1, 2]
    assert store.forget_set("CIFAR10", 2).tolist() == forget_set(2).tolist()
    assert store.complete_model_ids(oracle_folder("CIFAR10", 2)) == list(range(N_MODELS))
    # the oracle's retain array (forget columns omitted) and forget array go back to their columns
    oracle = store.margins(oracle_folder("CIFAR10", 2), "train", model_ids=[3, 0])
    assert oracle.shape == (2, N_TRAIN) and oracle.dtype == np.float32
    np.testing.assert_array_equal(oracle[0], full_margins("oracle", 2, 3)[:N_TRAIN])
    np.testing.assert_array_equal(store.margins(full_models_folder("CIFAR10"), "val")[5],
                                  full_margins("pretrain", 0, 5)[N_TRAIN:])
    # doing nothing is the pretrain models
    np.testing.assert_array_equal(store.margins(unlearned_folder("CIFAR10", "do_nothing", 1), "train"),
                                  store.margins(full_models_folder("CIFAR10"), "train"))
    assert not store.has_logits(full_models_folder("CIFAR10"))
    with pytest.raises(FileNotFoundError, match="margins only"):
        store.logits_of(full_models_folder("CIFAR10"), "train", [0])
    status = store_status(store)
    assert status["forget_sets"] == {"CIFAR10": [1, 2]}
    assert status["folders"][oracle_folder("CIFAR10", 1)]["complete"] == list(range(N_MODELS))


def _binned_kl(p, q, bins=20, eps=1e-5, lo=-100.0, hi=100.0):
    """KL(p || q) of two samples as EasyDUB's easydub/eval.py computes it (written anew here):
    both clipped, bins+1 edges over the joint range (widened by 1 when empty), numpy.digitize
    with indices 1..bins counted (a sample at the top edge falls out), q floored at eps where
    p > 0, no renormalisation."""
    p, q = np.clip(p, lo, hi), np.clip(q, lo, hi)
    start, end = min(p.min(), q.min()), max(p.max(), q.max())
    if start >= end:
        end = start + 1.0
    edges = np.linspace(start, end, bins + 1)
    counts = [np.bincount(np.digitize(x, edges), minlength=bins + 2)[1:bins + 1] for x in (p, q)]
    pp, qq = (c / c.sum() if c.sum() else np.zeros(bins) for c in counts)
    q_safe = np.where(pp > 0, np.maximum(qq, eps), qq)
    kept = pp > 0
    return float(np.sum(pp[kept] * np.log(pp[kept] / q_safe[kept])))


def _eval_pretrain_table(root, k, n_models):
    """What EasyDUB's eval_pretrain.py prints (p95 per split), from the files by their paths."""
    base = root / "margins" / "cifar10"

    def stack(folder):
        return np.stack([np.load(folder / "resnet9" / f"id_{i}_epoch_23.npy") for i in range(n_models)])

    keep = np.ones(N_TRAIN, dtype=bool)
    keep[np.load(root / "forget_sets" / "cifar10" / f"forget_set_{k}.npy")] = False
    table = {}
    for split, pretrain_folder in (("retain", "retain"), ("forget", f"forget_{k}"), ("val", "val")):
        oracle = stack(base / "oracle" / f"forget_{k}" / split)
        pretrain = stack(base / "pretrain" / pretrain_folder)
        if split == "retain":
            pretrain = pretrain[:, keep]
        scores = [_binned_kl(pretrain[:, j], oracle[:, j]) for j in range(oracle.shape[1])]
        table[split] = float(np.percentile(scores, 95))
    return table


def test_klom_score_reproduces_eval_pretrain(easydub_root, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["score", "--store", str(easydub_root), "--dataset", "cifar10", "--forget-set", "2",
                 "--method", "do_nothing", "--variant", "easydub", "--n-splits", "10",
                 "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    expected = _eval_pretrain_table(easydub_root, 2, N_MODELS)
    got = {"retain": record["retain"]["p95"], "forget": record["forget"]["p95"],
           "val": record["validation"]["p95"]}
    assert {s: round(v, 4) for s, v in got.items()} == {s: round(v, 4) for s, v in expected.items()}
    assert record["n_per_side"] == N_MODELS and record["forget_size"] == FORGET_SETS[2]
    assert record["accuracy"] is None
    assert "no accuracies" in capsys.readouterr().err


def _write_margins_folder(store, folder, kind, k, ids):
    """A KLOM-layout folder of margins files only (no logits) at CIFAR-10's sizes."""
    for i in ids:
        m = full_margins(kind, k, i) + 0.5
        save_npy(store.root / folder / margins_name("train", i, 23), m[:N_TRAIN])
        save_npy(store.root / folder / margins_name("val", i, 23), m[N_TRAIN:])


def test_populations_are_never_mixed_silently(easydub_root, tmp_path, capsys):
    import shutil

    root = tmp_path / "both"
    shutil.copytree(easydub_root, root)
    store = open_store(root)
    _write_margins_folder(store, oracle_folder("CIFAR10", 2), "oracle", 2, range(N_MODELS))
    args = ["score", "--store", str(root), "--dataset", "cifar10", "--forget-set", "2",
            "--method", "do_nothing", "--n-splits", "10"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "easydub/EasyDUB-dataset" in err and "KLOM-models" in err
    out = tmp_path / "mixed.json"
    assert main(args + ["--allow-mixed-recipes", "--json", str(out)]) == 0
    kinds = [w["kind"] for w in json.loads(out.read_text())["diagnostics"]["warnings"]]
    assert "mixed_populations" in kinds


def test_klom_layout_margins_score_without_cifar10(tmp_path):
    """A KLOM-models store holding margins (no logits) scores with neither images nor labels."""
    store = open_store(tmp_path / "store", create=True)
    store.write_forget_set("CIFAR10", 2, forget_set(2))
    _write_margins_folder(store, unlearned_folder("CIFAR10", "do_nothing", 2), "pretrain", 0, range(4))
    _write_margins_folder(store, oracle_folder("CIFAR10", 2), "oracle", 2, range(8))
    out = tmp_path / "r.json"
    assert main(["score", "--store", str(store.root), "--dataset", "cifar10", "--forget-set", "2",
                 "--method", "do_nothing", "--n-splits", "10", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["n_per_side"] == 4 and record["accuracy"] is None
    assert record["validation"]["count"] == N_VAL


def test_logits_need_the_labels_alone(tmp_path, monkeypatch):
    """Where only logits exist, margins need the labels (read once), never the images."""
    import torch

    calls = []
    rng = np.random.default_rng(0)
    labels = (rng.integers(0, 10, N_TRAIN), rng.integers(0, 10, N_VAL))

    def read_labels(root=None):
        calls.append(root)
        return labels

    monkeypatch.setattr(klom_utils.data, "read_cifar10_labels", read_labels)
    store = open_store(tmp_path / "store", create=True)
    store.write_forget_set("CIFAR10", 1, forget_set(1))
    for folder in (unlearned_folder("CIFAR10", "do_nothing", 1), oracle_folder("CIFAR10", 1)):
        store.path(folder).mkdir(parents=True)
        for i in range(3):
            for split, n in (("train", N_TRAIN), ("val", N_VAL)):
                torch.save(torch.from_numpy(rng.normal(size=(n, 10)).astype(np.float32)),
                           store.path(folder) / f"{split}_logits_{i}.pt")
    out = tmp_path / "r.json"
    assert main(["score", "--store", str(store.root), "--dataset", "cifar10", "--forget-set", "1",
                 "--method", "do_nothing", "--n-splits", "10", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert len(calls) == 1
    assert set(record["accuracy"]) == {"forget", "retain", "test"}


def test_export_writes_the_layout_that_open_store_reads_back(tmp_path):
    rng = np.random.default_rng(1)
    full, oracles = rng.normal(size=(3, 42)), {2: rng.normal(size=(4, 42))}
    sets = {2: np.array([9, 2, 5]), 3: np.array([0, 1])}
    export(tmp_path / "e", "DIGITS", "mlp", full, oracles, sets, n_train=30)
    assert (tmp_path / "e/margins/digits/oracle/forget_2/retain/mlp/id_3_epoch_0.npy").is_file()
    store = open_store(tmp_path / "e")
    assert store.folders() == [full_models_folder("DIGITS"), oracle_folder("DIGITS", 2)]
    assert store.forget_set_ids("DIGITS") == [2, 3] and store.forget_set("DIGITS", 2).tolist() == [9, 2, 5]
    got = store.margins(oracle_folder("DIGITS", 2), "train")
    np.testing.assert_allclose(got, oracles[2][:, :30], rtol=1e-6)
    np.testing.assert_allclose(store.margins(full_models_folder("DIGITS"), "val"), full[:, 30:], rtol=1e-6)

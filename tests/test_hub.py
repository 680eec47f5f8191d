"""klom_utils.download through the real huggingface_hub code, against a local stand-in Hub."""

import numpy as np
import pytest
import torch
from hub_standin import COMMIT, HubStandIn

from klom_utils import download, open_store
from klom_utils.hub import allow_patterns
from klom_utils.layout import full_models_folder, oracle_folder

REPO = "royrin/KLOM-models"
VAL_Y = np.arange(12) % 10


@pytest.fixture
def remote(tmp_path):
    """A repository in the Hub's layout, written by the project's own store code."""
    root = tmp_path / "remote"
    store = open_store(root, create=True)
    gen = torch.Generator().manual_seed(0)
    for folder in (full_models_folder("CIFAR10"), oracle_folder("CIFAR10", 3)):
        for i in range(3):
            store.write_model(folder, i, train_logits=torch.randn(30, 10, generator=gen),
                              val_logits=torch.randn(12, 10, generator=gen),
                              train_labels=np.arange(30) % 10, val_labels=VAL_Y,
                              state_dict={"model.9.weight": torch.zeros(10, 128)}, epoch=23)
    store.write_forget_set("CIFAR10", 3, [1, 5, 7])
    with HubStandIn(root, REPO) as hub:
        yield hub


@pytest.fixture(autouse=True)
def online(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def test_downloads_only_the_chosen_folders_and_kinds(remote, tmp_path):
    store = download([oracle_folder("CIFAR10", 3), "forget_set_indices/CIFAR10"],
                     cache_dir=tmp_path / "cache", endpoint=remote.endpoint, progress=False)
    assert str(store.root).endswith(f"snapshots/{COMMIT}")
    files = sorted(p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file())
    assert "oracles/CIFAR10/forget_set_3/val_logits_2.pt" in files
    assert "oracles/CIFAR10/forget_set_3/1__val_margins_23.npy" in files
    assert "forget_set_indices/CIFAR10/forget_set_3.npy" in files
    assert not any(f.startswith("full_models") for f in files)
    assert not any("/sd_" in f for f in files), "checkpoints are left out by default"
    fetched = [r for r in remote.requests if "/resolve/" in r]
    assert not any("sd_" in r or "full_models" in r for r in fetched)
    # the store reads it like any other
    assert store.margins(oracle_folder("CIFAR10", 3), "val").shape == (3, 12)
    assert store.forget_set("CIFAR10", 3).tolist() == [1, 5, 7]


def test_checkpoints_on_request_and_revision(remote, tmp_path):
    store = download(full_models_folder("CIFAR10"), kinds=["checkpoints"], revision=COMMIT,
                     cache_dir=tmp_path / "cache", endpoint=remote.endpoint, progress=False)
    assert store.model_ids(full_models_folder("CIFAR10")) == [0, 1, 2]
    assert set(store.state_dict(full_models_folder("CIFAR10"), 2)) == {"model.9.weight"}
    assert not list(store.path(full_models_folder("CIFAR10")).glob("*logits*"))


def test_offline_uses_the_cache_and_names_what_is_missing(remote, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    download(oracle_folder("CIFAR10", 3), cache_dir=cache, endpoint=remote.endpoint, progress=False)
    n_requests = len(remote.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    store = download(oracle_folder("CIFAR10", 3), cache_dir=cache, endpoint=remote.endpoint, progress=False)
    assert len(remote.requests) == n_requests, "offline must not touch the network"
    assert store.margins(oracle_folder("CIFAR10", 3), "val").shape == (3, 12)
    with pytest.raises(FileNotFoundError,
                       match=r"folder 'full_models/CIFAR10' .*HF_HUB_OFFLINE=1.*download\("):
        download(full_models_folder("CIFAR10"), cache_dir=cache, progress=False)
    with pytest.raises(FileNotFoundError, match="oracles/CIFAR10/forget_set_3"):
        download(oracle_folder("CIFAR10", 3), cache_dir=tmp_path / "empty_cache", progress=False)


def test_unknown_folder_online(remote, tmp_path):
    with pytest.raises(FileNotFoundError, match="check the folder name"):
        download("oracles/CIFAR10/forget_set_99", cache_dir=tmp_path / "cache",
                 endpoint=remote.endpoint, progress=False)


def test_bad_arguments():
    with pytest.raises(ValueError, match="kinds must be"):
        allow_patterns(["full_models/CIFAR10"], ["weights"])
    with pytest.raises(ValueError, match="inside the repository"):
        download("../etc")
    with pytest.raises(ValueError, match="at least one folder"):
        download([])
    assert allow_patterns(["forget_set_indices/CIFAR10"], ["margins"]) == ["forget_set_indices/CIFAR10/*"]
    assert allow_patterns(["full_models/CIFAR10"], None) == ["full_models/CIFAR10/*"]

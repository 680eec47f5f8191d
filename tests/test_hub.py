"""klom_utils.download through the real huggingface_hub code, against a local stand-in Hub."""

import numpy as np
import pytest
import torch
from easydub_standin import write_easydub
from hub_standin import COMMIT, HubStandIn

import klom_utils.hub
from klom_utils import download, open_store
from klom_utils.cli import main
from klom_utils.data import TensorDataset
from klom_utils.evaluate import score
from klom_utils.hub import EASYDUB_REPO_ID as EASYDUB_REPO
from klom_utils.hub import allow_patterns, download_plan, local_plan
from klom_utils.layout import full_models_folder, oracle_folder, unlearned_folder

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
    # a well-formed name the repository does not hold: the Hub's answer names it
    with pytest.raises(FileNotFoundError, match="check the folder name"):
        download("oracles/CIFAR10/forget_set_9", cache_dir=tmp_path / "cache",
                 endpoint=remote.endpoint, progress=False)


@pytest.mark.parametrize("folder", ["oracles/CIFAR10/forget_set_99", "full_models/CIFAR1",
                                    "forget_set_indices/cifar10", "full_models/CIFAR10/extra"])
def test_misspelt_folders_are_refused_before_any_request(folder, monkeypatch):
    import huggingface_hub

    def no_request(*args, **kwargs):
        raise AssertionError("a request was made")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_request)
    with pytest.raises(ValueError, match=f"folder {folder!r}: royrin/KLOM-models has no"):
        download(folder, endpoint="http://127.0.0.1:9")
    with pytest.raises(ValueError, match="has no 'forget_11' there"):
        download_plan("margins/cifar10/oracle/forget_11", repo="easydub/EasyDUB-dataset",
                      endpoint="http://127.0.0.1:9")


def test_bad_arguments():
    with pytest.raises(ValueError, match="kinds must be"):
        allow_patterns(["full_models/CIFAR10"], ["weights"])
    with pytest.raises(ValueError, match="inside the repository"):
        download("../etc")
    with pytest.raises(ValueError, match="at least one folder"):
        download([])
    assert allow_patterns(["forget_set_indices/CIFAR10"], ["margins"]) == ["forget_set_indices/CIFAR10/*"]
    assert allow_patterns(["full_models/CIFAR10"], None) == ["full_models/CIFAR10/*"]


def test_dry_run_lists_sizes_and_fetches_nothing(remote, tmp_path, capsys):
    assert main(["download", oracle_folder("CIFAR10", 3), "--dry-run", "--endpoint", remote.endpoint,
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    sizes = {f: (remote.folder / f).stat().st_size for f in remote.files()
             if f.startswith("oracles/") and "/sd_" not in f}
    assert len(sizes) == 12  # logits and margins of 3 models, no checkpoints
    for f in sizes:
        assert f in out
    assert f"total: 12 files ({sum(sizes.values())} bytes)" in out
    assert not [r for r in remote.requests if "/resolve/" in r]
    assert not (tmp_path / "cache").exists()


def test_download_larger_than_free_space_is_refused(remote, tmp_path, monkeypatch):
    monkeypatch.setattr(klom_utils.hub, "free_bytes", lambda path: 1000)
    plan = download_plan(full_models_folder("CIFAR10"), endpoint=remote.endpoint)
    with pytest.raises(OSError, match=rf"needs .*\({plan.total} bytes\) but .* \(1000 bytes\) free"):
        download(full_models_folder("CIFAR10"), cache_dir=tmp_path / "cache", endpoint=remote.endpoint,
                 progress=False)
    assert not [r for r in remote.requests if "/resolve/" in r]


def test_revision_is_recorded_shown_and_mixed_revisions_warn(tmp_path, capsys):
    root = tmp_path / "remote"
    store = open_store(root, create=True)
    for folder in (full_models_folder("CIFAR10"), oracle_folder("CIFAR10", 3)):
        for i in range(4):
            store.write_model(folder, i, train_logits=torch.randn(30, 10), val_logits=torch.randn(12, 10),
                              train_labels=np.arange(30) % 10, val_labels=VAL_Y, epoch=23)
    store.write_forget_set("CIFAR10", 3, [1, 5, 7])
    other = "fedcba9876543210fedcba9876543210fedcba98"
    local = tmp_path / "local"
    with HubStandIn(root, REPO, revisions={"v1": other}) as hub:
        kw = dict(local_dir=local, endpoint=hub.endpoint, progress=False)
        download([oracle_folder("CIFAR10", 3), "forget_set_indices/CIFAR10"], revision="v1", **kw)
        got = download(full_models_folder("CIFAR10"), **kw)
        with pytest.raises(FileNotFoundError, match="no revision 'v2'"):
            download(full_models_folder("CIFAR10"), revision="v2", **kw)
    records = got.downloads()
    assert records[oracle_folder("CIFAR10", 3)]["commit"] == other
    assert records[oracle_folder("CIFAR10", 3)]["revision"] == "v1"
    assert records[full_models_folder("CIFAR10")]["commit"] == COMMIT
    assert main(["status", "--store", str(local)]) == 0
    out = capsys.readouterr().out
    assert f"downloaded {oracle_folder('CIFAR10', 3)}: {REPO} revision v1 = commit {other}" in out
    # do nothing: the full models copied as the unlearned ones, scored against oracles of v1
    for f in got.path(full_models_folder("CIFAR10")).glob("*"):
        target = got.root / unlearned_folder("CIFAR10", "do_nothing", 3) / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f.read_bytes())
    data = TensorDataset(name="CIFAR10", train_x=torch.zeros(30, 3, 2, 2, dtype=torch.uint8),
                         train_y=torch.arange(30) % 10, val_x=torch.zeros(12, 3, 2, 2, dtype=torch.uint8),
                         val_y=torch.from_numpy(VAL_Y), classes=tuple("abcdefghij"), mean=(0.5,) * 3,
                         std=(0.5,) * 3, scale=255.0)
    record = score(got, data, 3, "do_nothing", n_splits=10)
    warning = [w["message"] for w in record["diagnostics"]["warnings"] if w["kind"] == "mixed_revisions"]
    assert warning and other in warning[0] and COMMIT in warning[0]


@pytest.mark.parametrize("args, expected", [
    (["nothing/CIFAR10"], "no top-level folder 'nothing'"),
    (["full_models/*"], "wildcards"),
    (["../x"], "inside the repository"),
    (["full_models/CIFAR10", "--revision", "bad rev"], "revision 'bad rev'"),
    (["full_models/CIFAR10", "--revision", "a..b"], "revision 'a..b'"),
    (["margins/cifar100", "--repo", "easydub/EasyDUB-dataset"], "no 'cifar100' there"),
    (["full_models/CIFAR10", "--repo", "easydub/EasyDUB-dataset"], "no top-level folder"),
    (["margins/cifar10/oracle/forget_x", "--repo", "easydub/EasyDUB-dataset"], "no 'forget_x'"),
])
def test_bad_names_are_one_line_errors_before_any_request(remote, tmp_path, capsys, args, expected):
    for extra in ([], ["--dry-run"]):
        assert main(["download", *args, *extra, "--endpoint", remote.endpoint,
                     "--cache-dir", str(tmp_path / "cache")]) == 1
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and expected in err, err
    assert remote.requests == []


def test_easydub_download_fetches_only_the_named_folders(tmp_path, capsys):
    root = write_easydub(tmp_path / "remote", n_models=2)
    with HubStandIn(root, EASYDUB_REPO) as hub:
        assert main(["download", "margins/cifar10/oracle/forget_2", "forget_sets/cifar10",
                     "--repo", EASYDUB_REPO, "--endpoint", hub.endpoint, "--quiet",
                     "--cache-dir", str(tmp_path / "cache")]) == 0
        fetched = [r for r in hub.requests if "/resolve/" in r]
    assert fetched and all("oracle/forget_2/" in r or "forget_sets/cifar10/" in r for r in fetched)
    out = capsys.readouterr().out
    assert f"{oracle_folder('CIFAR10', 2)}: 2 models" in out
    store = open_store(out.split("store: ")[1].split()[0])
    assert store.folders() == [oracle_folder("CIFAR10", 2)]
    assert store.margins(oracle_folder("CIFAR10", 2), "train").shape == (2, 50_000)
    assert store.downloads()["margins/cifar10/oracle/forget_2"]["commit"] == COMMIT


def test_local_plan_lists_what_the_hub_would(remote, tmp_path):
    folders = [oracle_folder("CIFAR10", 3), "forget_set_indices/CIFAR10"]
    online = download_plan(folders, endpoint=remote.endpoint)
    offline = local_plan(remote.folder, folders)
    assert offline.files == online.files and offline.total == online.total > 0
    assert "total: 13 files" in offline.listing()

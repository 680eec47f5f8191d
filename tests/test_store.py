"""Reading and writing model stores in the exact KLOM-models layout."""

import os

import numpy as np
import pytest
import torch

from klom_utils import margins, open_store
from klom_utils.layout import full_models_folder, oracle_folder, stacked_margins_folder

N_TRAIN, N_VAL, N_CLASSES = 50, 20, 10
RNG = np.random.default_rng(0)
TRAIN_Y = RNG.integers(0, N_CLASSES, N_TRAIN)
VAL_Y = RNG.integers(0, N_CLASSES, N_VAL)


def _logits(n, seed):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(n, N_CLASSES)).astype(np.float32))


@pytest.fixture
def hub_like(tmp_path):
    """Files written by hand exactly as the Hub names them (no margins for train)."""
    folder = tmp_path / "oracles/CIFAR10/forget_set_3"
    folder.mkdir(parents=True)
    for i in (0, 1, 2):
        torch.save(_logits(N_TRAIN, i), folder / f"train_logits_{i}.pt")
        val = _logits(N_VAL, 100 + i)
        torch.save(val, folder / f"val_logits_{i}.pt")
        np.save(folder / f"{i}__val_margins_23.npy", margins(val.numpy(), VAL_Y).astype(np.float32))
    torch.save({"model.9.weight": torch.zeros(10, 128)}, folder / "sd_1____epoch_23.pt")
    torch.save({"model.9.weight": torch.ones(10, 128)}, folder / "sd_1____epoch_10.pt")
    fs = tmp_path / "forget_set_indices/CIFAR10"
    fs.mkdir(parents=True)
    np.save(fs / "forget_set_3.npy", np.array([4, 8, 15], dtype=np.int64))
    return tmp_path




def test_reads_per_model_logits_and_margins_files(hub_like):
    store = open_store(hub_like)
    folder = oracle_folder("CIFAR10", 3)
    assert store.model_ids(folder) == [0, 1, 2]
    # val: margins files are preferred and exist for every model
    val = store.margins(folder, "val")
    assert val.shape == (3, N_VAL) and val.dtype == np.float32
    expected = np.stack([margins(_logits(N_VAL, 100 + i).numpy(), VAL_Y) for i in range(3)])
    np.testing.assert_allclose(val, expected, rtol=1e-6)
    # train: only logits, so labels are needed
    with pytest.raises(ValueError, match="pass the train labels"):
        store.margins(folder, "train")
    train = store.margins(folder, "train", labels=TRAIN_Y, model_ids=[2, 0])
    np.testing.assert_allclose(train[0], margins(_logits(N_TRAIN, 2).numpy(), TRAIN_Y), rtol=1e-6)
    np.testing.assert_allclose(train[1], margins(_logits(N_TRAIN, 0).numpy(), TRAIN_Y), rtol=1e-6)


def test_logits_file_of_the_wrong_split_is_refused(hub_like):
    store = open_store(hub_like)
    folder = hub_like / oracle_folder("CIFAR10", 3)
    torch.save(_logits(N_VAL, 7), folder / "train_logits_2.pt")  # val-sized file named train
    with pytest.raises(ValueError, match=r"train_logits_2\.pt has 20 rows but the train split has 50"):
        store.margins(oracle_folder("CIFAR10", 3), "train", labels=TRAIN_Y)


def test_hub_sized_file_names_its_split(tmp_path):
    folder = tmp_path / "full_models/CIFAR10"
    folder.mkdir(parents=True)
    torch.save(torch.zeros(10_000, 10), folder / "train_logits_0.pt")
    with pytest.raises(ValueError, match="size of the CIFAR10 val split"):
        open_store(tmp_path).margins("full_models/CIFAR10", "train", labels=np.zeros(50_000, int))


def test_stacked_margins(tmp_path):
    folder = tmp_path / stacked_margins_folder("CIFAR10", 1)
    folder.mkdir(parents=True)
    stacked = torch.from_numpy(RNG.normal(size=(4, N_TRAIN)).astype(np.float32))
    torch.save(stacked, folder / "train_margins_all.pt")
    store = open_store(tmp_path)
    folder = stacked_margins_folder("CIFAR10", 1)
    np.testing.assert_array_equal(store.margins(folder, "train"), stacked.numpy())
    np.testing.assert_array_equal(
        store.margins(folder, "train", model_ids=[3, 1]), stacked.numpy()[[3, 1]]
    )
    assert store.model_ids(stacked_margins_folder("CIFAR10", 1)) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="outside the 4 rows"):
        store.margins(stacked_margins_folder("CIFAR10", 1), "train", model_ids=[4])


def test_epoch_logits_names_from_the_authors_code(tmp_path):
    folder = tmp_path / "full_models/CIFAR10"
    folder.mkdir(parents=True)
    torch.save(_logits(N_TRAIN, 1), folder / "5__train_logits__10.pt")
    torch.save(_logits(N_TRAIN, 2), folder / "5__train_logits__23.pt")
    torch.save(_logits(N_VAL, 3), folder / "5__val_logits_23.pt")
    store = open_store(tmp_path)
    assert store.model_ids("full_models/CIFAR10") == [5]
    got = store.margins("full_models/CIFAR10", "train", labels=TRAIN_Y)
    np.testing.assert_allclose(got[0], margins(_logits(N_TRAIN, 2).numpy(), TRAIN_Y), rtol=1e-6)


def test_state_dicts_and_forget_sets(hub_like):
    store = open_store(hub_like)
    folder = oracle_folder("CIFAR10", 3)
    assert store.state_dict(folder, 1)["model.9.weight"].sum() == 0  # latest epoch, 23
    assert store.state_dict(folder, 1, epoch=10)["model.9.weight"].sum() == 1280
    with pytest.raises(FileNotFoundError, match="saved epochs: \\[10, 23\\]"):
        store.state_dict(folder, 1, epoch=15)
    with pytest.raises(FileNotFoundError, match="no checkpoint of model 0"):
        store.state_dict(folder, 0)
    indices = store.forget_set("CIFAR10", 3)
    assert indices.dtype == np.int64 and indices.tolist() == [4, 8, 15]
    assert store.forget_set_ids("CIFAR10") == [3]
    with pytest.raises(FileNotFoundError, match="no forget set 4 for CIFAR10 \\(it has: \\[3\\]\\)"):
        store.forget_set("CIFAR10", 4)


def test_checkpoints_are_never_unpickled_as_arbitrary_objects(tmp_path):
    folder = tmp_path / "full_models/CIFAR10"
    folder.mkdir(parents=True)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"x": Evil()}, folder / "sd_0____epoch_23.pt", _use_new_zipfile_serialization=True)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        open_store(tmp_path).state_dict("full_models/CIFAR10", 0)


def test_write_model_round_trip_and_completion(tmp_path):
    store = open_store(tmp_path / "store", create=True)
    folder = full_models_folder("DIGITS")
    train, val = _logits(N_TRAIN, 1), _logits(N_VAL, 2)
    assert not (tmp_path / "store" / folder).exists() or not store.has_model(folder, 7)
    store.write_model(folder, 7, train_logits=train, val_logits=val, train_labels=TRAIN_Y,
                      val_labels=VAL_Y, state_dict={"w": torch.ones(2)}, epoch=3)
    names = sorted(os.listdir(tmp_path / "store" / folder))
    assert names == ["7__train_margins_3.npy", "7__val_margins_3.npy", "sd_7____epoch_3.pt",
                     "train_logits_7.pt", "val_logits_7.pt"]
    assert store.has_model(folder, 7) and not store.has_model(folder, 8)
    np.testing.assert_allclose(store.margins(folder, "train")[0], margins(train.numpy(), TRAIN_Y), rtol=1e-6)
    assert torch.equal(store.logits(folder, "val", 7), val)
    assert store.state_dict(folder, 7)["w"].sum() == 2
    with pytest.raises(ValueError, match=r"train logits of model 8 have shape \(20, 10\)"):
        store.write_model(folder, 8, train_logits=val, val_logits=val, train_labels=TRAIN_Y,
                          val_labels=VAL_Y, epoch=3)
    assert not store.has_model(folder, 8)


def test_a_stack_is_written_as_its_models_one_by_one(tmp_path):
    store = open_store(tmp_path / "store", create=True)
    gen = torch.Generator().manual_seed(0)
    train = torch.randn(3, N_TRAIN, 10, generator=gen, dtype=torch.float64)  # cast to float32
    val = torch.randn(3, N_VAL, 10, generator=gen)
    sds = [{"w": torch.full((2,), float(i))} for i in range(3)]
    store.write_models("a", [4, 5, 6], train_logits=train, val_logits=val, train_labels=TRAIN_Y,
                       val_labels=VAL_Y, state_dicts=sds, epoch=1)
    for j, i in enumerate([4, 5, 6]):
        store.write_model("b", i, train_logits=train[j], val_logits=val[j],
                          train_labels=TRAIN_Y, val_labels=VAL_Y, state_dict=sds[j], epoch=1)
    names = sorted(os.listdir(tmp_path / "store" / "a"))
    assert names == sorted(os.listdir(tmp_path / "store" / "b")) and len(names) == 15
    for name in names:
        a, b = (tmp_path / "store" / f / name for f in "ab")
        if name.endswith(".npy"):
            assert a.read_bytes() == b.read_bytes(), name
        else:
            got, want = torch.load(a), torch.load(b)
            got, want = (got, want) if isinstance(got, dict) else ({0: got}, {0: want})
            assert all(torch.equal(got[k], want[k]) for k in want) and got.keys() == want.keys()
    assert torch.load(tmp_path / "store" / "a" / "train_logits_5.pt").untyped_storage().nbytes() \
        == N_TRAIN * 10 * 4  # each file holds its own model only
    with pytest.raises(ValueError, match=r"val logits of models \[7, 8\] have shape \(2, 15, 10\), "
                                         r"expected \(2, 20, n_classes\)"):
        store.write_models("c", [7, 8], train_logits=train[:2], val_logits=val[:2, :15],
                           train_labels=TRAIN_Y, val_labels=VAL_Y, epoch=0)
    with pytest.raises(ValueError, match=r"1 state dicts for 2 models"):
        store.write_models("c", [7, 8], train_logits=train[:2], val_logits=val[:2],
                           train_labels=TRAIN_Y, val_labels=VAL_Y, state_dicts=sds[:1], epoch=0)
    with pytest.raises(ValueError, match=r"train logits of model 8 have shape \(50, 9\)"):
        store.write_models("c", [7, 8], train_logits=[train[0], train[1, :, :9]],
                           val_logits=val[:2], train_labels=TRAIN_Y, val_labels=VAL_Y, epoch=0)
    assert not (tmp_path / "store" / "c").exists()  # checked before anything is written


def test_write_forget_set_with_description(tmp_path):
    store = open_store(tmp_path, create=True)
    store.write_forget_set("DIGITS", 2, np.array([3, 1, 2]), description="three examples")
    assert store.forget_set("DIGITS", 2).tolist() == [3, 1, 2]
    assert store.forget_set_description("DIGITS", 2) == "three examples"
    with pytest.raises(ValueError, match="duplicate"):
        store.write_forget_set("DIGITS", 3, [1, 1])




def test_open_store_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no store at"):
        open_store(tmp_path / "missing")
    store = open_store(tmp_path)
    with pytest.raises(FileNotFoundError, match="has no folder 'full_models/CIFAR10'"):
        store.margins("full_models/CIFAR10", "val")
    with pytest.raises(ValueError, match="split must be one of"):
        store.margins("full_models/CIFAR10", "test")


def test_unwritable_store(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(PermissionError, match="cannot create store folder"):
        open_store(tmp_path / "a_file" / "store", create=True)

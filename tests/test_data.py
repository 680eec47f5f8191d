"""Datasets: the DIGITS split, the CIFAR-10 archive parser and download, forget sets."""

import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from klom_utils import data

# ------------------------------------------------------------------------------------ digits

def test_digits_split_is_fixed_and_stratified():
    d = data.load_digits()
    assert d.name == "DIGITS"
    assert (d.n_train, d.n_val) == (1442, 355)
    assert d.train_x.dtype == torch.uint8 and tuple(d.train_x.shape[1:]) == (1, 8, 8)
    assert d.train_y.dtype == torch.int64 and d.num_classes == 10
    assert int(d.train_x.max()) == 16
    counts = np.bincount(d.val_y.numpy(), minlength=10)
    assert counts.min() >= 34 and counts.max() <= 36
    # every fifth image of each class, in the file's order, is a test image
    images, labels = data.read_digits()
    zeros = np.flatnonzero(labels == 0)
    test_zeros = d.val_x[d.val_y == 0]
    assert torch.equal(test_zeros[0, 0], torch.from_numpy(images[zeros[4]]))


# sha256 of the arrays that sklearn.datasets.load_digits() returned when the file was made
# (scikit-learn 1.9.1): images (float64) then target (int64), as bytes
SKLEARN_DIGITS_SHA256 = "f6d9e39f37dc45d327f6db33428ee58970ccceabb2535a5c179de35886b70443"


def test_shipped_digits_are_sklearns():
    images, labels = data.read_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert int(images.max()) == 16 and np.array_equal(np.unique(labels), np.arange(10))
    as_sklearn = images.astype("<f8").tobytes() + labels.astype("<i8").tobytes()
    assert hashlib.sha256(as_sklearn).hexdigest() == SKLEARN_DIGITS_SHA256
    attribution = (data.DIGITS_FILE.parent / "README.md").read_text()
    assert "CC BY 4.0" in attribution and "10.24432/C50P49" in attribution


def test_normalize_centres_digits():
    d = data.load_digits()
    x = d.normalize(d.train_x)
    assert x.dtype == torch.float32
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 1e-2


def test_load_dataset_names():
    assert data.load_dataset("digits").name == "DIGITS"
    assert data.load_dataset("DIGITS").n_train == 1442
    assert data.dataset_name("cifar10") == "CIFAR10"
    with pytest.raises(ValueError, match="'mnist'.*cifar10.*digits"):
        data.load_dataset("mnist")


def test_split_names():
    d = data.load_digits()
    assert d.split("val")[0] is d.val_x and d.split("test")[1] is d.val_y
    with pytest.raises(ValueError, match="'dev'"):
        d.split("dev")


# ------------------------------------------------------------------------------------ CIFAR-10

def _batch(seed, n):
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"batch %d" % seed,
            b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [b"img_%d.png" % i for i in range(n)]}


def make_tiny_cifar(path, sizes=(3, 2, 4, 1, 2), n_test=3, order=None, drop=None):
    """A CIFAR-10 python archive with tiny batches; members in ``order`` (default: scrambled)."""
    batches = {f"data_batch_{i + 1}": _batch(i + 1, n) for i, n in enumerate(sizes)}
    batches["test_batch"] = _batch(99, n_test)
    batches["batches.meta"] = {b"label_names": [c.encode() for c in data.CIFAR10_CLASSES]}
    names = order or ["test_batch", "data_batch_3", "batches.meta", "data_batch_1",
                      "data_batch_5", "data_batch_2", "data_batch_4"]
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            if name == drop:
                continue
            raw = pickle.dumps(batches[name], protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return batches


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_parse_cifar10_canonical_order(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    batches = make_tiny_cifar(archive)
    train_x, train_y, test_x, test_y = data.parse_cifar10_archive(archive)
    order = [f"data_batch_{i}" for i in range(1, 6)]
    assert train_x.shape == (12, 3, 32, 32) and train_x.dtype == np.uint8
    assert train_y.dtype == np.int64
    np.testing.assert_array_equal(train_y, np.concatenate([batches[b][b"labels"] for b in order]))
    # rows are R plane, G plane, B plane (1024 each) -> channels first
    first = batches["data_batch_1"][b"data"][0]
    np.testing.assert_array_equal(train_x[0, 1], first[1024:2048].reshape(32, 32))
    last = batches["data_batch_5"][b"data"][-1]
    np.testing.assert_array_equal(train_x[-1].reshape(-1), last)
    np.testing.assert_array_equal(test_y, batches["test_batch"][b"labels"])
    assert test_x.shape == (3, 3, 32, 32)


def test_load_cifar10_from_local_archive(tmp_path):
    archive = tmp_path / "tiny.tar.gz"
    make_tiny_cifar(archive)
    d = data.load_cifar10(archive=archive, md5=None)
    assert d.name == "CIFAR10" and (d.n_train, d.n_val) == (12, 3)
    assert d.mean == (0.4914, 0.4822, 0.4465) and d.std == (0.2023, 0.1994, 0.2010)
    assert d.train_x.dtype == torch.uint8
    x = d.normalize(d.train_x[:1])
    expected = (d.train_x[0, 2].float() / 255 - 0.4465) / 0.2010
    torch.testing.assert_close(x[0, 2], expected)
    with pytest.raises(ValueError, match="md5"):
        data.load_cifar10(archive=archive)  # the real archive's md5 by default


def test_parser_rejects_incomplete_and_foreign_archives(tmp_path):
    archive = tmp_path / "a.tar.gz"
    make_tiny_cifar(archive, drop="data_batch_4")
    with pytest.raises(ValueError, match="data_batch_4"):
        data.parse_cifar10_archive(archive)
    evil = tmp_path / "evil.tar.gz"
    raw = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0],
                        b"x": __import__("os").getcwd}, protocol=2)
    with tarfile.open(evil, "w:gz") as tar:
        for name in data.CIFAR10_TRAIN_BATCHES + ("test_batch",):
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    with pytest.raises(pickle.UnpicklingError, match="getcwd"):
        data.parse_cifar10_archive(evil)


def test_download_verifies_and_caches(tmp_path, monkeypatch):
    source = tmp_path / "served.tar.gz"
    make_tiny_cifar(source)
    cache = tmp_path / "cache"
    monkeypatch.setenv("KLOM_CACHE", str(cache))
    url = source.as_uri()
    with pytest.raises(ValueError, match="md5"):
        data.download_cifar10(url=url, md5="0" * 32, progress=False)
    assert not (cache / data.CIFAR10_ARCHIVE).exists()
    assert not [p for p in cache.iterdir() if p.name.endswith(".part")]
    d = data.load_dataset("cifar10", url=url, md5=_md5(source), progress=False)
    assert (cache / data.CIFAR10_ARCHIVE).exists() and d.n_train == 12
    source.unlink()  # cached: no second download
    assert data.load_cifar10(url=url, md5=_md5(cache / data.CIFAR10_ARCHIVE)).n_val == 3


def test_download_offline_is_a_clear_error(tmp_path):
    url = (tmp_path / "nowhere.tar.gz").as_uri()
    with pytest.raises(ConnectionError, match="could not download CIFAR-10"):
        data.download_cifar10(tmp_path / "cache", url=url, progress=False)
    with pytest.raises(FileNotFoundError, match="download=False"):
        data.load_cifar10(tmp_path / "cache", download=False)


# --------------------------------------------------------------------------------- forget sets






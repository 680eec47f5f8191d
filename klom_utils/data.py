"""Datasets as whole-split tensors (their forget sets are in :mod:`klom_utils.forget_sets`).

Two datasets:

- ``digits`` (store name ``DIGITS``), the embedded default: the 8x8 handwritten digits shipped
  with this package (``_data/digits.npz``: the test set of the UCI "Optical Recognition of
  Handwritten Digits" data, E. Alpaydin and C. Kaynak, 1998, CC BY 4.0, attribution in
  ``_data/README.md``; the same arrays, in the same order, as scikit-learn's ``load_digits``),
  1,797 grey images of 8x8 with values 0..16, 10 classes, no download. The split is fixed and
  uses no randomness: for each class, taken in the file's order, every fifth image (positions 4,
  9, 14, ... within the class) goes to the test split (355 images) and the others form the train
  split (1,442 images); both keep the file's order.
- ``cifar10`` (store name ``CIFAR10``): the canonical python archive, downloaded once, checked
  against its md5, cached, and parsed in canonical order (``data_batch_1`` ... ``data_batch_5``
  for train, ``test_batch`` for test). No torchvision.
- ``living17`` (store name ``LIVING17``): the BREEDS LIVING-17 subset of ImageNet (17 classes,
  44,200 train and 3,400 validation images), from the user's own tensor files in the format of
  the authors' code (nothing to download: ImageNet's licence keeps them off the Hub). Put four
  files in one folder and pass it as ``root`` (``--data-root``)::

      living17_train_images.pt  uint8 (44200, 3, H, W)  (or (44200, H, W, 3))
      living17_train_labels.pt  int64 (44200,), values 0..16
      living17_val_images.pt    uint8 (3400, 3, H, W)   (or (3400, H, W, 3))
      living17_val_labels.pt    int64 (3400,)

  (``.npy`` files of the same names and contents work too), in the order the forget sets and
  the Hub's logits use. Inputs get ImageNet's normalisation. The labels alone
  (:func:`read_living17_labels`) turn the Hub's LIVING-17 train logits into margins.

Images stay uint8 (N, C, H, W); :meth:`TensorDataset.normalize` makes float inputs on the fly.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from ._typing import PathLike
from .progress import tqdm_class

if TYPE_CHECKING:
    import torch


def _torch() -> Any:
    import torch  # heavy: imported on first use, here only

    return torch


CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCH = "test_batch"

# Mean and std of the DIGITS train split after scaling to [0, 1].
DIGITS_MEAN = (0.3051,)
DIGITS_STD = (0.3762,)
#: The shipped 8x8 digits (arrays ``images`` and ``labels``, both uint8).
DIGITS_FILE = Path(__file__).parent / "_data" / "digits.npz"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LIVING17_SIZES = {"train": 44_200, "val": 3_400}
LIVING17_CLASSES = 17

#: Known datasets: lower-case CLI name -> store name.
DATASETS = {"digits": "DIGITS", "cifar10": "CIFAR10", "living17": "LIVING17"}


@dataclass(frozen=True)
class TensorDataset:
    """Both splits of an image dataset as tensors.

    ``train_x``/``val_x`` are uint8 (N, C, H, W) with values in ``[0, scale]``; ``train_y``/``val_y``
    int64 (N,). ``val`` is the test split (the name the stores use).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float = 255.0

    @property
    def n_train(self) -> int:
        return int(self.train_y.shape[0])

    @property
    def n_val(self) -> int:
        return int(self.val_y.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of ``"train"`` or ``"val"`` (``"test"`` is accepted for ``"val"``)."""
        if split == "train":
            return self.train_x, self.train_y
        if split in ("val", "test"):
            return self.val_x, self.val_y
        raise ValueError(f"unknown split {split!r}: expected 'train' or 'val'")

    def normalize(self, x: torch.Tensor, device: str | torch.device | None = None,
                  dtype: torch.dtype | None = None) -> torch.Tensor:
        """Float inputs for the models: ``(x / scale - mean) / std`` per channel."""
        torch = _torch()
        dtype = dtype or torch.float32
        x = x.to(device=device)
        mean = torch.tensor(self.mean, dtype=dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=dtype, device=x.device).view(1, -1, 1, 1)
        return (x.to(dtype) / self.scale - mean) / std

    def to(self, device: str | torch.device) -> TensorDataset:
        """The same dataset with its tensors on ``device``."""
        return replace(self, train_x=self.train_x.to(device), train_y=self.train_y.to(device),
                       val_x=self.val_x.to(device), val_y=self.val_y.to(device))


#: A loaded dataset or its name (``"digits"``, ``"CIFAR10"``, ...).
DatasetLike = Union[TensorDataset, "DatasetLabels", str]


def dataset_name(name: str) -> str:
    """Store name (``DIGITS``, ``CIFAR10``) of a dataset given by either spelling."""
    key = str(name).lower()
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: expected one of {sorted(DATASETS)}")
    return DATASETS[key]


def load_dataset(name: str, root: PathLike | None = None, **kwargs: Any) -> TensorDataset:
    """Load ``"digits"``, ``"cifar10"`` or ``"living17"`` (store names also accepted).

    ``root``: the download cache for CIFAR-10, the folder of the user's tensor files for
    LIVING-17 (see the module docstring); ``kwargs`` go to the loader.
    """
    store_name = dataset_name(name)
    if store_name == "DIGITS":
        return load_digits()
    if store_name == "LIVING17":
        return load_living17(root, **kwargs)
    return load_cifar10(root=root, **kwargs)


# --------------------------------------------------------------------------------------- digits

def _digits_split(y: np.ndarray) -> np.ndarray:
    """Boolean mask of the DIGITS test split (every fifth image of each class)."""
    test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        where = np.flatnonzero(y == c)
        test[where[4::5]] = True
    return test


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` of the shipped digits: uint8 (1797, 8, 8) with values 0..16, int64."""
    with np.load(DIGITS_FILE) as arrays:
        return arrays["images"], arrays["labels"].astype(np.int64)


def load_digits() -> TensorDataset:
    """The embedded default: the shipped digits with the fixed split described above."""
    torch = _torch()
    images, labels = read_digits()
    images = images[:, None]  # (1797, 1, 8, 8), values 0..16
    test = _digits_split(labels)
    return TensorDataset(
        name="DIGITS",
        train_x=torch.from_numpy(images[~test].copy()),
        train_y=torch.from_numpy(labels[~test].copy()),
        val_x=torch.from_numpy(images[test].copy()),
        val_y=torch.from_numpy(labels[test].copy()),
        classes=tuple(str(c) for c in range(10)),
        mean=DIGITS_MEAN, std=DIGITS_STD, scale=16.0,
    )


# -------------------------------------------------------------------------------------- CIFAR-10

def cache_dir(root: PathLike | None = None) -> Path:
    """The download cache: ``root``, else ``$KLOM_CACHE``, else ``~/.cache/klom_utils``."""
    if root is None:
        root = os.environ.get("KLOM_CACHE") or Path.home() / ".cache" / "klom_utils"
    return Path(root).expanduser()


def md5sum(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex md5 of a file."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def download_cifar10(root: PathLike | None = None, url: str = CIFAR10_URL,
                     md5: str | None = CIFAR10_MD5, progress: bool = True) -> Path:
    """Path of the cached CIFAR-10 archive, downloading it first if needed.

    The download goes to a temporary file in the cache folder, is checked against ``md5`` and only
    then renamed into place, so an interrupted download never leaves a bad archive behind.
    """
    folder = cache_dir(root)
    target = folder / CIFAR10_ARCHIVE
    if target.exists():
        if md5 is None or md5sum(target) == md5:
            return target
        raise ValueError(f"cached archive {target} has md5 {md5sum(target)}, expected {md5}: "
                         "delete it to download again")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".cifar10-", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=60)
            except (urllib.error.URLError, OSError) as err:
                raise ConnectionError(
                    f"could not download CIFAR-10 from {url} ({err}); without network, put "
                    f"{CIFAR10_ARCHIVE} (md5 {md5}) in {folder} or pass archive=PATH") from err
            with response:
                total = int(response.headers.get("Content-Length") or 0) or None
                bar = _progress(total, f"downloading {CIFAR10_ARCHIVE}", progress)
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    bar.update(len(block))
                bar.close()
        got = md5sum(tmp)
        if md5 is not None and got != md5:
            raise ValueError(f"downloaded {url} has md5 {got}, expected {md5}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _progress(total, desc, enabled):
    return tqdm_class()(total=total, desc=desc, unit="B", unit_scale=True, disable=not enabled)


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR-10 batches: only builtins and numpy arrays may be created."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),  # how python 3 writes bytes in protocol-2 pickles
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"CIFAR-10 batch refers to {module}.{name}, "
                                         "which a CIFAR-10 batch never contains")
        if module == "numpy.core.multiarray":  # old pickles; numpy 2 moved it
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def _read_batch(raw: bytes):
    batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ValueError("not a CIFAR-10 batch: expected a dict with b'data' and b'labels'")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(f"CIFAR-10 batch has data {data.shape} and {len(labels)} labels, "
                         "expected (n, 3072) and n labels")
    return data.reshape(-1, 3, 32, 32), labels


def parse_cifar10_archive(path: PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train_x, train_y, test_x, test_y)`` numpy arrays from a CIFAR-10 python archive.

    Train is ``data_batch_1`` ... ``data_batch_5`` concatenated in that order, test is
    ``test_batch``; images uint8 (N, 3, 32, 32), labels int64.
    """
    wanted = CIFAR10_TRAIN_BATCHES + (CIFAR10_TEST_BATCH,)
    found = {}
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            base = member.name.rsplit("/", 1)[-1]
            if member.isfile() and base in wanted:
                stream = tar.extractfile(member)
                if stream is not None:
                    found[base] = _read_batch(stream.read())
    missing = [name for name in wanted if name not in found]
    if missing:
        raise ValueError(f"{path} is not a CIFAR-10 python archive: missing {missing}")
    train = [found[name] for name in CIFAR10_TRAIN_BATCHES]
    return (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]),
            found[CIFAR10_TEST_BATCH][0], found[CIFAR10_TEST_BATCH][1])


def load_cifar10(root: PathLike | None = None, *, archive: PathLike | None = None,
                 md5: str | None = CIFAR10_MD5, url: str = CIFAR10_URL,
                 download: bool = True, progress: bool = True) -> TensorDataset:
    """CIFAR-10 in canonical order, from ``archive`` or the cache (downloaded if missing).

    ``archive`` is a local file to use instead of the cache; it is checked against ``md5``
    unless ``md5=None``.
    """
    torch = _torch()
    if archive is not None:
        archive = Path(archive).expanduser()
        if not archive.is_file():
            raise FileNotFoundError(f"CIFAR-10 archive {archive} does not exist")
        if md5 is not None and md5sum(archive) != md5:
            raise ValueError(f"{archive} has md5 {md5sum(archive)}, expected {md5}")
    elif download:
        archive = download_cifar10(root, url=url, md5=md5, progress=progress)
    else:
        archive = cache_dir(root) / CIFAR10_ARCHIVE
        if not archive.is_file():
            raise FileNotFoundError(f"{archive} is missing and download=False")
    train_x, train_y, test_x, test_y = parse_cifar10_archive(archive)
    return TensorDataset(
        name="CIFAR10",
        train_x=torch.from_numpy(train_x), train_y=torch.from_numpy(train_y),
        val_x=torch.from_numpy(test_x), val_y=torch.from_numpy(test_y),
        classes=CIFAR10_CLASSES, mean=CIFAR10_MEAN, std=CIFAR10_STD, scale=255.0,
    )


# -------------------------------------------------------------------------------------- LIVING-17

def living17_files(root: PathLike, kind: str = "images") -> dict[str, Path]:
    """``{split: path}`` of the LIVING-17 ``kind`` files (``"images"`` or ``"labels"``) in
    ``root``: ``living17_<split>_<kind>.pt``, or ``.npy`` where only that exists."""
    folder = Path(root).expanduser()
    out = {}
    for split in LIVING17_SIZES:
        stem = folder / f"living17_{split}_{kind}"
        npy = stem.with_suffix(".npy")
        out[split] = npy if npy.is_file() and not stem.with_suffix(".pt").is_file() \
            else stem.with_suffix(".pt")
    return out


def _living17_needs(root) -> str:
    return (f"LIVING-17 is read from your own tensor files (the authors' format; they are "
            f"not on the Hub): pass data_root / --data-root, a folder holding "
            f"living17_train_images.pt (uint8, {LIVING17_SIZES['train']} x 3 x H x W), "
            f"living17_train_labels.pt (int64, {LIVING17_SIZES['train']}), "
            f"living17_val_images.pt (uint8, {LIVING17_SIZES['val']} x 3 x H x W) and "
            f"living17_val_labels.pt (int64, {LIVING17_SIZES['val']}); .npy files of the same "
            f"names work too" + ("" if root is None else f"; in {str(root)!r}"))


def _read_tensor(path: Path):
    torch = _torch()
    if path.suffix == ".npy":
        return torch.from_numpy(np.load(path, allow_pickle=False))
    value = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{path} holds a {type(value).__name__}, expected a tensor")
    return value


def _living17_read(root, kinds: tuple, check_sizes: bool) -> dict:
    """``{(kind, split): tensor}`` of the LIVING-17 files, checked (dtype, shape, sizes);
    every missing file is named at once."""
    torch = _torch()
    if root is None:
        raise FileNotFoundError(_living17_needs(None))
    files = {(kind, split): path for kind in kinds
             for split, path in living17_files(root, kind).items()}
    missing = [p.name for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"missing {', '.join(missing)}. " + _living17_needs(root))
    out = {}
    for (kind, split), path in files.items():
        t = _read_tensor(path)
        if kind == "labels":
            if t.ndim != 1 or t.dtype not in (torch.int64, torch.int32, torch.uint8):
                raise ValueError(f"{path.name} holds {t.dtype} {tuple(t.shape)}, expected "
                                 "int64 labels of shape (n,)")
            t = t.long()
            if t.numel() and (int(t.min()) < 0 or int(t.max()) >= LIVING17_CLASSES):
                raise ValueError(f"{path.name} has labels outside 0..{LIVING17_CLASSES - 1}: "
                                 f"{int(t.min())}..{int(t.max())}")
        else:
            if t.ndim == 4 and t.shape[1] != 3 and t.shape[-1] == 3:  # (n, H, W, 3)
                t = t.permute(0, 3, 1, 2).contiguous()
            if t.dtype != torch.uint8 or t.ndim != 4 or t.shape[1] != 3:
                raise ValueError(f"{path.name} holds {t.dtype} {tuple(t.shape)}, expected "
                                 "uint8 images of shape (n, 3, H, W) or (n, H, W, 3)")
        if check_sizes and t.shape[0] != LIVING17_SIZES[split]:
            raise ValueError(f"{path.name} has {t.shape[0]} rows, expected "
                             f"{LIVING17_SIZES[split]} (the LIVING-17 {split} split)")
        out[kind, split] = t
    return out


def read_living17_labels(root: PathLike | None, check_sizes: bool = True
                         ) -> tuple[np.ndarray, np.ndarray]:
    """``(train_labels, val_labels)`` int64 from the LIVING-17 label files in ``root`` (no
    images needed: enough to turn the Hub's logits into margins)."""
    labels = _living17_read(root, ("labels",), check_sizes)
    return labels["labels", "train"].numpy(), labels["labels", "val"].numpy()


def load_living17(root: PathLike | None, check_sizes: bool = True) -> TensorDataset:
    """LIVING-17 from the user's tensor files in ``root`` (see the module docstring), with
    ImageNet normalisation. A missing file is an error naming every file needed.
    ``check_sizes=False`` accepts other split sizes (small test data in the same format)."""
    t = _living17_read(root, ("images", "labels"), check_sizes)
    for split in LIVING17_SIZES:
        if t["images", split].shape[0] != t["labels", split].shape[0]:
            raise ValueError(f"LIVING-17 {split} split: {t['images', split].shape[0]} images "
                             f"but {t['labels', split].shape[0]} labels in {str(root)!r}")
    return TensorDataset(
        name="LIVING17", train_x=t["images", "train"], train_y=t["labels", "train"],
        val_x=t["images", "val"], val_y=t["labels", "val"],
        classes=tuple(str(c) for c in range(LIVING17_CLASSES)),
        mean=IMAGENET_MEAN, std=IMAGENET_STD, scale=255.0,
    )


def as_dataset(dataset: DatasetLike, root: PathLike | None = None) -> TensorDataset:
    """``dataset`` itself if it is loaded, else :func:`load_dataset` of its name."""
    if isinstance(dataset, DatasetLabels):
        return load_dataset(dataset.name, root=dataset.root if root is None else root)
    return dataset if isinstance(dataset, TensorDataset) else load_dataset(dataset, root=root)


# ------------------------------------------------------------------------------- labels alone

#: Split sizes of the datasets whose images are not embedded.
SPLIT_SIZES = {"CIFAR10": {"train": 50_000, "val": 10_000}, "LIVING17": LIVING17_SIZES}


def read_cifar10_labels(root: PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(train_labels, test_labels)`` int64 of CIFAR-10 from the cached archive (downloaded
    if missing); no image tensors are made."""
    _, train_y, _, test_y = parse_cifar10_archive(download_cifar10(root))
    return train_y, test_y


class DatasetLabels:
    """What scoring needs of a dataset without its images: ``name``, ``n_train``, ``n_val``, and
    ``train_y``/``val_y`` (int64 numpy), read on first use (only where a store holds logits and
    no margins, or for accuracies), from the CIFAR-10 archive or the LIVING-17 label files."""

    def __init__(self, name: str, root: PathLike | None = None) -> None:
        self.name = dataset_name(name)
        if self.name not in SPLIT_SIZES:
            raise ValueError(f"labels alone are read for {sorted(SPLIT_SIZES)}, not {name!r}")
        self.root = root
        self.n_train, self.n_val = SPLIT_SIZES[self.name]["train"], SPLIT_SIZES[self.name]["val"]
        self._labels: tuple[np.ndarray, np.ndarray] | None = None

    def __repr__(self) -> str:
        return f"DatasetLabels({self.name!r}, loaded={self._labels is not None})"

    @property
    def loaded(self) -> bool:
        """True once the labels were read."""
        return self._labels is not None

    def labels(self) -> tuple[np.ndarray, np.ndarray]:
        if self._labels is None:
            self._labels = (read_cifar10_labels(self.root) if self.name == "CIFAR10"
                            else read_living17_labels(self.root))
        return self._labels

    @property
    def train_y(self) -> np.ndarray:
        return self.labels()[0]

    @property
    def val_y(self) -> np.ndarray:
        return self.labels()[1]


#: A loaded dataset, or a dataset's labels read on first use.
SplitsLike = Union[TensorDataset, DatasetLabels]


def dataset_labels(dataset: DatasetLike, root: PathLike | None = None) -> SplitsLike:
    """For scoring: ``dataset`` itself if loaded; the embedded DIGITS (small); else a
    :class:`DatasetLabels` that reads no images and its labels only if asked."""
    if isinstance(dataset, (TensorDataset, DatasetLabels)):
        return dataset
    name = dataset_name(dataset)
    return load_digits() if name == "DIGITS" else DatasetLabels(name, root)

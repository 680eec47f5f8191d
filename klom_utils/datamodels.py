"""Datamodels: how each training example's presence moves each output.

A datamodel is a matrix ``theta`` of shape ``(n_train, n_train + n_val, n_classes)``:
``theta[i, x]`` is the change in the logits of example ``x`` (train then validation order)
caused by training on example ``i``. Removing a forget set ``F`` from training then moves the
logits of ``x`` by about ``-sum(theta[i, x] for i in F)``: that prediction is what
datamodel matching (:mod:`klom_utils.unlearning`) trains towards, with no oracle.

Estimated here from **subset models**: ``M`` models, each trained (the dataset's usual recipe)
on its own random subset of ``fraction`` of the train split, written to
``datamodels/<DATASET>/`` in the store's usual file names plus ``<id>__subset.npy`` (the
sorted train indices the model saw) and ``klom_datamodels.json`` (fraction, seed, recipe).
Training is deterministic per model id and resumable, like :func:`klom_utils.train.train_models`.
Two estimators: ``"difference"``, the mean logits of the models that saw ``i`` minus those
that did not (subsampled influence, Feldman & Zhang 2020), and ``"regression"``, ridge
regression of the logits on the inclusion masks (linear datamodels, Ilyas et al. 2022).
Both are linear in the logits, so the noise of every predicted change is known too
(:class:`DatamodelNoise`, saved beside the datamodel): :func:`predicted_shift` shrinks each
predicted change by it (:func:`shrink_shift`), which on DIGITS keeps the forget set's large
changes and removes most of the noise that summing 10-50 rows puts on every other example.

Limits: every subset has the same size, so both estimate each effect relative to the mean
effect of all examples (the effect of a smaller training set is not in the shift); the ridge
penalty shrinks the effects (by about ``ridge / (f (1 - f) + ridge)`` at fraction ``f``: 18%
at the default 0.05 and fraction 0.5, measured on a planted datamodel of 300 examples); and a
datamodel adds single effects, so it
underestimates the removal of a coherent group (on the DIGITS sub-population, forget set 3,
the predicted change of its forget examples is about 0.7 of the oracles', as a regression
slope). The settings were chosen by measurement
(``scripts/tune_datamodel.py``): fraction 0.3 overshoots every forget set; 0.7 does best on
the random sets but predicts too little of set 3's change (its forget p95 stays at 6.3);
ridge 0.1 shrinks set 3 too much and 0.02 lets noise in.

The estimate is saved as ``datamodels/<DATASET>/datamodel.npy`` (float16, the layout of the
authors' files). For CIFAR-10 a precomputed matrix (TRAK scores or released datamodels) is
read with :func:`load_datamodel_rows`, which memory-maps the file and reads only the rows of
the forget set.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ._typing import ArrayLike, PathLike, Record
from .claims import claimed_chunks
from .data import DatasetLike, as_dataset
from .devices import resolve_device
from .files import CorruptFileError, atomic_write, load_npy_cached, save_npy
from .forget_sets import forget_indices
from .ids import ids_text, model_seed
from .layout import (
    DATAMODEL_FILE,
    DATAMODELS_RECORD,
    SUBSET_RE,
    datamodel_folder,
    full_models_folder,
    oracle_folder,
    subset_name,
)
from .metric import group_index
from .models import SAVE_PREFIX
from .oracles import mean_logits, scoring_oracle_ids
from .progress import progress_bar
from .stack import init_state_dict
from .store import RecordMismatchError, Store, StoreLike, as_store, open_store
from .train import TrainConfig, choose_stack, default_config, fit

__all__ = ["datamodel_folder", "subset_indices", "train_subset_models", "load_subset_runs",
           "DatamodelNoise", "fit_datamodel", "estimate_datamodel", "save_datamodel",
           "noise_path", "load_datamodel_noise", "datamodel_about", "load_datamodel_rows",
           "forget_shift", "shrink_shift", "predicted_shift", "mean_logits",
           "datamodel_quality", "prediction_quality", "build_datamodel"]

ESTIMATORS = ("difference", "regression")
#: Largest datamodel (float32 bytes) that :func:`build_datamodel` estimates in memory.
MAX_ESTIMATE_BYTES = 8 * 2**30


def _check_fraction(fraction) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
            or not 0 < fraction < 1:
        raise ValueError(f"fraction must be a number in (0, 1), got {fraction!r}")
    return float(fraction)


def subset_indices(dataset: str, n_train: int, model_id: int, fraction: float,
                   seed: int = 0) -> np.ndarray:
    """The sorted train indices that subset model ``model_id`` trains on: ``round(fraction *
    n_train)`` of them, drawn from the model's own seed (the same on every machine)."""
    k = int(round(_check_fraction(fraction) * n_train))
    if not 1 <= k < n_train:
        raise ValueError(f"fraction {fraction} of {n_train} training examples gives {k}; "
                         "expected at least 1 and fewer than all")
    rng = np.random.default_rng(model_seed(dataset, "datamodels", model_id, "subset", seed))
    return np.sort(rng.choice(n_train, k, replace=False))


def train_subset_models(dataset: DatasetLike, store: StoreLike, model_ids: Iterable[int], *,
                        fraction: float = 0.5, seed: int = 0,
                        device: str = "auto", config: TrainConfig | None = None,
                        progress: bool | None = True, root: PathLike | None = None) -> list[int]:
    """Train the subset models ``model_ids`` into ``datamodels/<D>/`` of ``store`` (ids already
    there are skipped, ids another process has claimed are left to it); returns the ids this
    call trained. ``config``: a
    :class:`~klom_utils.train.TrainConfig` (default: the dataset's recipe). What it writes
    stays in this process's memory cache, so :func:`load_subset_runs` after it reads no
    file back."""
    fraction = _check_fraction(fraction)
    ids = sorted({int(i) for i in model_ids})
    if not ids or ids[0] < 0:
        raise ValueError(f"model ids must be non-negative and at least one, got {ids[:3]}")
    dev = resolve_device(device)
    data = as_dataset(dataset, root)
    config = (config or default_config(data.name)).checked()
    subsets = {i: subset_indices(data.name, data.n_train, i, fraction, seed) for i in ids}
    if not isinstance(store, Store):
        store = open_store(store, create=True)
    folder = datamodel_folder(data.name)
    record = {"dataset": data.name, "fraction": fraction, "seed": int(seed),
              "n_train_examples": int(len(next(iter(subsets.values())))), **config.recorded()}
    diff = store.record_or_compare(f"{folder}/{DATAMODELS_RECORD}", record)
    if diff:
        raise RecordMismatchError(f"{folder} holds subset models trained differently ({', '.join(diff)});"
                         " use another store or delete the folder")
    done = _complete_subset_ids(store, folder)
    todo = [i for i in ids if i not in done]
    stack_size = choose_stack(config, data, dev, len(todo)) if todo else 1
    data_dev = data.to(dev)
    train_y, val_y = data.train_y.numpy(), data.val_y.numpy()
    bar = progress_bar(len(todo), f"{folder} models", progress)
    trained: list[int] = []
    # claimed first: concurrent runs (job-array tasks) never train one model twice
    for chunk, covered in claimed_chunks(store.root, folder, todo, stack_size,
                                         lambda: _complete_subset_ids(store, folder)):
        if chunk:
            inits = [init_state_dict(config.arch, model_seed(data.name, "datamodels", i,
                                                             "init", config.seed + seed),
                                     data.num_classes, config.hidden) for i in chunk]
            orders = [model_seed(data.name, "datamodels", i, "order", config.seed + seed)
                      for i in chunk]
            sds, train_logits, val_logits = fit(data_dev, np.stack([subsets[i] for i in chunk]),
                                                inits, orders, config, dev, progress=False,
                                                desc=f"{folder} {ids_text(chunk)}")
            for i in chunk:
                save_npy(store.path(f"{folder}/{subset_name(i)}"), subsets[i], keep=True)
            store.write_models(folder, chunk, train_logits=train_logits,
                               val_logits=val_logits, train_labels=train_y, val_labels=val_y,
                               state_dicts=[{SAVE_PREFIX + k: v for k, v in sd.items()}
                                            for sd in sds], epoch=config.epochs - 1)
            trained += chunk
        bar.update(covered)
    bar.close()
    return trained


def _complete_subset_ids(store, folder: str) -> set:
    """Ids with every model file and their subset file."""
    have = set(store.complete_model_ids(folder))
    return have & {int(m.group(1)) for m in store.files_matching(folder, SUBSET_RE)} if have else have


def load_subset_runs(store: Store, dataset: str, n_train: int,
                     model_ids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(masks, logits)`` of the subset models ``model_ids`` (default: every complete one):
    ``masks`` bool ``(M, n_train)`` (which train examples each model saw) and ``logits``
    float32 ``(M, n_train + n_val, C)``. A requested model that is not complete is an error."""
    folder = datamodel_folder(dataset)
    have = _complete_subset_ids(store, folder)
    if model_ids is not None:
        wanted = {int(i) for i in model_ids}
        missing = sorted(wanted - have)
        if missing:
            raise FileNotFoundError(f"{folder!r} lacks subset models {missing[:10]} "
                                    f"({len(missing)} in all); train them (`klom datamodels`)")
        have = wanted
    ids = sorted(have)
    if not ids:
        raise FileNotFoundError(f"{folder!r} of store {str(store.root)!r} holds no complete "
                                "subset model; train them (`klom datamodels`)")
    masks = np.zeros((len(ids), n_train), bool)
    for row, i in enumerate(ids):
        masks[row, load_npy_cached(store.path(f"{folder}/{subset_name(i)}"))] = True
    logits = np.concatenate([store.logits_of(folder, s, ids) for s in ("train", "val")], axis=1)
    return masks, logits


#: Ridge penalty of the regression estimator, per model (chosen by measurement on DIGITS:
#: scripts/tune_datamodel.py).
DEFAULT_RIDGE = 0.05


@dataclass(frozen=True)
class DatamodelNoise:
    """How noisy an estimated datamodel is. The estimators are linear in the subset models'
    logits (``theta = L @ logits``), so with ``residual_var`` ``(n_examples, C)``, the
    variance of the logits that the datamodel leaves unexplained, and ``coef_cov`` ``(n_train,
    n_train)`` ``= L @ L.T``, the noise of any sum of rows is known."""

    residual_var: np.ndarray
    coef_cov: np.ndarray

    def shift_variance(self, rows: ArrayLike) -> np.ndarray:
        """Noise variance ``(n_examples, C)`` of the predicted change when ``rows`` leave."""
        rows = np.asarray(rows, np.int64)
        weight = float(self.coef_cov[np.ix_(rows, rows)].sum(dtype=np.float64))
        return (self.residual_var * weight).astype(np.float32)


def _check_estimator(estimator, ridge) -> None:
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator={estimator!r}: expected one of {ESTIMATORS}")
    if estimator == "regression" and (isinstance(ridge, bool) or not isinstance(
            ridge, (int, float)) or not ridge > 0 or not np.isfinite(ridge)):
        raise ValueError(f"ridge must be a finite number > 0, got {ridge!r}")


def _estimator_matrix(x: np.ndarray, estimator: str, ridge: float) -> np.ndarray:
    """``L`` ``(n_train, M)`` with ``theta = L @ (logits - their mean over models)``."""
    m = x.shape[0]
    if estimator == "difference":
        n_in = x.sum(0)
        if (n_in == 0).any() or (n_in == m).any():
            bad = int(np.flatnonzero((n_in == 0) | (n_in == m))[0])
            raise ValueError(f"train example {bad} is in every subset or in none: its effect "
                             "cannot be estimated (train more subset models)")
        return x.T / n_in[:, None] - (1 - x.T) / (m - n_in)[:, None]
    xc = x - x.mean(0)
    return np.linalg.solve(xc.T @ xc + ridge * m * np.eye(x.shape[1]), xc.T)


def fit_datamodel(masks: ArrayLike, logits: ArrayLike, *, estimator: str = "regression",
                  ridge: float = DEFAULT_RIDGE) -> tuple[np.ndarray, DatamodelNoise | None]:
    """``(theta, noise)``: ``theta`` ``(n_train, n_examples, C)`` float32 from inclusion
    ``masks`` ``(M, n_train)`` and ``logits`` ``(M, n_examples, C)``, and its
    :class:`DatamodelNoise` (``None`` when the models are too few to leave residual degrees of
    freedom). Estimated in blocks of outputs, so memory beyond theta stays small.

    ``"difference"``: mean logits of the models that saw ``i`` minus the mean of those that
    did not. ``"regression"``: ridge regression of the logits on the centred masks, penalty
    ``ridge * M`` (the effect of ``i`` with the other examples held fixed)."""
    _check_estimator(estimator, ridge)
    x = np.asarray(masks, bool)
    y = np.asarray(logits, np.float32)
    if x.ndim != 2 or y.ndim != 3 or x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ValueError(f"masks (M, n_train) and logits (M, n_examples, C) must share M >= 2, "
                         f"got shapes {x.shape} and {y.shape}")
    m, (_, n_ex, c) = x.shape[0], y.shape
    xf = x.astype(np.float64)
    lin = _estimator_matrix(xf, estimator, ridge)
    hat = (xf - xf.mean(0)) @ lin  # (M, M): the fitted logits of the subset models
    dof = m - float(np.trace(hat))
    y2 = y.reshape(m, -1)
    theta = np.empty((x.shape[1], y2.shape[1]), np.float32)
    residual_var = np.empty(y2.shape[1], np.float32)
    lin32, hat32 = lin.astype(np.float32), hat.astype(np.float32)  # float32 products: 2x faster
    block = max(1, 2**26 // m)  # 256 MB of float32 logits at a time
    for start in range(0, y2.shape[1], block):
        part = slice(start, start + block)
        yb = y2[:, part] - y2[:, part].mean(0, dtype=np.float64).astype(np.float32)
        theta[:, part] = lin32 @ yb
        residual_var[part] = ((yb - hat32 @ yb) ** 2).sum(0, dtype=np.float64) / max(dof, 1.0)
    noise = (DatamodelNoise(residual_var.reshape(n_ex, c), (lin @ lin.T).astype(np.float32))
             if dof >= 1 else None)
    return theta.reshape(x.shape[1], n_ex, c), noise


def estimate_datamodel(masks: ArrayLike, logits: ArrayLike, *, estimator: str = "regression",
                       ridge: float = DEFAULT_RIDGE) -> np.ndarray:
    """``theta`` alone of :func:`fit_datamodel`."""
    return fit_datamodel(masks, logits, estimator=estimator, ridge=ridge)[0]


def noise_path(path: PathLike) -> Path:
    """Where the :class:`DatamodelNoise` of the datamodel at ``path`` lives: beside it, as
    ``<name>_noise.npz``."""
    path = Path(path)
    return path.with_name(f"{path.stem}_noise.npz")


def save_datamodel(store: Store, dataset: str, theta: ArrayLike, about: Mapping[str, Any],
                   noise: DatamodelNoise | None = None) -> str:
    """Write ``theta`` (float16, as the authors' files) to the store, ``about`` (how it was
    made) beside it as JSON, and its ``noise`` (or remove a stale one); returns its relpath."""
    relpath = f"{datamodel_folder(dataset)}/{DATAMODEL_FILE}"
    save_npy(store.path(relpath), np.asarray(theta, np.float16))
    store.write_json(relpath[:-len(".npy")] + ".json", about)
    target = noise_path(store.path(relpath))
    if noise is None:
        target.unlink(missing_ok=True)
    else:
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, residual_var=noise.residual_var, coef_cov=noise.coef_cov)
        atomic_write(target, write)
    return relpath


def load_datamodel_noise(path: PathLike) -> DatamodelNoise | None:
    """The :class:`DatamodelNoise` saved beside the datamodel at ``path``, or ``None`` (a
    datamodel made elsewhere, or from too few subset models)."""
    target = noise_path(path)
    if not target.is_file():
        return None
    try:
        with np.load(target, allow_pickle=False) as z:
            return DatamodelNoise(z["residual_var"], z["coef_cov"])
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise CorruptFileError(f"{str(target)!r} is damaged ({err}); delete it and rerun "
                               "`klom datamodels`") from None


def datamodel_about(path: PathLike) -> Record:
    """How the datamodel at ``path`` was made (its JSON sidecar), or ``{}`` for a file made
    elsewhere."""
    sidecar = Path(path).with_suffix(".json")
    return json.loads(sidecar.read_text()) if sidecar.is_file() else {}


def load_datamodel_rows(path: PathLike, rows: ArrayLike, *, shape: Sequence[int] | None = None,
                        dtype: str | np.dtype = "float16") -> np.ndarray:
    """Rows ``rows`` of a datamodel file, float32 ``(len(rows), n_examples, C)``, reading only
    those rows (memory-mapped).

    ``path``: a ``.npy`` file (C order, any float dtype), or a raw array file as the
    authors' code writes it, with its ``shape`` ``(n_train, n_examples, C)`` and ``dtype``
    given. To use a raw file with :func:`klom_utils.unlearning.unlearn_store` or ``klom
    unlearn --datamodel``, save it once as ``.npy`` (``np.lib.format.open_memmap``)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no datamodel file at {path!r}")
    if shape is None:
        try:
            array = np.load(path, mmap_mode="r")
        except ValueError as exc:
            raise ValueError(f"{path!r} is not a .npy file; for a raw array give its shape "
                             "(n_train, n_examples, n_classes) and dtype") from exc
    else:
        shape = tuple(int(v) for v in shape)
        expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if len(shape) != 3 or os.path.getsize(path) != expected:
            raise ValueError(f"{path!r} has {os.path.getsize(path)} bytes; shape {shape} of "
                             f"{dtype} needs {expected}")
        array = np.memmap(path, dtype=dtype, mode="r", shape=shape)
    if array.ndim != 3:
        raise ValueError(f"{path!r} holds shape {array.shape}, expected (n_train, n_examples, "
                         "n_classes)")
    rows = np.asarray(rows)
    if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
        raise ValueError(f"rows must be a 1-D array of integer indices, got shape {rows.shape} "
                         f"and dtype {rows.dtype}")
    if array.dtype.kind != "f" or (array.ndim == 3 and not array.flags.c_contiguous):
        raise ValueError(f"{path!r} must hold a C-ordered float array, got dtype {array.dtype}")
    rows = rows.astype(np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= array.shape[0]):
        raise ValueError(f"rows must lie in [0, {array.shape[0]}), got {rows.min()}..{rows.max()}")
    return np.asarray(array[np.sort(rows)], np.float32)[np.argsort(np.argsort(rows))]


def forget_shift(theta_rows: ArrayLike) -> np.ndarray:
    """The predicted change of every example's logits when the forget set (the rows of theta
    given) leaves training: ``-sum`` over the rows, ``(n_examples, C)`` float32."""
    return -np.asarray(theta_rows, np.float64).sum(0).astype(np.float32)


def shrink_shift(shift: ArrayLike, variance: ArrayLike) -> np.ndarray:
    """Each predicted change ``s`` shrunk by its noise variance ``v``: ``s * max(0, 1 - v /
    s**2)`` (the non-negative garrote, Breiman 1995, at one standard error). Changes within
    one standard error of zero vanish; larger ones lose ``v / |s|``. On DIGITS this keeps the
    forget set's large, well-measured changes and removes most of the noise that summing
    many rows adds to the other examples (``scripts/tune_datamodel.py``)."""
    s = np.asarray(shift, np.float64)
    v = np.asarray(variance, np.float64)
    if s.shape != v.shape:
        raise ValueError(f"shift {s.shape} and variance {v.shape} must have the same shape")
    if (v < 0).any() or not np.isfinite(v).all():
        raise ValueError("variance must be finite and >= 0")
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = np.where(s != 0, np.clip(1 - v / s**2, 0, None), 0.0)
    return (s * keep).astype(np.float32)


def predicted_shift(path: PathLike, rows: ArrayLike, *, shrink: bool = True) -> np.ndarray:
    """The predicted change ``(n_examples, C)`` of every example's logits when the train
    examples ``rows`` leave training, from the datamodel ``.npy`` at ``path`` (only those
    rows are read): :func:`forget_shift`, then :func:`shrink_shift` when ``shrink`` and the
    datamodel has its noise beside it (:func:`load_datamodel_noise`)."""
    shift = forget_shift(load_datamodel_rows(path, rows))
    noise = load_datamodel_noise(path) if shrink else None
    if noise is None:
        return shift
    if noise.residual_var.shape != shift.shape or noise.coef_cov.shape[0] <= np.asarray(rows).max(initial=-1):
        raise ValueError(f"{str(noise_path(path))!r} does not belong to {os.fspath(path)!r} "
                         f"(shapes {noise.residual_var.shape} and {shift.shape}); rerun "
                         "`klom datamodels`")
    return shrink_shift(shift, noise.shift_variance(rows))


def prediction_quality(shift: ArrayLike, full_logits: ArrayLike, oracle_logits: ArrayLike,
                       forget: ArrayLike, n_train: int) -> dict[str, dict[str, float]]:
    """How well ``shift`` predicts the change from full models to oracles (mean logits
    ``(n_examples, C)`` of each): per group (forget, retain, validation) the correlation of
    predicted and actual changes over examples x classes, and the RMSE of the predicted oracle
    logits with and without the shift (``rmse``, ``rmse_no_shift``)."""

    actual = np.asarray(oracle_logits, np.float64) - np.asarray(full_logits, np.float64)
    shift = np.asarray(shift, np.float64)
    out = {}
    for g, i in group_index(actual.shape[0], forget, n_train, None).items():
        a, p = actual[i].ravel(), shift[i].ravel()
        corr = float(np.corrcoef(a, p)[0, 1]) if a.size > 1 and a.std() and p.std() else np.nan
        out[g] = {"corr": corr, "rmse": float(np.sqrt(np.mean((a - p) ** 2))),
                  "rmse_no_shift": float(np.sqrt(np.mean(a ** 2)))}
    return out


def build_datamodel(dataset: DatasetLike, store: StoreLike, model_ids: Iterable[int], *,
                    fraction: float = 0.5, seed: int = 0, estimator: str = "regression",
                    ridge: float = DEFAULT_RIDGE, device: str = "auto",
                    progress: bool = True, root: PathLike | None = None) -> Record:
    """Train the subset models (resumable), estimate theta and its noise and save them:
    ``{"trained", "n_models", "fraction", "estimator", "ridge", "noise", "path", "seconds"}``
    (also written beside the datamodel; ``noise``: whether its noise could be estimated)."""
    start = time.perf_counter()
    _check_estimator(estimator, ridge)
    _check_fraction(fraction)
    data = None
    if isinstance(dataset, str) and dataset.lower() == "cifar10":
        sizes = (50_000, 60_000, 10)  # known: refuse before any download
    else:
        data = as_dataset(dataset, root)
        sizes = (data.n_train, data.n_train + data.n_val, data.num_classes)
    size = int(np.prod(sizes)) * 4
    if size > MAX_ESTIMATE_BYTES:
        raise ValueError(
            f"a datamodel of {sizes[0]} x {sizes[1]} x {sizes[2]} ({size / 2**30:.0f} GiB in "
            "float32) is too large to estimate here; use a precomputed one (TRAK or released "
            "datamodels, saved as .npy) with `klom unlearn --datamodel FILE`")
    data = data or as_dataset(dataset, root)
    if not isinstance(store, Store):
        store = open_store(store, create=True)
    trained = train_subset_models(data, store, model_ids, fraction=fraction, seed=seed,
                                  device=device, progress=progress)
    masks, logits = load_subset_runs(store, data.name, data.n_train, model_ids)
    theta, noise = fit_datamodel(masks, logits, estimator=estimator, ridge=ridge)
    about = {"n_models": int(len(masks)), "fraction": float(fraction), "seed": int(seed),
             "estimator": estimator, "ridge": float(ridge) if estimator == "regression" else None,
             "noise": noise is not None}
    path = save_datamodel(store, data.name, theta, about, noise)
    return {"trained": trained, **about, "path": path, "seconds": time.perf_counter() - start}


def datamodel_quality(store: StoreLike, dataset: DatasetLike, *, path: PathLike | None = None,
                      max_models: int = 100, shrink: bool = True,
                      root: PathLike | None = None) -> dict[int, Record]:
    """For each forget set of the store with oracles: how well the store's datamodel predicts
    the change from the mean logits of (up to ``max_models``) full models to those of the
    scoring oracles (:func:`prediction_quality` per group, with ``n_models``, ``n_oracles``).
    ``path``: the datamodel (default: the store's); ``shrink``: as :func:`predicted_shift`."""
    data = as_dataset(dataset, root)
    store = as_store(store)
    path = path or store.path(f"{datamodel_folder(data.name)}/{DATAMODEL_FILE}")
    full = full_models_folder(data.name)
    full_ids = store.complete_model_ids(full)[:max_models]
    full_mean = mean_logits(store, full, full_ids) if full_ids else None
    out = {}
    for k in store.forget_set_ids(data.name):
        folder = oracle_folder(data.name, k)
        complete = set(store.complete_model_ids(folder))
        oracle_ids = [i for i in scoring_oracle_ids(store, data.name, k)
                      if i in complete][:max_models] if complete else []
        if full_mean is None or not oracle_ids:
            continue
        forget = forget_indices(store, data, k)
        shift = predicted_shift(path, forget, shrink=shrink)
        out[k] = {"n_models": len(full_ids), "n_oracles": len(oracle_ids),
                  "groups": prediction_quality(shift, full_mean,
                                               mean_logits(store, folder, oracle_ids), forget,
                                               data.n_train)}
    return out

"""Train many models into a store: full models, or oracles trained without a forget set.

Every model is determined by (dataset, group, model id, config seed): its initialisation and
its data order come from its own generators, seeded by a hash of those values, so the same id
trains the same model whatever else is trained in the same run or in other processes.
Finished models are skipped, so runs resume; processes given disjoint id ranges (the tasks of
a job array) fill one store without clashing (every file is written atomically).

On the CPU, training is bit-for-bit reproducible and independent of how many models train at
once. On CUDA (bf16 autocast for the ResNet-9's training steps, cuDNN autotuning, grouped
convolutions when stacking) the same id gets the same initialisation and data order, but float
rounding differs from run to run.

The logits (hence margins) written to the store are always computed in float32 without
autocast, on every device: the same precision as :func:`klom_utils.stack.predict_logits`
uses for unlearned models, so originals, oracles and unlearned models are measured alike.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .augment import augment_batch, augment_generators, black_fill
from .claims import claimed_chunks
from .data import as_dataset, dataset_name
from .devices import device_label, device_settings, resolve_device
from .forget_sets import digits_forget_sets, ensure_digits_forget_sets, forget_indices, retain_mask
from .ids import ids_text, model_seed
from .layout import COST_FILE, TRAIN_RECORD, full_models_folder, oracle_folder, recipe_name
from .models import ARCHS, SAVE_PREFIX, load_model
from .progress import progress_bar, tqdm_class
from .stack import ModelStack, init_state_dict, optimizer, per_model_cross_entropy, predict, set_lr
from .store import RecordMismatchError, Store, open_store

#: Fields of a config that do not change the trained models (not compared on resumption).
_RUNTIME_FIELDS = ("stack", "eval_batch_size", "threads")


@dataclass(frozen=True)
class TrainConfig:
    """How models are trained.

    The learning rate rises linearly from 0 to ``lr`` at ``peak_epoch`` and falls back to 0 at
    ``epochs``, stepped every iteration. ``stack`` is how many models train at once (one forward
    for all); ``"auto"`` measures the choices on CUDA and takes the fastest. ``augment``: random
    horizontal flips and translations of each training batch (:func:`augment_batch`), drawn
    from each model's own generator; such models go to ``<D>_augmented`` folders
    (:func:`klom_utils.layout.recipe_name`).
    """

    arch: str
    epochs: int
    batch_size: int
    lr: float
    peak_epoch: float
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    drop_last: bool = False
    equal_steps: bool = False
    augment: bool = False
    hidden: int = 64
    seed: int = 0
    stack: object = 1
    eval_batch_size: int = 1024
    threads: object = None

    def checked(self) -> "TrainConfig":
        """Self, after checking the values (raises ValueError naming the bad one)."""
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}: expected one of {ARCHS}")
        for name in ("epochs", "batch_size", "eval_batch_size", "hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name, low, high in (("lr", 0.0, None), ("peak_epoch", 0.0, self.epochs),
                                ("momentum", 0.0, 1.0), ("weight_decay", 0.0, None),
                                ("label_smoothing", 0.0, 1.0)):
            value = getattr(self, name)
            ok = (isinstance(value, (int, float, np.integer, np.floating))
                  and not isinstance(value, bool) and math.isfinite(value)
                  and (value > low if name == "lr" else value >= low)
                  and (high is None or value <= high))
            if not ok:
                where = ("> 0" if name == "lr" else f">= {low}") + (
                    f" and <= {high}" if high is not None else "")
                raise ValueError(f"{name} must be a finite number {where}, got {value!r}")
        if self.stack != "auto" and (not isinstance(self.stack, int) or self.stack < 1):
            raise ValueError(f"stack must be a positive integer or 'auto', got {self.stack!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"threads must be None or a positive integer, got {self.threads!r}")
        if not isinstance(self.augment, (bool, np.bool_)):
            raise ValueError(f"augment must be True or False, got {self.augment!r}")
        if self.arch == "resnet18" and self.stack not in (1, "auto"):
            raise ValueError(f"ResNet-18s train one at a time: stack must be 1 (or 'auto'), "
                             f"got {self.stack!r}")
        return self

    def recorded(self) -> dict:
        """The fields that determine the models (what the store's config file records);
        ``augment`` only when on, so records written before it existed still match."""
        return {k: v for k, v in asdict(self).items()
                if k not in _RUNTIME_FIELDS and (k != "augment" or v)}


#: Defaults per dataset (store names). CIFAR10 is the authors' ResNet-9 recipe. DIGITS trains
#: stacks of up to 500 models on the CPU (measured faster than 100, bit for bit the same
#: models), with torch's own threads.
DEFAULT_CONFIGS = {
    "DIGITS": TrainConfig(arch="digits_mlp", epochs=20, batch_size=64, lr=0.1, peak_epoch=4,
                          momentum=0.9, nesterov=True, weight_decay=5e-4, equal_steps=True,
                          hidden=64, stack=500, threads=2),
    "CIFAR10": TrainConfig(arch="resnet9", epochs=24, batch_size=512, lr=0.4, peak_epoch=5,
                           momentum=0.9, nesterov=False, weight_decay=5e-4, drop_last=True,
                           stack="auto", eval_batch_size=1024),
    # the authors' LIVING-17 recipe: ResNet-18, 25 epochs, peak 0.6 at epoch 12, batch 1024,
    # label smoothing 0.1 (momentum and weight decay as for CIFAR-10); one model at a time
    "LIVING17": TrainConfig(arch="resnet18", epochs=25, batch_size=1024, lr=0.6, peak_epoch=12,
                            momentum=0.9, nesterov=False, weight_decay=5e-4,
                            label_smoothing=0.1, stack=1, eval_batch_size=512),
}


def default_config(dataset: str, **overrides) -> TrainConfig:
    """The default :class:`TrainConfig` of ``dataset``, with ``overrides`` applied."""
    return replace(DEFAULT_CONFIGS[dataset_name(dataset)], **overrides).checked()


def recorded_config(store: Store, folder: str, dataset: str) -> TrainConfig | None:
    """The :class:`TrainConfig` that trained the models of ``folder``, from its config file
    (runtime fields from the dataset's default); None where the folder has none (a Hub
    snapshot)."""
    path = f"{folder}/{TRAIN_RECORD}"
    if not store.path(path).is_file():
        return None
    record = store.read_json(path)
    names = {f.name for f in fields(TrainConfig)} - set(_RUNTIME_FIELDS)
    return replace(DEFAULT_CONFIGS[dataset_name(dataset)],
                   **{k: v for k, v in record.items() if k in names}).checked()


def group_name(forget_set) -> str:
    """``"full"`` for full models, ``"forget_set_<k>"`` for the oracles of forget set k."""
    return "full" if forget_set is None else f"forget_set_{int(forget_set)}"


def lr_at(step: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """Triangular schedule: 0 -> lr at ``peak_epoch`` -> 0 at ``epochs``."""
    x = step / steps_per_epoch
    return float(np.interp(x, [0, config.peak_epoch, config.epochs], [0, config.lr, 0]))


def batch_bounds(n: int, n_full: int, config: TrainConfig) -> list:
    """``(start, stop)`` of each step's batch within an epoch's order of ``n`` examples;
    ``n_full`` is the size of the whole train split (used with ``equal_steps``)."""
    b = config.batch_size
    if n < 1:
        raise ValueError("no training examples: the forget set covers the whole train split")
    if config.equal_steps:
        steps = -(-max(n, n_full) // b)
        if steps > n:
            raise ValueError(f"{n} training examples cannot fill {steps} batches")
        edges = [(i * n) // steps for i in range(steps + 1)]
        return list(zip(edges[:-1], edges[1:]))
    if config.drop_last:
        if n < b:
            raise ValueError(f"{n} training examples are fewer than batch_size {b} "
                             "with drop_last=True")
        return [(i, i + b) for i in range(0, n - b + 1, b)]
    return [(i, min(i + b, n)) for i in range(0, n, b)]


def fit(dataset, train_indices, init_state_dicts, order_seeds, config: TrainConfig, device="cpu",
        progress: bool = True, desc: str = "training"):
    """Train M models at once from ``init_state_dicts`` on ``train_indices``: one 1-D array
    shared by every model, or ``(M, k)``, each model its own ``k`` examples.

    Model m draws its data order from ``order_seeds[m]``. Returns ``(state_dicts, train_logits,
    val_logits)``: M single-model state dicts (CPU) and logits (M, n, C) on CPU in eval mode,
    float32 without autocast (see :func:`predict`).
    """
    device = torch.device(device)
    m = len(init_state_dicts)
    if len(order_seeds) != m:
        raise ValueError(f"{len(order_seeds)} order seeds for {m} models")
    idx = np.asarray(train_indices)
    if idx.ndim == 2 and idx.shape[0] != m:
        raise ValueError(f"{idx.shape[0]} rows of train indices for {m} models")
    # one stack, torch's own threads: a model's result must not depend on how the ids were
    # split over jobs (parts of the stack in Python threads, one torch thread each, gave
    # other low bits than a job array and gained nothing at low load)
    with device_settings(config.threads, device):
        return _fit(dataset, idx, init_state_dicts, order_seeds, config, device, progress, desc)


def _fit(dataset, train_indices, init_state_dicts, order_seeds, config, device, progress, desc):
    m = len(init_state_dicts)
    x_all = dataset.normalize(dataset.train_x, device=device)
    y_all = dataset.train_y.to(device)
    idx = torch.as_tensor(np.asarray(train_indices), dtype=torch.long)
    per_model = idx.ndim == 2  # each model its own examples (datamodels), else shared
    n = int(idx.shape[-1])
    bounds = batch_bounds(n, dataset.n_train, config)
    per_epoch = len(bounds)
    total = per_epoch * config.epochs
    stack = ModelStack.from_state_dicts(config.arch, init_state_dicts, device)
    opt = _sgd(stack, config)
    gens = [torch.Generator().manual_seed(int(s)) for s in order_seeds]
    augment = (augment_generators(order_seeds), black_fill(dataset, device)) if config.augment else None
    stack.module.train()
    bar = tqdm_class()(total=total, desc=desc, disable=not progress, leave=False)
    step = 0
    for _ in range(config.epochs):
        perms = torch.stack([torch.randperm(n, generator=g) for g in gens])
        order = (torch.gather(idx, 1, perms) if per_model else idx[perms]).to(device)
        for s, (lo, hi) in enumerate(bounds):
            batch = order[:, lo:hi]
            xb, yb = x_all[batch], y_all[batch]
            if augment:
                xb = augment_batch(xb, *augment)
            loss = per_model_cross_entropy(stack(xb), yb, config.label_smoothing).sum()
            loss.backward()
            set_lr(opt, lr_at(step, per_epoch, config))
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)
            if s == per_epoch - 1:
                bar.set_postfix(loss=f"{loss.item() / m:.3f}")
    bar.close()
    train_logits = predict(stack, x_all, config.eval_batch_size)
    val_logits = predict(stack, dataset.normalize(dataset.val_x, device=device),
                         config.eval_batch_size)
    return stack.state_dicts(), train_logits, val_logits


def _sgd(stack: ModelStack, config: TrainConfig):
    """The training optimiser of ``stack`` (the learning rate is set at every step)."""
    return optimizer("sgd", stack.parameters(), momentum=config.momentum,
                     nesterov=config.nesterov, weight_decay=config.weight_decay)


def fit_reference(dataset, train_indices, init_state_dict, order_seed, config: TrainConfig):
    """One model, the plain way (``nn.Module`` + ``torch.optim.SGD``, CPU, float32).

    The baseline of the benchmark and the check that :func:`fit` trains the same model.
    Returns ``(state_dict, train_logits, val_logits)``.
    """
    with device_settings(config.threads, "cpu"):
        return _fit_reference(dataset, train_indices, init_state_dict, order_seed, config)


def _fit_reference(dataset, train_indices, init_state_dict, order_seed, config):
    model = load_model(init_state_dict, arch=config.arch).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=config.momentum,
                          nesterov=config.nesterov, weight_decay=config.weight_decay)
    x_all = dataset.normalize(dataset.train_x)
    idx = torch.as_tensor(np.asarray(train_indices), dtype=torch.long)
    n = idx.numel()
    bounds = batch_bounds(n, dataset.n_train, config)
    per_epoch = len(bounds)
    gen = torch.Generator().manual_seed(int(order_seed))
    augment = (augment_generators([order_seed]), black_fill(dataset, "cpu")) if config.augment else None
    step = 0
    for _ in range(config.epochs):
        order = idx[torch.randperm(n, generator=gen)]
        for lo, hi in bounds:
            batch = order[lo:hi]
            xb = augment_batch(x_all[batch][None], *augment)[0] if augment else x_all[batch]
            loss = F.cross_entropy(model(xb), dataset.train_y[batch],
                                   label_smoothing=config.label_smoothing)
            set_lr(opt, lr_at(step, per_epoch, config))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    model.eval()
    with torch.no_grad():
        return (model.state_dict(), model(x_all),
                model(dataset.normalize(dataset.val_x)))


# ------------------------------------------------------------------------------ choosing a stack

def choose_stack(config: TrainConfig, dataset, device, n_models: int, candidates=(1, 2, 4),
                 steps: int = 6, warmup: int = 2) -> int:
    """How many models to train at once: ``config.stack``, or for ``"auto"`` the candidate
    with the most models per second measured on a few steps (on CPU: 1)."""
    if config.stack != "auto":
        return max(1, min(int(config.stack), n_models))  # type: ignore[call-overload]
    device = torch.device(device)
    if device.type != "cuda" or n_models <= 1 or config.arch == "resnet18":
        return 1
    x = dataset.normalize(dataset.train_x[:config.batch_size], device=device)
    y = dataset.train_y[:config.batch_size].to(device)
    best, best_rate = 1, 0.0
    for m in [c for c in candidates if c <= n_models]:
        sds = [init_state_dict(config.arch, i, dataset.num_classes, config.hidden) for i in range(m)]
        stack = ModelStack.from_state_dicts(config.arch, sds, device)
        opt = _sgd(stack, config)
        xb, yb = x.unsqueeze(0).expand(m, *x.shape), y.unsqueeze(0).expand(m, *y.shape)
        for i in range(warmup + steps):
            if i == warmup:
                torch.cuda.synchronize(device)
                start = time.perf_counter()
            out = stack(xb)
            F.cross_entropy(out.reshape(-1, out.shape[-1]), yb.reshape(-1)).backward()
            set_lr(opt, 1e-3)
            opt.step()
            opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize(device)
        rate = m * steps / (time.perf_counter() - start)
        if rate > best_rate * 1.05:
            best, best_rate = m, rate
        del stack, opt
    return best


# ----------------------------------------------------------------------------------- into a store

def _check_writable(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PermissionError(f"cannot create {str(path)!r} in the store: {err}") from err
    if not os.access(path, os.W_OK):
        raise PermissionError(f"store folder {str(path)!r} is not writable")


def _record_config(store, folder: str, record: dict) -> None:
    """Write the folder's config file, or check that it matches the one already there."""
    diff = store.record_or_compare(f"{folder}/{TRAIN_RECORD}", record)
    if diff:
        raise RecordMismatchError(f"{folder} was trained with another config ({', '.join(diff)}); "
                         "use another store or the same config")


def train_models(dataset, store, model_ids, *, forget_set=None, device="auto", config=None,
                 progress: bool | None = True, root=None) -> list:
    """Train the models ``model_ids`` of a group into ``store``; returns the ids this call
    trained (not those already there, nor those another process was training: each model is
    claimed first, see :func:`klom_utils.claims.claimed`, so concurrent runs never train one
    model twice). ``progress``: bars, ``False`` nothing, ``None`` bars on a terminal and plain
    lines in logs.

    ``dataset``: ``"digits"``/``"cifar10"`` or a :class:`~klom_utils.data.TensorDataset`.
    ``store``: a path or a :class:`~klom_utils.store.Store`. ``forget_set=None`` trains full
    models (``full_models/<D>``); ``forget_set=k`` trains oracles without forget set k
    (``oracles/<D>/forget_set_<k>``). Ids already complete in the store are skipped.
    ``config``: a :class:`TrainConfig` (default: :func:`default_config`).
    """
    start = time.perf_counter()
    dev = resolve_device(device)
    ids = sorted({int(i) for i in model_ids})
    if any(i < 0 for i in ids):
        raise ValueError(f"model ids must be non-negative, got {ids[0]}")
    data = as_dataset(dataset, root)
    config = (config or default_config(data.name)).checked()
    if forget_set is not None and data.name == "DIGITS":
        known = sorted(digits_forget_sets(data))
        root_path = store.root if isinstance(store, Store) else Path(store)
        if forget_set not in known and not root_path.is_dir():  # before the store is made
            raise FileNotFoundError(f"no forget set {forget_set!r} for DIGITS: the embedded "
                                    f"ones are {known} (a store may add its own)")
    if not isinstance(store, Store):
        if forget_set is not None and data.name != "DIGITS" and not Path(store).is_dir():
            raise FileNotFoundError(
                f"no store at {str(store)!r} to read forget set {forget_set} of {data.name} "
                f"from: put the forget sets there first (klom download "
                f"forget_set_indices/{data.name}, or Store.write_forget_set)")
        store = open_store(store, create=True)

    if forget_set is None:
        folder = full_models_folder(recipe_name(data.name, config.augment))
        train_idx = np.arange(data.n_train)
        if data.name == "DIGITS":
            ensure_digits_forget_sets(store, data)
    else:
        folder = oracle_folder(recipe_name(data.name, config.augment), forget_set)
        forget = forget_indices(store, data, forget_set)
        train_idx = np.flatnonzero(retain_mask(data.n_train, forget))
    _check_writable(store.path(folder))
    record = {"dataset": data.name, "group": group_name(forget_set),
              "n_train_examples": int(len(train_idx)), **config.recorded()}
    _record_config(store, folder, record)

    done = set(store.complete_model_ids(folder))  # one listing, however many models
    todo = [i for i in ids if i not in done]
    if not todo:
        return []
    stack_size = choose_stack(config, data, dev, len(todo))
    data_dev = data.to(dev)
    group = group_name(forget_set)
    # one bar per chunk (fit's) when bars are asked for and there is one chunk
    outer = progress_bar(len(todo), f"{folder} models",
                         False if progress and len(todo) <= stack_size else progress)
    trained = []
    # each chunk claimed: ids another process is training are left to it, ids it finished
    # meanwhile are skipped; a stack of fewer models trains the same models
    for chunk, covered in claimed_chunks(store.root, folder, todo, stack_size,
                                         lambda: store.complete_model_ids(folder)):
        if chunk:
            _train_chunk(store, folder, chunk, data, data_dev, train_idx, group, config,
                         dev, progress)
            trained += chunk
        outer.update(covered)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    outer.close()
    record_cost(store, folder, ids, trained, time.perf_counter() - start, dev,
                at_once=stack_size)
    return trained


def record_cost(store: Store, folder: str, ids: Sequence[int], written: Sequence[int],
                seconds: float, device: Any, at_once: int | None = None) -> None:
    """Write ``<folder>/klom_cost.json``: the wall time of the call that wrote ``written`` of
    the models ``ids`` asked for, per model, the device and (``at_once``) how many models it
    trained at once. Kept from a call that wrote them all (or when there is none yet), so
    that a comparison can divide by it."""
    cost = store.path(f"{folder}/{COST_FILE}")
    if written and (len(written) == len(ids) or not cost.is_file()):
        store.write_json(f"{folder}/{COST_FILE}", {
            "seconds_per_model": seconds / len(written), "n_models": len(written),
            **({"at_once": int(at_once)} if at_once is not None else {}),
            "device": device_label(device), "what": "wall time of the call that wrote these "
                                                    "models, divided by their number"})


def _train_chunk(store, folder, chunk, data, data_dev, train_idx, group, config, dev,
                 progress) -> None:
    """Train the models ``chunk`` at once and write them to ``folder``."""
    inits = [init_state_dict(config.arch, model_seed(data.name, group, i, "init", config.seed),
                             data.num_classes, config.hidden) for i in chunk]
    orders = [model_seed(data.name, group, i, "order", config.seed) for i in chunk]
    desc = f"{folder} {ids_text(chunk)}"
    sds, train_logits, val_logits = fit(data_dev, train_idx, inits, orders, config, dev,
                                        progress=bool(progress), desc=desc)
    train_y, val_y = data.train_y.numpy(), data.val_y.numpy()
    store.write_models(folder, chunk, train_logits=train_logits, val_logits=val_logits,
                       train_labels=train_y, val_labels=val_y,
                       state_dicts=[{SAVE_PREFIX + k: v for k, v in sd.items()} for sd in sds],
                       epoch=config.epochs - 1)

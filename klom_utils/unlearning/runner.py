"""Applying a method to models: in memory (:func:`unlearn_models`) or to the full models of a
store (:func:`unlearn_store`), many at once where the method takes stacks, claimed per model
and resumable."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from ..claims import claimed_chunks
from ..data import as_dataset
from ..datamodels import datamodel_about, noise_path, predicted_shift
from ..devices import device_settings, resolve_device
from ..forget_sets import forget_indices
from ..layout import (
    DATAMODEL_FILE,
    HELD_OUT_ORACLE_START,
    UNLEARN_RECORD,
    datamodel_folder,
    full_models_folder,
    recipe_name,
    unlearned_folder,
)
from ..models import SAVE_PREFIX, infer_arch, load_model
from ..oracles import held_out_oracle_ids, mean_oracle_logits
from ..progress import progress_bar
from ..stack import ModelStack, predict, predict_logits
from ..store import RecordMismatchError, as_store
from ..train import TrainConfig, choose_stack, record_cost
from .configs import dataset_key, resolve_config
from .inputs import Outputs, UnlearnData
from .registry import check_name, get_method
from .steps import model_generator

#: Models of the DIGITS MLP unlearned at once by default (as many as training stacks).
DIGITS_STACK = 100


def _generators(spec, ids, dataset: str, forget_set, seed: int) -> list:
    return [model_generator(i, dataset=dataset, forget_set=forget_set, method=spec.name,
                            seed=seed) for i in ids]


def unlearn_models(method, models: Sequence, data: UnlearnData, *, dataset, config=None,
                   model_ids=None, forget_set=None, seed: int = 0, stack=None) -> list:
    """Apply ``method`` to each of ``models``; returns the unlearned models (or the
    :class:`Outputs` of a method that returns outputs). ``config`` overrides the method's
    defaults for ``dataset``; model ``j`` gets the generator of ``model_ids[j]`` (default
    ``j``), as in :func:`unlearn_store`. A method registered with ``stacked=True`` unlearns
    models that stack (DigitsMLPs or ResNet-9s of one shape) ``stack`` at a time (default:
    all at once); the results are the same as one at a time."""
    spec = get_method(method)
    models = list(models)
    ids = list(range(len(models))) if model_ids is None else [int(i) for i in model_ids]
    if len(ids) != len(models):
        raise ValueError(f"{len(ids)} model ids for {len(models)} models")
    key = dataset_key(dataset)
    config = resolve_config(spec, key, config)
    if spec.check is not None and models:
        spec.check(config, models[0].state_dict())
    gens = _generators(spec, ids, key, forget_set, seed)
    if not (spec.stacked and models and ModelStack.arch_of(models)):
        return [spec(m, data, dict(config), generator=g) for m, g in zip(models, gens)]
    size = len(models) if stack is None else _check_stack(stack)
    out: list = []
    for start in range(0, len(models), size):
        part = slice(start, start + size)
        got: Any = spec.on_stack(ModelStack.of(models[part]), data, dict(config),
                            generators=gens[part])
        out += ([Outputs(t, v) for t, v in zip(got.train_logits, got.val_logits)]
                if isinstance(got, Outputs) else got.models())
    return out


def _check_stack(stack) -> int:
    if isinstance(stack, bool) or not isinstance(stack, int) or stack < 1:
        raise ValueError(f"stack must be a positive integer or 'auto', got {stack!r}")
    return stack


def _stack_size(stack, spec, arch: str, config: dict, data, device, n_models: int) -> int:
    """How many models :func:`unlearn_store` unlearns at once: 1 for methods that work one
    model at a time; else ``stack``, or for ``"auto"``: up to 100 DIGITS MLPs, and for the
    ResNet-9 what training would choose (measured on CUDA among 1, 2, 4, 8 at the method's
    batch size; 1 on the CPU)."""
    if not spec.stacked:
        return 1
    if stack != "auto":
        return min(_check_stack(stack), n_models)
    if arch == "digits_mlp":
        return min(DIGITS_STACK, n_models)
    batch = max([int(v) for k, v in config.items() if k.endswith("batch_size")] or [64])
    probe = TrainConfig(arch=arch, epochs=1, batch_size=min(batch, data.n_train), lr=1e-3,
                        peak_epoch=0, stack="auto")
    return choose_stack(probe, data, device, n_models, candidates=(1, 2, 4, 8))


def _outputs(spec, out, m: int, train_x, val_x, states: bool):
    """Train and val logits ``(M, n, C)`` (float32, CPU) and M state dicts (or Nones) of
    what a method returned for M models: a stack, one model, or an :class:`Outputs`."""

    sds: list
    if isinstance(out, Outputs):  # the method produced the outputs themselves
        logits = [torch.as_tensor(t).float().cpu() for t in (out.train_logits, out.val_logits)]
        logits = [t.unsqueeze(0) if t.ndim == 2 and m == 1 else t for t in logits]
        sds = [None] * m
    elif isinstance(out, ModelStack):
        logits = [predict(out, x) for x in (train_x, val_x)]
        sds = out.state_dicts(prefix=SAVE_PREFIX) if states else [None] * m
    elif isinstance(out, torch.nn.Module):
        logits = [predict_logits(out, x).unsqueeze(0) for x in (train_x, val_x)]
        sds = [{SAVE_PREFIX + k: v.detach().cpu() for k, v in out.state_dict().items()}
               if states else None]
    else:
        raise TypeError(f"method {spec.name!r} returned {type(out).__name__}, "
                        "expected an nn.Module, a ModelStack or an Outputs")
    for split, got, n in (("train", logits[0], train_x.shape[0]),
                          ("val", logits[1], val_x.shape[0])):
        if got.ndim != 3 or got.shape[:2] != (m, n):
            shape = tuple(got.shape[1:]) if m == 1 and got.ndim == 3 else tuple(got.shape)
            expected = f"({n}, n_classes)" if m == 1 else f"({m}, {n}, n_classes)"
            raise ValueError(f"method {spec.name!r} returned {split} logits of shape "
                             f"{shape}, expected {expected}")
    return logits[0], logits[1], sds


def _check_record(store, folder: str, record: dict) -> None:
    """Write the folder's record, or check that the one already there matches."""
    diff = store.record_or_compare(f"{folder}/{UNLEARN_RECORD}", record)
    if diff:
        raise RecordMismatchError(f"{folder} holds models unlearned differently ({', '.join(diff)}); "
                         "choose another name (name=, --name) or delete the folder")


def unlearn_store(store, dataset, forget_set: int, method, model_ids, *, config=None,
                  name: str | None = None, oracle_ids=None, seed: int = 0, device="auto",
                  save_checkpoints: bool = False, threads: int | None = None,
                  progress: bool | None = True, root=None, datamodel=None,
                  stack="auto", augment: bool = False) -> dict:
    """Unlearn forget set ``forget_set`` from the full models ``model_ids`` of ``store``.

    Each original model is loaded from its checkpoint (``load_model``: our checkpoints and the
    Hub's ResNet-9 ones), ``method`` is applied, and the unlearned model's train and val
    logits and margins are written to ``unlearned/<D>/<name>/forget_set_<k>/`` (same file
    names as the other folders). Models already there are skipped, so runs resume.

    ``method``: a registered name or a function; ``name`` is the folder name (default: the
    method's name); ``config``: overrides of the method's defaults (dict or ``key=value``
    strings); ``oracle_ids``: held-out oracles for methods that need them (default: the
    oracles with ids ``>= 1000``); ``datamodel``: for methods that need one, a ``.npy`` file
    ``(n_train, n_train + n_val, C)`` (default: the store's ``datamodels/<D>/datamodel.npy``;
    only the forget set's rows are read; the record beside the models keeps its provenance
    and a hash of the forget set's shift, so another datamodel is refused in the same
    folder); ``threads``: torch CPU threads while unlearning on the CPU (default: 2 for
    DIGITS, measured faster than 1 on stacks of 100 with bit-identical results; torch's own
    setting otherwise); ``stack``: how many models a method registered with
    ``stacked=True`` (every built-in one) unlearns at once, ``"auto"`` (100 DIGITS models; for
    the ResNet-9 the fastest of 1, 2, 4, 8 measured on CUDA, 1 on the CPU) or a number; a
    model gets the same result whatever it is unlearned with. Each model is claimed before it
    is unlearned (:func:`klom_utils.claims.claimed`), so concurrent runs never do one twice.
    ``progress``: bars, ``False`` nothing, ``None`` bars on a terminal and lines in logs.
    ``augment``: unlearn the models of the augmented recipe (``full_models/<D>_augmented``,
    from ``klom train --augment``; the Hub's ``full_models/CIFAR10_augmented``) into
    ``unlearned/<D>_augmented/<name>/forget_set_<k>``, with held-out oracles of the same recipe
    (``oracles/<D>_augmented/forget_set_<k>``); forget sets are the dataset's.
    Returns ``{"folder", "written"`` (ids this call unlearned), ``"skipped"`` (the others),
    ``"seconds"}``.
    """
    start = time.perf_counter()
    spec = get_method(method)
    name = check_name(name or spec.name)
    if stack != "auto":
        _check_stack(stack)
    store = as_store(store)
    data = as_dataset(dataset, root)
    config = resolve_config(spec, data.name, config)
    forget = forget_indices(store, data, forget_set)
    if not isinstance(augment, bool):
        raise ValueError(f"augment must be True or False, got {augment!r}")
    recipe = recipe_name(data.name, augment)
    ids = sorted({int(i) for i in model_ids})
    if not ids:
        raise ValueError("no model ids given")
    full = full_models_folder(recipe)
    have = set(store.model_ids(full)) if store.path(full).is_dir() else set()
    missing = [i for i in ids if i not in have]
    if missing:
        raise FileNotFoundError(f"store {str(store.root)!r} has no full models {missing[:10]} "
                                f"in {full!r} (train them with `klom train"
                                f"{' --augment' if augment else ''}` or download them)")

    if spec.check is not None:  # e.g. k larger than the model's layers: before any write
        spec.check(config, store.state_dict(full, ids[0]))
    for given, needed, what in ((oracle_ids, spec.needs_oracles, "oracle_ids (--oracle-ids)"),
                                (datamodel, spec.needs_datamodel, "datamodel (--datamodel)")):
        if given is not None and not needed:
            raise ValueError(f"{what} was given, but {spec.name} does not use it (it would be "
                             "ignored); drop it or choose a method that does")
    if spec.needs_oracles:
        oracle_ids = (held_out_oracle_ids(store, recipe, forget_set) if oracle_ids is None
                      else sorted({int(i) for i in oracle_ids}))
        if not oracle_ids:
            raise FileNotFoundError(
                f"{spec.name} needs held-out oracles of forget set {forget_set}: none with ids "
                f">= {HELD_OUT_ORACLE_START} in oracles/{recipe}/forget_set_{forget_set}; "
                f"train some (`klom train --dataset {data.name.lower()}"
                f"{' --augment' if augment else ''} --forget-set "
                f"{forget_set} --models {HELD_OUT_ORACLE_START}-{HELD_OUT_ORACLE_START + 9}`) "
                "or pass oracle_ids")
    else:
        oracle_ids = None
    datamodel_path: str | None = None
    shift: Any = None
    if spec.needs_datamodel:
        datamodel_path = str(datamodel) if datamodel is not None else str(store.path(
            f"{datamodel_folder(data.name)}/{DATAMODEL_FILE}"))
        if not Path(datamodel_path).is_file():
            raise FileNotFoundError(
                f"{spec.name} needs a datamodel: none at {datamodel_path!r}; estimate one "
                f"(`klom datamodels --dataset {data.name.lower()} --store ...`) or pass "
                "datamodel= (a .npy file)")
        shrink = bool(config.get("shrink", True)) and noise_path(datamodel_path).is_file()
        shift = predicted_shift(datamodel_path, forget, shrink=shrink)
        expected = (data.n_train + data.n_val, data.num_classes)
        if shift.shape != expected:
            raise ValueError(f"datamodel {datamodel_path!r} covers {shift.shape[0]} examples "
                             f"x {shift.shape[1]} classes; {data.name} needs {expected[0]} "
                             f"(train then validation) x {expected[1]}")

    folder = unlearned_folder(recipe, name, forget_set)
    record = {"method": spec.name, "dataset": data.name, "forget_set": int(forget_set),
              **({"augment": True} if augment else {}),
              "config": config, "seed": int(seed), "oracle_ids": oracle_ids,
              **({"datamodel": {**datamodel_about(datamodel_path), "shrunk": shrink,
                                "shift_sha1": hashlib.sha1(shift.tobytes()).hexdigest()}}
                 if datamodel_path else {})}
    _check_record(store, folder, record)
    done = set(store.complete_model_ids(folder))  # one listing, however many models
    todo = [i for i in ids if i not in done]
    written: list = []
    if todo:
        dev = resolve_device(device)
        targets = (mean_oracle_logits(store, recipe, forget_set, oracle_ids)
                   if oracle_ids else None)
        udata = UnlearnData.from_dataset(data, forget, oracle_train_logits=targets,
                                         datamodel_shift=shift, device=dev)
        train_x = (udata.train_x if udata.train_x is not None
                   else data.normalize(data.train_x, device=dev))
        val_x = udata.val_x if udata.val_x is not None else data.normalize(data.val_x, device=dev)
        train_y, val_y = data.train_y.numpy(), data.val_y.numpy()
        if threads is None and data.name == "DIGITS":
            threads = 2  # stacks of 100: 1.5-2.2x faster than 1 thread, same results
        with device_settings(threads, dev):
            size = _stack_size(stack, spec, infer_arch(store.state_dict(full, todo[0])), config,
                               data, dev, len(todo))
            bar = progress_bar(len(todo), folder, progress)
            # claimed first: ids another process is unlearning are left to it
            for chunk, covered in claimed_chunks(store.root, folder, todo, size,
                                                 lambda: store.complete_model_ids(folder)):
                if chunk:
                    _unlearn_chunk(store, folder, full, chunk, spec, udata, config, dev,
                                   data.name, forget_set, seed, train_x, val_x, train_y,
                                   val_y, save_checkpoints)
                    written += chunk
                bar.update(covered)
            bar.close()
    seconds = time.perf_counter() - start
    if todo:
        record_cost(store, folder, ids, written, seconds, dev)  # measured, for compare
    return {"folder": folder, "written": written,
            "skipped": [i for i in ids if i not in written], "seconds": seconds}


def _unlearn_chunk(store, folder, full, chunk, spec, udata, config, dev, dataset, forget_set,
                   seed, train_x, val_x, train_y, val_y, save_checkpoints) -> None:
    """Unlearn the originals ``chunk`` (at once where the method takes stacks) and write them."""
    state_dicts = store.state_dicts(full, chunk)  # one listing for the chunk
    gens = _generators(spec, chunk, dataset, forget_set, seed)
    if spec.stacked:
        out = spec.on_stack(ModelStack.from_checkpoints(state_dicts, device=dev), udata,
                            dict(config), generators=gens)
    else:
        original = load_model(state_dicts[0], arch="auto", device=dev)
        out = spec(original, udata, dict(config), generator=gens[0])
    train_logits, val_logits, sds = _outputs(spec, out, len(chunk), train_x, val_x,
                                             save_checkpoints)
    store.write_models(folder, chunk, train_logits=train_logits, val_logits=val_logits,
                       train_labels=train_y, val_labels=val_y, state_dicts=sds, epoch=0)

"""Unlearning methods: a registry, their configs, and applying one to the models of a store.

A method is a function ``method(model, data, config, *, generator) -> model``:

- ``model`` is one trained ``nn.Module`` (a DIGITS MLP, a ResNet-9, ...); the method never
  changes it: it deep-copies it and returns the unlearned copy, in eval mode;
- ``data`` is an :class:`UnlearnData` (forget and retain examples as model inputs, and for
  methods that need oracles the mean logits of held-out oracles);
- ``config`` is a plain dict (the method's defaults for the dataset, with overrides applied);
- ``generator`` (a CPU ``torch.Generator``) drives every random choice, so results are
  deterministic given the model id (see :func:`model_generator`).

Many models at once. The built-in methods are written for a stack of models
(:class:`~klom_utils.train.ModelStack`, the stacked MLP and grouped-convolution ResNet-9 that
training uses; ``register_method(..., stacked=True)``): each model draws its own data order
from its own generator and has its own loss, so a model unlearned among 100 is the one
unlearned alone (bit for bit on the CPU; a ResNet-9 stack on the GPU agrees to float
rounding). :func:`unlearn_store` unlearns 100 DIGITS models at once (``stack=``; on DIGITS
SCRUB takes about 4.5 s for 100 models instead of 42 s one at a time, ``scripts/
bench_unlearn.py``). Called on one model, a stacked method runs on a stack of one. Your own
methods work one model at a time unless registered with ``stacked=True``.

Built-in methods and their DIGITS defaults (tuned on the embedded default so that each method
does something visible at no large cost in accuracy; CIFAR10 defaults are the reference
authors' settings, see ``default_config(method, "cifar10")``). SGD methods use momentum 0.9 and
weight decay 5e-4; an epoch is one pass over the forget set (GA, NegGrad+) or the retain set
(GD).

=================  ========================================================================
``do_nothing``     returns the original (the baseline)
``gradient_ascent``  ascent on F: lr 0.01, 3 epochs, batch 16
``gradient_descent`` descent on R: lr 0.01, 3 epochs, batch 64
``neggrad_plus``   ``alpha*CE(R) - (1-alpha)*CE(F)`` per step: lr 0.02, 5 epochs, alpha 0.8,
                   forget batch 16, retain batch 64
``scrub``          max steps ``-KL_T(teacher ‖ student)`` on F in the first 5 of 10 epochs,
                   min steps ``gamma*CE + alpha*KL_T`` on R: lr 0.05 (constant: no
                   ``lr_milestones``), temperature 4, gamma 0.99, alpha 0.1, forget batch 32,
                   retain batch 64
``oracle_matching``  MSE to the mean logits of the held-out oracles on F (×5) plus a retain
                   sample 20×|F|, fresh each epoch: Adam lr 1e-3, 10 epochs, batch 64,
                   lr ×0.95 per epoch
``datamodel_matching``  as oracle matching, but towards the model's own logits plus the
                   datamodel's predicted shift (no oracle): DIGITS the same settings with the
                   forget set ×10; CIFAR10 the authors' (Adam lr 1e-4, 4 epochs, batch 512,
                   lr ×0.95 per epoch)
``datamodel_direct``  no training: the model's logits plus the predicted shift, written as
                   the unlearned outputs (the method returns an :class:`Outputs`)
=================  ========================================================================

The datamodel methods read the store's ``datamodels/<D>/datamodel.npy`` (``klom
datamodels``; :mod:`klom_utils.datamodels`) or a file given as ``datamodel=``, and use no
oracle. On DIGITS (datamodel from 2,000 subset models at fraction 0.5, ridge 0.05, shifts
shrunk by their noise; 100 models against 100 oracles; forget p95 of do nothing / oracle
matching / datamodel matching / datamodel direct): set 1 6.55 / 0.75 / 0.83 / 0.87, set 2
9.98 / 1.13 / 1.12 / 1.45, set 3 9.60 / 0.92 / 1.51 / 1.63, with retain and validation p95 at
most 1.50 and test accuracy 0.971-0.973 (originals 0.972). DIGITS datamodel matching takes
the forget set 10 times per epoch (oracle matching 5): on set 3 the shift was learnt more
fully (1.51 against 1.77). ``shrink=False`` uses the datamodel's shift as estimated.

SCRUB on DIGITS with these defaults (100 models, KLOM p95 against 100 oracles, do nothing in
brackets; accuracy forget/retain/test, do nothing 1.000/1.000/0.972; measured with
``scripts/tune_scrub.py`` with the former one-model-at-a-time code; the stacked code agrees
to float rounding, but on set 3 SCRUB is chaotic: a 1e-7 relative change of the weights
moves the former code's own logits by up to 4.6 after 10 epochs, and old and new logits
differ on that scale, median 0.09, over 20 models):

==========  ===============  ===============  ===============  =================
forget set  forget p95       retain p95       validation p95   accuracy
==========  ===============  ===============  ===============  =================
1 (n=10)    2.34 (6.55)      1.43 (0.79)      1.11 (0.78)      0.997/1.000/0.972
2 (n=50)    3.79 (9.98)      2.62 (1.36)      2.34 (1.85)      0.994/1.000/0.974
3 (n=50)    6.02 (9.60)      5.79 (0.94)      5.26 (1.14)      0.928/0.987/0.957
==========  ===============  ===============  ===============  =================

Of the grid tried (lr 0.01 to 0.2, 4 to 10 epochs, max steps in 1 to 5 epochs, alpha 0.1 to
2, gamma 0.1 or 0.99, forget batch 8 to 32, lr x0.1 after the max epochs or not), only these
settings clearly lowered the forget KLOM of the small random set 1 (the others: 5.7 to 6.5);
5-epoch runs (half the cost) left set 1 near do nothing; lr >= 0.1 with alpha >= 1, or max
steps in every epoch, wrecked accuracy. SCRUB moves retain and validation margins too.

Your own method: a function with the same signature, registered (then usable by name, also
from ``klom unlearn --plugin MODULE --method NAME``) or passed to :func:`unlearn_store`
directly; it is scored like the built-in ones::

    import copy, torch, torch.nn.functional as F
    from klom_utils.unlearn import register_method, unlearn_store
    from klom_utils.evaluate import score

    @register_method("last_layer_ascent", {"lr": 0.05, "steps": 5})
    def last_layer_ascent(model, data, config, *, generator):
        model = copy.deepcopy(model).train()
        last = list(model.parameters())[-2:]  # fine-tune only the last layer
        opt = torch.optim.SGD(last, lr=config["lr"])
        for _ in range(config["steps"]):
            opt.zero_grad()
            (-F.cross_entropy(model(data.forget_x), data.forget_y)).backward()
            opt.step()
        return model.eval()

    unlearn_store("runs/store", "digits", 3, "last_layer_ascent", range(100))
    print(score("runs/store", "digits", 3, "last_layer_ascent")["forget"]["p95"])

Held-out oracles. Oracle matching trains towards the outputs of oracles, so the oracles it
uses must not be the ones it is scored against. The convention: in
``oracles/<D>/forget_set_<k>``, oracle ids ``>= HELD_OUT_ORACLE_START`` (1000) are held out:
methods may use them, scoring never does (train them with ``klom train --models 1000-1009
--forget-set k``). An explicit list (``oracle_ids=``) may be given instead; it is recorded
beside the unlearned models and scoring then leaves those oracles out as well.
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

#: Oracle ids from this one up are held out from scoring (for methods that need oracles).
HELD_OUT_ORACLE_START = 1000
#: File beside the unlearned models recording how they were made.
CONFIG_FILE = "klom_unlearn.json"
#: Key of the defaults that apply to any dataset without its own.
ANY_DATASET = "*"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# ------------------------------------------------------------------------------------- the data

@dataclass
class UnlearnData:
    """What an unlearning method may use.

    ``forget_x``/``retain_x``: model inputs (already normalised), ``forget_y``/``retain_y``:
    int64 labels. ``oracle_forget_logits``/``oracle_retain_logits``: mean logits of held-out
    oracles on the same rows (only for methods registered with ``needs_oracles=True``).
    """

    forget_x: object
    forget_y: object
    retain_x: object
    retain_y: object
    oracle_forget_logits: object = None
    oracle_retain_logits: object = None
    datamodel_forget_shift: object = None
    datamodel_retain_shift: object = None
    train_x: object = None
    val_x: object = None
    datamodel_train_shift: object = None
    datamodel_val_shift: object = None

    def __post_init__(self):
        for part in ("forget", "retain"):
            x, y = getattr(self, f"{part}_x"), getattr(self, f"{part}_y")
            if x.shape[0] != y.shape[0]:
                raise ValueError(f"{part}_x has {x.shape[0]} rows but {part}_y has {y.shape[0]}")
            for name in (f"oracle_{part}_logits", f"datamodel_{part}_shift"):
                target = getattr(self, name)
                if target is not None and (target.ndim != 2 or target.shape[0] != y.shape[0]):
                    raise ValueError(f"{name} has shape {tuple(target.shape)}, "
                                     f"expected ({y.shape[0]}, n_classes)")
        if self.forget_y.shape[0] == 0:
            raise ValueError("the forget set is empty")

    @property
    def has_oracles(self) -> bool:
        return self.oracle_forget_logits is not None and self.oracle_retain_logits is not None

    @property
    def has_datamodel(self) -> bool:
        return (self.datamodel_forget_shift is not None
                and self.datamodel_retain_shift is not None)

    @property
    def device(self):
        return self.forget_x.device

    @classmethod
    def from_dataset(cls, dataset, forget, *, oracle_train_logits=None, datamodel_shift=None,
                     device=None):
        """Split a :class:`~klom_utils.data.TensorDataset`'s train split by ``forget``.

        ``oracle_train_logits``: (n_train, n_classes) mean logits of held-out oracles.
        ``datamodel_shift``: (n_train + n_val, n_classes) predicted change of the logits when
        the forget set leaves training (:func:`klom_utils.datamodels.forget_shift`); with it
        the data also carries every input (``train_x``, ``val_x``) and the shift of each split.
        """
        import torch

        from .data import retain_mask

        keep = torch.as_tensor(retain_mask(dataset.n_train, forget))
        forget = torch.as_tensor(np.asarray(forget), dtype=torch.long)
        x = dataset.normalize(dataset.train_x, device=device)
        y = dataset.train_y.to(x.device)
        targets = {}
        if oracle_train_logits is not None:
            t = torch.as_tensor(oracle_train_logits, dtype=torch.float32).to(x.device)
            if t.shape[0] != dataset.n_train:
                raise ValueError(f"oracle_train_logits has {t.shape[0]} rows, expected "
                                 f"{dataset.n_train} (the train split)")
            targets = {"oracle_forget_logits": t[forget.to(x.device)],
                       "oracle_retain_logits": t[keep.to(x.device)]}
        if datamodel_shift is not None:
            d = torch.as_tensor(np.asarray(datamodel_shift), dtype=torch.float32).to(x.device)
            n = dataset.n_train + dataset.n_val
            if d.ndim != 2 or d.shape[0] != n:
                raise ValueError(f"datamodel_shift has shape {tuple(d.shape)}, expected "
                                 f"({n}, n_classes): train then validation examples")
            train_shift = d[:dataset.n_train]
            targets.update(datamodel_forget_shift=train_shift[forget.to(x.device)],
                           datamodel_retain_shift=train_shift[keep.to(x.device)],
                           train_x=x, val_x=dataset.normalize(dataset.val_x, device=device),
                           datamodel_train_shift=train_shift,
                           datamodel_val_shift=d[dataset.n_train:])
        keep = keep.to(x.device)
        return cls(forget_x=x[forget.to(x.device)], forget_y=y[forget.to(x.device)],
                   retain_x=x[keep], retain_y=y[keep], **targets)


# --------------------------------------------------------------------------------- the registry

@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its function, its default config per dataset, whether it needs
    held-out oracles or a datamodel, and whether ``fn`` takes a stack of models
    (``stacked``, see :func:`register_method`)."""

    name: str
    fn: Callable
    defaults: Mapping = field(default_factory=dict)
    needs_oracles: bool = False
    needs_datamodel: bool = False
    stacked: bool = False

    def __call__(self, model, data, config, *, generator):
        """The method on one model (a stacked method gets it as a stack of one)."""
        if self.stacked:
            return _on_one(self.fn, model, data, config, generator)
        return self.fn(model, data, config, generator=generator)

    def on_stack(self, models, data, config, *, generators):
        """The method on a :class:`~klom_utils.train.ModelStack` (``stacked`` methods only):
        a stack of the unlearned models, or an :class:`Outputs` of logits ``(M, n, C)``."""
        if not self.stacked:
            raise ValueError(f"method {self.name!r} works one model at a time (registered "
                             "without stacked=True)")
        if len(generators) != models.m:
            raise ValueError(f"{len(generators)} generators for a stack of {models.m} models")
        return self.fn(models, data, config, generators=list(generators))


def _on_one(fn, model, data, config, generator):
    """A stacked method's ``fn`` applied to one nn.Module: as a stack of one."""
    from .train import ModelStack

    out = fn(ModelStack.of([model]), data, config, generators=[generator])
    if isinstance(out, Outputs):
        return Outputs(train_logits=out.train_logits[0], val_logits=out.val_logits[0])
    return out.models()[0]


def _stacked_entry(fn):
    """What ``register_method(..., stacked=True)`` returns: ``fn`` callable both ways, on a
    stack (``generators=``) as written, or on one model (``generator=``) as a stack of one."""
    import functools

    @functools.wraps(fn)
    def method(models, data, config, *, generator=None, generators=None):
        from .train import ModelStack

        if isinstance(models, ModelStack):
            if generators is None:
                raise ValueError(f"{fn.__name__}: a stack of models needs generators=[...], "
                                 "one per model")
            return fn(models, data, config, generators=list(generators))
        return _on_one(fn, models, data, config, generator)

    return method


#: name -> :class:`MethodSpec` of every registered method.
METHODS: dict = {}


def _check_name(name) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"method name {name!r} must be letters, digits, '_', '-' or '.' "
                         "(it names a folder in the store)")
    return name


def _per_dataset(defaults) -> dict:
    """``{dataset: config}`` from either that or one flat config for every dataset."""
    if defaults is None:
        return {ANY_DATASET: {}}
    if not isinstance(defaults, Mapping):
        raise ValueError(f"defaults must be a dict, got {type(defaults).__name__}")
    if defaults and all(isinstance(v, Mapping) for v in defaults.values()):
        return {str(k): dict(v) for k, v in defaults.items()}
    return {ANY_DATASET: dict(defaults)}


def register_method(name: str, defaults=None, *, needs_oracles: bool = False,
                    needs_datamodel: bool = False, stacked: bool = False,
                    replace: bool = False):
    """Decorator registering ``fn(model, data, config, *, generator) -> model`` as ``name``.

    ``defaults``: ``{dataset: {key: value}}`` (dataset store names such as ``"DIGITS"``, and
    ``"*"`` for any other), or one flat ``{key: value}`` for every dataset. The defaults fix
    which keys exist and their types (see :func:`resolve_config`). ``needs_oracles``: the
    method gets the mean logits of held-out oracles; ``needs_datamodel``: it gets the
    datamodel's predicted shift (:class:`UnlearnData`). A method may return an
    :class:`Outputs` (logits) instead of a model.

    ``stacked=True`` opts in to stacks: ``fn(models, data, config, *, generators)`` then gets
    a :class:`~klom_utils.train.ModelStack` of M models (``models(x)`` maps inputs
    ``(M, B, ...)``, one batch per model, to logits ``(M, B, C)``) and M generators, one per
    model, and returns a stack of the unlearned models (leaving ``models`` unchanged) or an
    :class:`Outputs` with logits ``(M, n, C)``. Keep every model's math its own (a loss per
    model, summed before ``backward``; random draws from its own generator) and a model
    unlearned in a stack equals the same model unlearned alone. :func:`unlearn_store` then
    unlearns many models at once; the decorated function stays callable on one model
    (``generator=``), as a stack of one. Without ``stacked``, a method gets one model at a time.
    """
    _check_name(name)
    per_dataset = _per_dataset(defaults)

    def decorator(fn):
        if not callable(fn):
            raise ValueError(f"register_method({name!r}) needs a function, got {fn!r}")
        if name in METHODS and not replace:
            raise ValueError(f"a method named {name!r} is already registered "
                             "(pass replace=True to replace it)")
        METHODS[name] = MethodSpec(name, fn, per_dataset, bool(needs_oracles),
                                   bool(needs_datamodel), bool(stacked))
        return _stacked_entry(fn) if stacked else fn

    return decorator


def get_method(method) -> MethodSpec:
    """The :class:`MethodSpec` of a registered name, a spec, or a plain function (which gets
    no defaults; its name is the function's name)."""
    if isinstance(method, MethodSpec):
        return method
    if isinstance(method, str):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}: expected one of {sorted(METHODS)} "
                             "or a function registered with register_method")
        return METHODS[method]
    if callable(method):
        fn = getattr(method, "__wrapped__", method)  # a stacked method's entry (_stacked_entry)
        for spec in METHODS.values():
            if spec.fn is method or spec.fn is fn:
                return spec
        return MethodSpec(_check_name(getattr(method, "__name__", "")), method, {ANY_DATASET: {}})
    raise ValueError(f"method must be a name or a function, got {type(method).__name__}")


def _dataset_key(dataset) -> str:
    from .data import dataset_name

    name = getattr(dataset, "name", dataset)
    try:
        return dataset_name(name)
    except ValueError:
        return str(name).upper()


#: Datasets whose methods take another dataset's defaults where they have none of their own:
#: LIVING-17 (ResNet-18s) the authors' CIFAR-10 settings, not tuned for it.
DEFAULTS_FROM = {"LIVING17": "CIFAR10"}


def default_config(method, dataset) -> dict:
    """A copy of the default config of ``method`` for ``dataset`` (see :data:`DEFAULTS_FROM`)."""
    spec = get_method(method)
    key = _dataset_key(dataset)
    for k in (key, DEFAULTS_FROM.get(key)):
        if k in spec.defaults:
            return copy.deepcopy(dict(spec.defaults[k]))
    if ANY_DATASET in spec.defaults:
        return copy.deepcopy(dict(spec.defaults[ANY_DATASET]))
    raise ValueError(f"method {spec.name!r} has no defaults for dataset {key!r}: it has "
                     f"defaults for {sorted(spec.defaults)}")


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _coerce(method: str, key: str, value, default):
    """``value`` converted to the type of ``default`` (strings are parsed)."""
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in _TRUE + _FALSE:
                    raise ValueError
                return value.lower() in _TRUE
            if isinstance(value, (bool, np.bool_)) or value in (0, 1):
                return bool(value)
            raise ValueError
        if kind is int:
            if isinstance(value, str):
                number = float(value)
            elif isinstance(value, (bool, np.bool_)):
                raise ValueError
            else:
                number = value
            if float(number) != int(number):
                raise ValueError
            return int(number)
        if kind is float:
            if isinstance(value, (bool, np.bool_)):
                raise ValueError
            return float(value)
        if kind is str:
            return str(value)
        if kind in (list, tuple):  # e.g. lr_milestones: "3,5,9", "[3, 5, 9]", "" or a list
            if isinstance(value, str):
                text = value.strip().strip("[]()")
                items = [v for v in (part.strip() for part in text.split(",")) if v]
            elif isinstance(value, (list, tuple)):
                items = value
            else:
                raise ValueError
            item = default[0] if len(default) else 0
            return [_coerce(method, key, v, item) for v in items]
        return value
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{method}: {key}={value!r} is not a valid {kind.__name__} "
                         f"(default {default!r})") from None


#: The values each config key of the built-in methods may take: ``(low, high, kind)`` with
#: ``kind`` "open" (low < x), "closed" (low <= x) at the low end; ``high`` inclusive (None: no
#: bound). Numbers must be finite. Checked by :func:`resolve_config`, before anything runs.
KEY_RANGES = {
    "lr": (0.0, None, "open"), "temperature": (0.0, None, "open"),
    "lr_decay": (0.0, 1.0, "open"),
    "epochs": (1, None, "closed"), "batch_size": (1, None, "closed"),
    "forget_batch_size": (1, None, "closed"), "retain_batch_size": (1, None, "closed"),
    "forget_repeat": (1, None, "closed"), "retain_multiple": (1, None, "closed"),
    "max_epochs": (0, None, "closed"), "momentum": (0.0, 1.0, "closed"),
    "weight_decay": (0.0, None, "closed"), "max_grad_norm": (0.0, None, "closed"),
    "gamma": (0.0, None, "closed"), "alpha": (0.0, None, "closed"),
    "lr_milestones": (0, None, "closed"),
}
#: Narrower ranges of one method.
METHOD_RANGES = {"neggrad_plus": {"alpha": (0.0, 1.0, "closed")}}


def check_config(method: str, config: Mapping) -> None:
    """Raise ``ValueError`` naming the first value of ``config`` outside its range
    (:data:`KEY_RANGES`); keys without a range are not checked."""
    ranges = {**KEY_RANGES, **METHOD_RANGES.get(method, {})}
    for key, value in config.items():
        if key not in ranges:
            continue
        low, high, kind = ranges[key]
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            ok = (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                  and math.isfinite(v) and (v > low if kind == "open" else v >= low)
                  and (high is None or v <= high))
            if not ok:
                bound = ("> " if kind == "open" else ">= ") + f"{low}" + (
                    f" and <= {high}" if high is not None else "")
                raise ValueError(f"{method}: {key}={value!r} is out of range: expected a "
                                 f"finite number {bound}")


def parse_overrides(items: Sequence[str]) -> dict:
    """``["lr=0.01", "epochs=3"]`` -> ``{"lr": "0.01", "epochs": "3"}`` (values still strings)."""
    out = {}
    for item in items or ():
        if not isinstance(item, str) or "=" not in item:
            raise ValueError(f"config item {item!r}: expected key=value")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def resolve_config(method, dataset, overrides=None) -> dict:
    """The method's defaults for ``dataset`` with ``overrides`` applied and type-checked.

    ``overrides``: a dict, or ``key=value`` strings (the command line's ``--config``). Values
    take the type of the default (a list default takes a list or ``"3,5,9"``, its items the
    type of the default's items); an unknown key is an error naming the allowed keys. A method
    without defaults (a plain function) takes any keys as given.
    """
    spec = get_method(method)
    config = default_config(spec, dataset)
    if overrides is None:
        overrides = {}
    elif not isinstance(overrides, Mapping):
        overrides = parse_overrides(overrides)
    if not config:
        return dict(overrides)
    unknown = sorted(k for k in overrides if k not in config)
    if unknown:
        raise ValueError(f"{spec.name} has no config key {unknown[0]!r}: allowed keys are "
                         f"{sorted(config)}")
    for key, value in overrides.items():
        config[key] = _coerce(spec.name, key, value, config[key])
    check_config(spec.name, config)
    return config


# ------------------------------------------------------------------------------------- helpers

def model_generator(model_id: int, *, dataset: str = "", forget_set=None, method: str = "",
                    seed: int = 0):
    """The CPU ``torch.Generator`` of one unlearning run, seeded from the run's identity."""
    import torch

    from .train import model_seed

    purpose = f"unlearn/{method}/{'' if forget_set is None else int(forget_set)}"
    return torch.Generator().manual_seed(model_seed(dataset, "unlearn", model_id, purpose, seed))


def _for_training(models):
    """A copy of the stack in train mode with gradients on (the original is left as it is)."""
    return models.copy().requires_grad_(True).train()


def _orders(n: int, batch_size: int, generators, device) -> list:
    """Index tensors (M, b) of one shuffled pass over ``n`` rows, each model its own order
    (model j draws one permutation from ``generators[j]``)."""
    import torch

    perm = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(device)
    return list(perm.split(batch_size, dim=1))


class _Cycle:
    """Batches (M, b) of ``batch_size`` indices forever, reshuffled after each pass."""

    def __init__(self, n, batch_size, generators, device):
        self.args, self.queue = (n, batch_size, generators, device), []

    def __next__(self):
        if not self.queue:
            self.queue = _orders(*self.args)
        return self.queue.pop(0)


def _sgd(models, config):
    from .train import optimizer

    return optimizer("sgd", models.parameters(), lr=config["lr"], momentum=config["momentum"],
                     weight_decay=config["weight_decay"])


def _per_model(t, m: int):
    """View of a stacked tensor as (m, ...): models one after the other along dim 0."""
    return t.unsqueeze(0) if t.dim() == 0 else t.unflatten(0, (m, -1))


def _step(optimizer, losses, max_grad_norm: float = 0.0):
    """One step on the sum of the per-model ``losses`` (M,); with ``max_grad_norm`` each
    model's gradient is clipped to that norm on its own (as ``clip_grad_norm_`` would)."""
    import torch

    optimizer.zero_grad(set_to_none=True)
    losses.sum().backward()
    if max_grad_norm and max_grad_norm > 0:
        m = losses.shape[0]
        grads = [_per_model(p.grad, m) for g in optimizer.param_groups for p in g["params"]
                 if p.grad is not None]
        norms = torch.stack([torch.linalg.vector_norm(g, dim=tuple(range(1, g.dim())))
                             for g in grads]).norm(dim=0)
        coef = (max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.view(m, *[1] * (g.dim() - 1)))
    optimizer.step()


def _cross_entropy(logits, y):
    """Mean cross-entropy per model: (..., B, C), (..., B) -> (...,)."""
    from .train import per_model_cross_entropy

    return per_model_cross_entropy(logits, y)


def _distill_kl(student_logits, teacher_logits, temperature: float):
    """KL(teacher ‖ student) of the softened outputs, times T² (Hinton's distillation loss),
    the mean over each model's rows: (..., B, C) -> (...,)."""
    import torch.nn.functional as F

    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits / t, dim=-1),
                  F.softmax(teacher_logits / t, dim=-1), reduction="none")
    return kl.sum(-1).mean(-1) * t * t


def _sgd_defaults(**values) -> dict:
    return {"momentum": 0.9, "weight_decay": 5e-4, **values}


# ------------------------------------------------------------------------------------- methods
#
# The built-in methods are written for a stack of M models (``stacked=True``), every model with
# its own data order (its own generator) and its own loss; called on one model they run on a
# stack of one. Their inputs are (M, B, ...) batches gathered with (M, B) index tensors.

@register_method("do_nothing", {ANY_DATASET: {}}, stacked=True)
def do_nothing(models, data, config, *, generators):
    """The original model, unchanged (the baseline every table needs)."""
    return models.copy().eval()


@register_method("gradient_ascent", {
    "DIGITS": _sgd_defaults(lr=0.01, epochs=3, batch_size=16, max_grad_norm=0.0),
    "CIFAR10": _sgd_defaults(lr=5e-8, epochs=3, batch_size=64, max_grad_norm=0.0),
}, stacked=True)
def gradient_ascent(models, data, config, *, generators):
    """Maximise cross-entropy on the forget set (SGD)."""
    student = _for_training(models)
    opt = _sgd(student, config)
    n = data.forget_y.shape[0]
    for _ in range(config["epochs"]):
        for idx in _orders(n, config["batch_size"], generators, data.device):
            loss = -_cross_entropy(student(data.forget_x[idx]), data.forget_y[idx])
            _step(opt, loss, config["max_grad_norm"])
    return student.eval()


@register_method("gradient_descent", {
    "DIGITS": _sgd_defaults(lr=0.01, epochs=3, batch_size=64),
    "CIFAR10": _sgd_defaults(lr=1e-4, epochs=3, batch_size=64),
}, stacked=True)
def gradient_descent(models, data, config, *, generators):
    """Fine-tune on the retain set only (minimise cross-entropy on R; SGD)."""
    student = _for_training(models)
    opt = _sgd(student, config)
    n = data.retain_y.shape[0]
    for _ in range(config["epochs"]):
        for idx in _orders(n, config["batch_size"], generators, data.device):
            _step(opt, _cross_entropy(student(data.retain_x[idx]), data.retain_y[idx]))
    return student.eval()


@register_method("neggrad_plus", {
    "DIGITS": _sgd_defaults(lr=0.02, epochs=5, forget_batch_size=16, retain_batch_size=64,
                            alpha=0.8, max_grad_norm=0.0),
    "CIFAR10": _sgd_defaults(lr=1e-3, epochs=5, forget_batch_size=64, retain_batch_size=64,
                             alpha=0.5, max_grad_norm=0.0),
}, stacked=True)
def neggrad_plus(models, data, config, *, generators):
    """Each step: ``alpha * CE(retain batch) - (1 - alpha) * CE(forget batch)`` (SGD).

    An epoch is one pass over the forget set; retain batches are drawn cyclically.
    """
    alpha = config["alpha"]
    if not 0 <= alpha <= 1:
        raise ValueError(f"neggrad_plus: alpha must lie in [0, 1], got {alpha}")
    student = _for_training(models)
    opt = _sgd(student, config)
    retain = _Cycle(data.retain_y.shape[0], config["retain_batch_size"], generators, data.device)
    for _ in range(config["epochs"]):
        for f in _orders(data.forget_y.shape[0], config["forget_batch_size"], generators,
                         data.device):
            r = next(retain)
            loss = (alpha * _cross_entropy(student(data.retain_x[r]), data.retain_y[r])
                    - (1 - alpha) * _cross_entropy(student(data.forget_x[f]), data.forget_y[f]))
            _step(opt, loss, config["max_grad_norm"])
    return student.eval()


def _scrub_defaults(**values) -> dict:
    return _sgd_defaults(**{"temperature": 4.0, "gamma": 0.99, "alpha": 0.1, "lr_decay": 0.1,
                            "forget_batch_size": 32, "retain_batch_size": 64, **values})


@register_method("scrub", {
    # tuned with scripts/tune_scrub.py: the bench's loss weights, a constant learning rate
    "DIGITS": _scrub_defaults(lr=0.05, epochs=10, max_epochs=5, lr_milestones=[]),
    # data-unlearning-bench's SCRUB; lr: the middle of its grid 5e-5 ... 5e-3 (Kurmanji's value)
    "CIFAR10": _scrub_defaults(lr=5e-4, epochs=10, max_epochs=3, lr_milestones=[3, 5, 9]),
}, stacked=True)
def scrub(models, data, config, *, generators):
    """SCRUB (Kurmanji et al. 2023) as published: the student (a copy of the model) is
    trained, the teacher (the original, frozen, in eval mode) is not.

    Each epoch: in the first ``max_epochs`` epochs, a "max" pass over the forget set (batches
    of ``forget_batch_size``) minimising ``-KL(teacher ‖ student)`` at ``temperature``; then a
    "min" pass over the retain set (batches of ``retain_batch_size``) minimising
    ``gamma * CE(student, y) + alpha * KL(teacher ‖ student)`` (the same KL, at
    ``temperature``, times T²; see :func:`_scrub_min_loss`). SGD over the student's parameters;
    the learning rate is multiplied by ``lr_decay`` at each epoch of ``lr_milestones``
    (0-based: epoch ``e`` trains at ``lr * lr_decay ** (number of milestones <= e)``; the
    bench's ``[3, 5, 9]`` gives x0.1 from the 4th, 6th and 10th epoch on).
    """
    import torch

    _check_scrub(config)
    teacher = models.copy().requires_grad_(False).eval()
    student = _for_training(models)
    opt = _sgd(student, config)  # over the student's parameters: the student is what moves
    schedule = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=config["lr_milestones"],
                                                    gamma=config["lr_decay"])
    t = config["temperature"]
    for epoch in range(config["epochs"]):
        if epoch < config["max_epochs"]:
            for idx in _orders(data.forget_y.shape[0], config["forget_batch_size"], generators,
                               data.device):
                x = data.forget_x[idx]
                with torch.no_grad():
                    target = teacher(x)
                _step(opt, -_distill_kl(student(x), target, t))
        for idx in _orders(data.retain_y.shape[0], config["retain_batch_size"], generators,
                           data.device):
            x = data.retain_x[idx]
            target = None
            if config["alpha"]:
                with torch.no_grad():
                    target = teacher(x)
            _step(opt, _scrub_min_loss(student(x), target, data.retain_y[idx], config))
        schedule.step()
    return student.eval()


def _scrub_min_loss(student_logits, teacher_logits, y, config):
    """SCRUB's retain ("min") loss per model: ``gamma * CE + alpha * KL_T(teacher ‖ student)``
    of logits (..., B, C) and labels (..., B) -> (...,).

    ``teacher_logits`` may be None when ``alpha`` is 0 (the KL term is then left out).
    """
    loss = config["gamma"] * _cross_entropy(student_logits, y)
    if config["alpha"]:
        loss = loss + config["alpha"] * _distill_kl(student_logits, teacher_logits,
                                                    config["temperature"])
    return loss


def _check_scrub(config) -> None:
    check_config("scrub", config)
    bad = [m for m in config["lr_milestones"] if int(m) != m]
    if bad:
        raise ValueError(f"scrub: lr_milestones must be epochs (integers >= 0), got "
                         f"{config['lr_milestones']}")


def _matching_defaults(lr: float, epochs: int, batch_size: int, forget_repeat: int = 5) -> dict:
    """Settings of a matching method (oracle or datamodel): per epoch the forget set
    ``forget_repeat`` times and a retain sample 20 times its size; learning rate x0.95 per
    epoch."""
    return {"lr": lr, "epochs": epochs, "batch_size": batch_size, "lr_decay": 0.95,
            "forget_repeat": forget_repeat, "retain_multiple": 20}


@register_method("oracle_matching", {
    "DIGITS": _matching_defaults(1e-3, 10, 64),
    "CIFAR10": _matching_defaults(5e-4, 13, 256),
}, needs_oracles=True, stacked=True)
def oracle_matching(models, data, config, *, generators):
    """Fine-tune towards the mean logits of held-out oracles (MSE on logits, Adam).

    Each epoch trains on the forget set repeated ``forget_repeat`` times plus a fresh random
    retain sample of ``retain_multiple`` times the forget set's size; the learning rate is
    multiplied by ``lr_decay`` after every epoch.
    """
    if not data.has_oracles:
        raise ValueError("oracle_matching needs the mean logits of held-out oracles "
                         "(UnlearnData.oracle_forget_logits and oracle_retain_logits)")
    return _match_logits(models, data, data.oracle_forget_logits, data.oracle_retain_logits,
                         config, generators)


def _match_logits(models, data, forget_target, retain_target, config, generators):
    """Fine-tune a copy of the stack towards target logits (MSE, Adam): each epoch the forget
    set repeated ``forget_repeat`` times plus a fresh retain sample of ``retain_multiple``
    times its size; the learning rate times ``lr_decay`` after every epoch. Targets: (n, C)
    shared by every model, or (M, n, C)."""
    import torch
    import torch.nn.functional as F

    from .train import optimizer

    student = _for_training(models)
    m, dev = student.m, data.device
    opt = optimizer("adam", student.parameters(), lr=config["lr"])
    n_f, n_r = data.forget_y.shape[0], data.retain_y.shape[0]
    n_sample = min(n_r, config["retain_multiple"] * n_f)
    pool_x = torch.cat([data.forget_x, data.retain_x])  # forget rows first, then retain rows
    pool_t = torch.cat([t.expand(m, *t.shape[-2:]) for t in (forget_target, retain_target)],
                       dim=1)
    rows = torch.arange(m, device=dev).unsqueeze(1)
    forget_rows = torch.arange(n_f, device=dev).repeat(config["forget_repeat"]).expand(m, -1)
    for _ in range(config["epochs"]):
        pick = torch.stack([torch.randperm(n_r, generator=g)[:n_sample]
                            for g in generators]).to(dev)
        ids = torch.cat([forget_rows, n_f + pick], dim=1)  # (M, rows of this epoch)
        for idx in _orders(ids.shape[1], config["batch_size"], generators, dev):
            sel = ids.gather(1, idx)
            out = student(pool_x[sel])
            _step(opt, F.mse_loss(out, pool_t[rows, sel], reduction="none").mean((-2, -1)))
        for group in opt.param_groups:
            group["lr"] *= config["lr_decay"]
    return student.eval()


@dataclass
class Outputs:
    """What a method returns instead of a model when it produces the unlearned models'
    outputs directly: logits on the train split and on the validation split (float32)."""

    train_logits: object
    val_logits: object


def _need_datamodel(data, name):
    if not data.has_datamodel or any(getattr(data, f) is None for f in (
            "train_x", "val_x", "datamodel_train_shift", "datamodel_val_shift")):
        raise ValueError(f"{name} needs a datamodel's predicted shift (UnlearnData built with "
                         "datamodel_shift=...; `klom datamodels` estimates one)")


#: ``shrink``: shrink the datamodel's predicted change by its noise, where the datamodel has
#: it (:func:`klom_utils.datamodels.predicted_shift`).
@register_method("datamodel_matching", {
    "DIGITS": {**_matching_defaults(1e-3, 10, 64, forget_repeat=10), "shrink": True},
    "CIFAR10": {**_matching_defaults(1e-4, 4, 512), "shrink": True},
}, needs_datamodel=True, stacked=True)
def datamodel_matching(models, data, config, *, generators):
    """Datamodel matching (Georgiev et al. 2025): fine-tune, as oracle matching does, towards
    targets made without oracles: the model's own logits plus the datamodel's predicted
    change when the forget set leaves training."""
    from .train import predict

    _need_datamodel(data, "datamodel_matching")
    own = [predict(models, x).to(data.device) for x in (data.forget_x, data.retain_x)]
    return _match_logits(models, data, own[0] + data.datamodel_forget_shift,
                         own[1] + data.datamodel_retain_shift, config, generators)


@register_method("datamodel_direct", {ANY_DATASET: {"shrink": True}}, needs_datamodel=True,
                 stacked=True)
def datamodel_direct(models, data, config, *, generators):
    """No training: the model's logits plus the datamodel's predicted change, as the outputs
    of the unlearned model (an :class:`Outputs`)."""
    from .train import predict

    _need_datamodel(data, "datamodel_direct")
    return Outputs(train_logits=predict(models, data.train_x) + data.datamodel_train_shift.cpu(),
                   val_logits=predict(models, data.val_x) + data.datamodel_val_shift.cpu())


# ------------------------------------------------------------------------- applying to models

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
    from .train import ModelStack

    spec = get_method(method)
    models = list(models)
    ids = list(range(len(models))) if model_ids is None else [int(i) for i in model_ids]
    if len(ids) != len(models):
        raise ValueError(f"{len(ids)} model ids for {len(models)} models")
    key = _dataset_key(dataset)
    config = resolve_config(spec, key, config)
    gens = _generators(spec, ids, key, forget_set, seed)
    if not (spec.stacked and models and ModelStack.arch_of(models)):
        return [spec(m, data, dict(config), generator=g) for m, g in zip(models, gens)]
    size = len(models) if stack is None else _check_stack(stack)
    out = []
    for start in range(0, len(models), size):
        part = slice(start, start + size)
        got = spec.on_stack(ModelStack.of(models[part]), data, dict(config),
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
    from .train import TrainConfig, choose_stack

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
    import torch

    from .models import SAVE_PREFIX
    from .train import ModelStack, predict

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


def predict_logits(model, x, batch_size: int = 1024):
    """Logits of ``model`` on inputs ``x`` in eval mode, float32 on CPU.

    Evaluated without autocast (even inside a caller's autocast block), as
    :func:`klom_utils.train.predict` evaluates the originals and oracles: every model's
    margins are computed the same way.
    """
    import torch

    model.eval()
    with torch.no_grad(), torch.autocast(device_type=x.device.type, enabled=False):
        return torch.cat([model(x[i:i + batch_size]).float().cpu()
                          for i in range(0, x.shape[0], batch_size)])


def held_out_oracle_ids(store, dataset: str, forget_set: int) -> list:
    """Ids of the oracles of forget set ``k`` held out from scoring (``>= 1000``)."""
    from .store import oracle_folder

    folder = oracle_folder(dataset, forget_set)
    if not store.path(folder).is_dir():
        return []
    return [i for i in store.model_ids(folder) if i >= HELD_OUT_ORACLE_START]


def _mean_oracle_logits(store, dataset: str, forget_set: int, oracle_ids):
    import torch

    from .store import oracle_folder

    folder = oracle_folder(dataset, forget_set)
    total = None
    for i in oracle_ids:
        logits = store.logits(folder, "train", i)
        total = logits.double() if total is None else total + logits.double()
    return (total / len(oracle_ids)).float() if total is not None else torch.empty(0)


def _check_record(store, folder: str, record: dict) -> None:
    """Write the folder's record, or check that the one already there matches."""
    diff = store.record_or_compare(f"{folder}/{CONFIG_FILE}", record)
    if diff:
        raise ValueError(f"{folder} holds models unlearned differently ({', '.join(diff)}); "
                         "choose another name (name=, --name) or delete the folder")


def unlearn_store(store, dataset, forget_set: int, method, model_ids, *, config=None,
                  name: str | None = None, oracle_ids=None, seed: int = 0, device="auto",
                  save_checkpoints: bool = False, threads: int | None = None,
                  progress: bool | None = True, root=None, datamodel=None,
                  stack="auto") -> dict:
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
    is unlearned (:func:`klom_utils.launch.claimed`), so concurrent runs never do one twice.
    ``progress``: bars, ``False`` nothing, ``None`` bars on a terminal and lines in logs.
    Returns ``{"folder", "written"`` (ids this call unlearned), ``"skipped"`` (the others),
    ``"seconds"}``.
    """
    from .data import TensorDataset, load_dataset
    from .datamodels import (DATAMODEL_FILE, datamodel_about, datamodel_folder,
                             noise_path, predicted_shift)
    from .launch import claimed_chunks
    from .models import infer_arch
    from .progress import progress_bar
    from .store import Store, full_models_folder, open_store, unlearned_folder
    from .train import device_settings, forget_indices, resolve_device

    start = time.perf_counter()
    spec = get_method(method)
    name = _check_name(name or spec.name)
    if stack != "auto":
        _check_stack(stack)
    if not isinstance(store, Store):
        store = open_store(store)
    data = dataset if isinstance(dataset, TensorDataset) else load_dataset(dataset, root=root)
    config = resolve_config(spec, data.name, config)
    forget = forget_indices(store, data, forget_set)
    ids = sorted({int(i) for i in model_ids})
    if not ids:
        raise ValueError("no model ids given")
    full = full_models_folder(data.name)
    have = set(store.model_ids(full)) if store.path(full).is_dir() else set()
    missing = [i for i in ids if i not in have]
    if missing:
        raise FileNotFoundError(f"store {str(store.root)!r} has no full models {missing[:10]} "
                                f"in {full!r} (train them with `klom train` or download them)")

    for given, needed, what in ((oracle_ids, spec.needs_oracles, "oracle_ids (--oracle-ids)"),
                                (datamodel, spec.needs_datamodel, "datamodel (--datamodel)")):
        if given is not None and not needed:
            raise ValueError(f"{what} was given, but {spec.name} does not use it (it would be "
                             "ignored); drop it or choose a method that does")
    if spec.needs_oracles:
        oracle_ids = (held_out_oracle_ids(store, data.name, forget_set) if oracle_ids is None
                      else sorted({int(i) for i in oracle_ids}))
        if not oracle_ids:
            raise FileNotFoundError(
                f"{spec.name} needs held-out oracles of forget set {forget_set}: none with ids "
                f">= {HELD_OUT_ORACLE_START} in oracles/{data.name}/forget_set_{forget_set}; "
                f"train some (`klom train --dataset {data.name.lower()} --forget-set "
                f"{forget_set} --models {HELD_OUT_ORACLE_START}-{HELD_OUT_ORACLE_START + 9}`) "
                "or pass oracle_ids")
    else:
        oracle_ids = None
    datamodel_path = shift = None
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

    folder = unlearned_folder(data.name, name, forget_set)
    record = {"method": spec.name, "dataset": data.name, "forget_set": int(forget_set),
              "config": config, "seed": int(seed), "oracle_ids": oracle_ids,
              **({"datamodel": {**datamodel_about(datamodel_path), "shrunk": shrink,
                                "shift_sha1": hashlib.sha1(shift.tobytes()).hexdigest()}}
                 if datamodel_path else {})}
    _check_record(store, folder, record)
    todo = [i for i in ids if not store.has_model(folder, i)]
    written: list = []
    if todo:
        dev = resolve_device(device)
        targets = (_mean_oracle_logits(store, data.name, forget_set, oracle_ids)
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
            for chunk, covered in claimed_chunks(store, folder, todo, size,
                                                 lambda i: store.has_model(folder, i)):
                if chunk:
                    _unlearn_chunk(store, folder, full, chunk, spec, udata, config, dev,
                                   data.name, forget_set, seed, train_x, val_x, train_y,
                                   val_y, save_checkpoints)
                    written += chunk
                bar.update(covered)
            bar.close()
    return {"folder": folder, "written": written,
            "skipped": [i for i in ids if i not in written],
            "seconds": time.perf_counter() - start}


def _unlearn_chunk(store, folder, full, chunk, spec, udata, config, dev, dataset, forget_set,
                   seed, train_x, val_x, train_y, val_y, save_checkpoints) -> None:
    """Unlearn the originals ``chunk`` (at once where the method takes stacks) and write them."""
    from .models import load_model
    from .train import ModelStack

    originals = [load_model(store.state_dict(full, i), arch="auto", device=dev) for i in chunk]
    gens = _generators(spec, chunk, dataset, forget_set, seed)
    if spec.stacked:
        out = spec.on_stack(ModelStack.of(originals, device=dev), udata, dict(config),
                            generators=gens)
    else:
        out = spec(originals[0], udata, dict(config), generator=gens[0])
    train_logits, val_logits, sds = _outputs(spec, out, len(chunk), train_x, val_x,
                                             save_checkpoints)
    for j, model_id in enumerate(chunk):
        store.write_model(folder, model_id, train_logits=train_logits[j],
                          val_logits=val_logits[j], train_labels=train_y, val_labels=val_y,
                          state_dict=sds[j], epoch=0)

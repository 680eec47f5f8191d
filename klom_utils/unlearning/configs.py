"""Method configs: the defaults of a method for a dataset, overrides from the command line,
and the range of every value, checked before anything runs."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from typing import Any, Mapping, Sequence

import numpy as np

from ..data import dataset_name
from .registry import ANY_DATASET, get_method


def dataset_key(dataset) -> str:
    """The store name of ``dataset`` (a dataset, a name in any spelling, or an unknown name
    upper-cased): the key of a method's defaults."""
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
    key = dataset_key(dataset)
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
            items: list | tuple
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
    "lr_milestones": (0, None, "closed"), "fraction": (0.0, 1.0, "open"),
    "k": (1, None, "closed"), "noise_std": (0.0, None, "closed"),
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


def _per_dataset_value(table: Mapping, dataset) -> Mapping | None:
    """``table[dataset]``, else the dataset it takes defaults from, else ``table["*"]``."""
    key = dataset_key(dataset)
    for k in (key, DEFAULTS_FROM.get(key), ANY_DATASET):
        if k in table:
            return table[k]
    return None


def search_space(method, dataset, overrides: Mapping | None = None) -> dict:
    """The values each setting of ``method`` may take on ``dataset`` when a comparison chooses
    settings: ``{key: [values]}``, the method's declared space with ``overrides`` (``{key:
    [values]}``) replacing keys; values take the default's type and are range-checked. An
    unknown key is an error naming the allowed ones; an empty space means only the defaults."""
    spec = get_method(method)
    defaults = default_config(spec, dataset)
    space = {k: list(v) for k, v in (_per_dataset_value(spec.search, dataset) or {}).items()}
    for key, values in (overrides or {}).items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            values = [values]
        space[key] = list(values)
    for key, values in space.items():
        if key not in defaults:
            raise ValueError(f"{spec.name} has no setting {key!r} to search: its settings are "
                             f"{sorted(defaults)}")
        if not values:
            raise ValueError(f"{spec.name}: the search over {key!r} has no values")
        space[key] = [_coerce(spec.name, key, v, defaults[key]) for v in values]
        for v in space[key]:
            check_config(spec.name, {key: v})
    return space


def config_id(method: str, config: Mapping) -> str:
    """A short stable name for one setting of a method (``<method>.<8 hex digits>``), the
    folder name of its unlearned models in a comparison."""
    text = json.dumps(dict(config), sort_keys=True, default=str)
    return f"{method}.{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def trial_configs(method, dataset, budget: int, *, seed: int = 0,
                  search: Mapping | None = None) -> list:
    """Up to ``budget`` settings of ``method`` to try: the defaults first, then settings drawn
    without replacement from :func:`search_space` (each key's values crossed with the
    others'; the draw fixed by ``seed`` and the method's name)."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive integer (trials per method), got {budget!r}")
    spec = get_method(method)
    defaults = default_config(spec, dataset)
    space = search_space(spec, dataset, search)
    keys = sorted(space)
    grid = [dict(defaults, **dict(zip(keys, values)))
            for values in itertools.product(*(space[k] for k in keys))] if keys else []
    rng = np.random.default_rng([seed, int(hashlib.sha1(spec.name.encode()).hexdigest()[:8], 16)])
    order: Any = rng.permutation(len(grid)) if grid else []
    trials, seen = [defaults], {config_id(spec.name, defaults)}
    for i in order:
        if len(trials) >= budget:
            break
        name = config_id(spec.name, grid[i])
        if name not in seen:
            seen.add(name)
            trials.append(grid[i])
    return trials

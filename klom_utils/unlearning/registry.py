"""The registry of unlearning methods: :func:`register_method`, :func:`get_method` and the
:class:`MethodSpec` of every method (its function, defaults per dataset, what it needs)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Callable, Mapping

from ..stack import ModelStack
from .inputs import Outputs

#: Key of the defaults that apply to any dataset without its own.
ANY_DATASET = "*"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its function, its default config per dataset, whether it needs
    held-out oracles or a datamodel, whether ``fn`` takes a stack of models (``stacked``, see
    :func:`register_method`), and the values its settings may take when a comparison chooses
    them (``search``, per dataset: ``{key: [values]}``)."""

    name: str
    fn: Callable
    defaults: Mapping = field(default_factory=dict)
    needs_oracles: bool = False
    needs_datamodel: bool = False
    stacked: bool = False
    search: Mapping = field(default_factory=dict)
    check: Callable | None = None

    def __call__(self, model, data, config, *, generator):
        """The method on one model (a stacked method gets it as a stack of one)."""
        if self.stacked:
            return _on_one(self.fn, model, data, config, generator)
        return self.fn(model, data, config, generator=generator)

    def on_stack(self, models, data, config, *, generators):
        """The method on a :class:`~klom_utils.stack.ModelStack` (``stacked`` methods only):
        a stack of the unlearned models, or an :class:`Outputs` of logits ``(M, n, C)``."""
        if not self.stacked:
            raise ValueError(f"method {self.name!r} works one model at a time (registered "
                             "without stacked=True)")
        if len(generators) != models.m:
            raise ValueError(f"{len(generators)} generators for a stack of {models.m} models")
        return self.fn(models, data, config, generators=list(generators))


def _on_one(fn, model, data, config, generator):
    """A stacked method's ``fn`` applied to one nn.Module: as a stack of one."""
    out = fn(ModelStack.of([model]), data, config, generators=[generator])
    if isinstance(out, Outputs):
        return Outputs(train_logits=out.train_logits[0], val_logits=out.val_logits[0])
    return out.models()[0]


def _stacked_entry(fn):
    """What ``register_method(..., stacked=True)`` returns: ``fn`` callable both ways, on a
    stack (``generators=``) as written, or on one model (``generator=``) as a stack of one."""
    @functools.wraps(fn)
    def method(models, data, config, *, generator=None, generators=None):
        if isinstance(models, ModelStack):
            if generators is None:
                raise ValueError(f"{fn.__name__}: a stack of models needs generators=[...], "
                                 "one per model")
            return fn(models, data, config, generators=list(generators))
        return _on_one(fn, models, data, config, generator)

    return method


#: name -> :class:`MethodSpec` of every registered method.
METHODS: dict = {}


def check_name(name) -> str:
    """``name`` if it can name a method (and a store folder); else a ValueError."""
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
                    search=None, check=None, replace: bool = False):
    """Decorator registering ``fn(model, data, config, *, generator) -> model`` as ``name``.

    ``defaults``: ``{dataset: {key: value}}`` (dataset store names such as ``"DIGITS"``, and
    ``"*"`` for any other), or one flat ``{key: value}`` for every dataset. The defaults fix
    which keys exist and their types (see :func:`resolve_config`). ``needs_oracles``: the
    method gets the mean logits of held-out oracles; ``needs_datamodel``: it gets the
    datamodel's predicted shift (:class:`UnlearnData`). A method may return an
    :class:`Outputs` (logits) instead of a model.

    ``stacked=True`` opts in to stacks: ``fn(models, data, config, *, generators)`` then gets
    a :class:`~klom_utils.stack.ModelStack` of M models (``models(x)`` maps inputs
    ``(M, B, ...)``, one batch per model, to logits ``(M, B, C)``) and M generators, one per
    model, and returns a stack of the unlearned models (leaving ``models`` unchanged) or an
    :class:`Outputs` with logits ``(M, n, C)``. Keep every model's math its own (a loss per
    model, summed before ``backward``; random draws from its own generator) and a model
    unlearned in a stack equals the same model unlearned alone. :func:`unlearn_store` then
    unlearns many models at once; the decorated function stays callable on one model
    (``generator=``), as a stack of one. Without ``stacked``, a method gets one model at a time.

    ``search``: the values each setting may take when ``klom compare`` chooses settings
    (:func:`klom_utils.unlearning.configs.search_space`), in the form of ``defaults`` with a
    list of values per key (``{"DIGITS": {"lr": [0.01, 0.05]}}`` or ``{"lr": [...]}``); keys
    must be keys of the defaults. None: the defaults are the only candidate. ``check``:
    ``check(config, state_dict)`` raising ValueError for a config that cannot work on a model
    (for example more layers than it has), run before anything is written.
    """
    check_name(name)
    per_dataset = _per_dataset(defaults)

    def decorator(fn):
        if not callable(fn):
            raise ValueError(f"register_method({name!r}) needs a function, got {fn!r}")
        if name in METHODS and not replace:
            raise ValueError(f"a method named {name!r} is already registered "
                             "(pass replace=True to replace it)")
        METHODS[name] = MethodSpec(name, fn, per_dataset, bool(needs_oracles),
                                   bool(needs_datamodel), bool(stacked),
                                   _per_dataset(search), check)
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
        return MethodSpec(check_name(getattr(method, "__name__", "")), method, {ANY_DATASET: {}})
    raise ValueError(f"method must be a name or a function, got {type(method).__name__}")

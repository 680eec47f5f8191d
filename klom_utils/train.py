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
autocast, on every device: the same precision as :func:`klom_utils.unlearn.predict_logits`
uses for unlearned models, so originals, oracles and unlearned models are measured alike.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

#: Architectures trained with bf16 autocast and channels-last on CUDA.
CONV_ARCHS = ("resnet9", "resnet18")
#: Fields of a config that do not change the trained models (not compared on resumption).
_RUNTIME_FIELDS = ("stack", "eval_batch_size", "threads")
CONFIG_FILE = "klom_train.json"


@dataclass(frozen=True)
class TrainConfig:
    """How models are trained.

    The learning rate rises linearly from 0 to ``lr`` at ``peak_epoch`` and falls back to 0 at
    ``epochs``, stepped every iteration. ``stack`` is how many models train at once (one forward
    for all); ``"auto"`` measures the choices on CUDA and takes the fastest. ``augment``: random
    horizontal flips and translations of each training batch (:func:`augment_batch`), drawn
    from each model's own generator; such models go to ``<D>_augmented`` folders
    (:func:`recipe_name`).
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
        from .models import ARCHS

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
#: 100 models at once on two CPU threads: 1.5-1.8x faster than one on a 2-core machine at low
#: load (2,000 subset models: 33-39 s against 58 s), with bit-identical models (tested); more
#: threads only wait on each other for ops this small.
DEFAULT_CONFIGS = {
    "DIGITS": TrainConfig(arch="digits_mlp", epochs=20, batch_size=64, lr=0.1, peak_epoch=4,
                          momentum=0.9, nesterov=True, weight_decay=5e-4, equal_steps=True,
                          hidden=64, stack=100, threads=2),
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
    from .data import dataset_name

    return replace(DEFAULT_CONFIGS[dataset_name(dataset)], **overrides).checked()


# ------------------------------------------------------------------------------------ helpers

def model_seed(dataset: str, group: str, model_id: int, purpose: str, base: int = 0) -> int:
    """A 63-bit seed from the model's identity (stable across runs, machines and versions)."""
    text = f"klom/{base}/{dataset}/{group}/{int(model_id)}/{purpose}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & (2**63 - 1)


def group_name(forget_set) -> str:
    """``"full"`` for full models, ``"forget_set_<k>"`` for the oracles of forget set k."""
    return "full" if forget_set is None else f"forget_set_{int(forget_set)}"


def parse_model_range(text: str) -> range:
    """``"0-99"`` (inclusive, as in job arrays) or ``"7"`` -> a range of model ids."""
    text = str(text).strip()
    try:
        if "-" in text:
            lo, hi = (int(p) for p in text.split("-", 1))
        else:
            lo = hi = int(text)
    except ValueError:
        raise ValueError(f"model range {text!r}: expected 'I-J' (inclusive) or 'I'") from None
    if lo < 0 or hi < lo:
        raise ValueError(f"model range {text!r}: expected 0 <= I <= J")
    return range(lo, hi + 1)


def resolve_device(device: str = "auto"):
    """``"auto"`` -> cuda when available, else cpu; ``"cuda"`` without a GPU is an error."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available: "
                         "use 'cpu' or 'auto'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} "
                         f"CUDA devices (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return dev


def recipe_name(dataset: str, config: TrainConfig) -> str:
    """The name a recipe's folders carry: ``"<D>_augmented"`` for augmented training (as the
    Hub's ``full_models/CIFAR10_augmented``), else the dataset's store name."""
    return f"{dataset}_augmented" if config.augment else dataset


def augment_generators(order_seeds) -> list:
    """One CPU generator per model for its augmentations, seeded from its order seed (so from
    the model's identity alone: the same draws whatever else trains in its stack)."""
    import torch

    return [torch.Generator().manual_seed(int.from_bytes(
        hashlib.sha256(f"{int(s)}/augment".encode()).digest()[:8], "little") & (2**63 - 1))
        for s in order_seeds]


def augment_batch(x, generators, fill):
    """Random horizontal flips (probability 1/2) and translations of a batch per model.

    ``x``: normalised inputs (M, B, C, H, W) on any device; ``generators``: M CPU generators
    (model m's draws come from ``generators[m]`` only); ``fill``: the value of the pixels
    shifted in, (1, C, 1, 1) (the normalised black). Translations are uniform in
    ``[-t, t]`` pixels per axis, ``t = max(1, H // 16)`` (2 on 32x32 CIFAR-10, 1 on 8x8
    DIGITS). Every output pixel is an input pixel or ``fill``, exactly.
    """
    import torch

    m, b, c, h, w = x.shape
    t = max(1, h // 16)
    draws = [(torch.rand(b, generator=g) < 0.5, torch.randint(-t, t + 1, (b, 2), generator=g))
             for g in generators]
    flip = torch.cat([d[0] for d in draws]).to(x.device)
    shift = torch.cat([d[1] for d in draws]).to(x.device)
    n = m * b
    padded = fill.to(x).expand(n, c, h + 2 * t, w + 2 * t).clone()
    padded[:, :, t:t + h, t:t + w] = x.reshape(n, c, h, w)
    rows = t + shift[:, :1] + torch.arange(h, device=x.device)  # (n, h)
    cols = t + shift[:, 1:] + torch.arange(w, device=x.device)  # (n, w); flipped: mirrored
    cols = torch.where(flip.view(-1, 1), w + 2 * t - 1 - cols, cols)
    out = padded.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, w + 2 * t))
    out = out.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))
    return out.reshape(m, b, c, h, w)


def _fill(dataset, device):
    """The normalised value of a black pixel, (1, C, 1, 1)."""
    import torch

    black = torch.zeros(1, dataset.train_x.shape[1], 1, 1, dtype=torch.uint8)
    return dataset.normalize(black, device=device)


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


# ------------------------------------------------------------------------- stacked architectures

class ModelStack:
    """M models as one module: one forward for all, each model its own parameters.

    DIGITS MLPs (:class:`~klom_utils.models.StackedMLP`) and ResNet-9s (grouped convolutions,
    :class:`~klom_utils.models.StackedResNet9`; a stack of one is a plain ResNet-9) stack;
    a single model of any other kind is wrapped as a stack of one (``arch`` None). Every
    stacked tensor holds the models one after the other along dim 0, so per-model math (an
    optimiser's update, a per-model loss) never mixes models. Training and stacked unlearning
    (:mod:`klom_utils.unlearn`) both use it.

    ``stack(x)`` with x ``(M, B, ...)`` (a batch per model) gives logits ``(M, B, C)``.
    """

    def __init__(self, module, arch, m: int, device="cpu"):
        import torch

        self.module, self.arch, self.m = module, arch, int(m)
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.module.to(self.device)
        if self.cuda and arch in CONV_ARCHS:
            self.module.to(memory_format=torch.channels_last)

    @classmethod
    def from_state_dicts(cls, arch: str, state_dicts: list, device="cpu") -> "ModelStack":
        """A stack of ``arch`` (``"digits_mlp"`` or ``"resnet9"``; ``"resnet18"``: one model)
        models loaded from single-model state dicts (without prefixes); sizes are read from
        the state dicts."""
        from . import models

        m = len(state_dicts)
        if m < 1:
            raise ValueError("a stack needs at least one model, got none")
        stacked = models.stack_state_dicts(state_dicts)
        if arch == "digits_mlp":
            hidden, d_in = state_dicts[0]["1.weight"].shape
            module = models.StackedMLP(m, hidden=hidden, d_in=d_in,
                                       num_classes=state_dicts[0]["3.weight"].shape[0])
            module.load_stacked_state_dict(stacked)
        elif arch == "resnet9":
            classes = state_dicts[0]["9.weight"].shape[0]
            module = models.ResNet9(classes) if m == 1 else models.StackedResNet9(m, classes)
            module.load_state_dict(stacked)
        elif arch == "resnet18" and m == 1:
            module = models.ResNet18(state_dicts[0]["fc.weight"].shape[0])
            module.load_state_dict(stacked)
        elif arch == "resnet18":
            raise ValueError(f"ResNet-18s train one at a time: a stack of {m} was asked "
                             "(use stack=1)")
        else:
            raise ValueError(f"cannot stack arch {arch!r}: expected one of {models.ARCHS}")
        return cls(module, arch, m, device)

    @staticmethod
    def arch_of(models_) -> str | None:
        """The arch shared by ``models_`` if they can be stacked (same class and shapes:
        DigitsMLP or ResNet9), else None."""
        from . import models

        kinds = {type(m) for m in models_}
        arch = {models.DigitsMLP: "digits_mlp", models.ResNet9: "resnet9"}.get(
            kinds.pop() if len(kinds) == 1 else None)
        if arch is None:
            return None
        shapes = {tuple((k, tuple(v.shape)) for k, v in m.state_dict().items()) for m in models_}
        return arch if len(shapes) == 1 else None

    @classmethod
    def of(cls, models_, device=None) -> "ModelStack":
        """A stack of nn.Modules: DigitsMLPs or ResNet-9s of one shape (copied into the
        stack), or one module of any kind (wrapped, not copied). ``device``: default the
        first model's."""
        import torch

        models_ = list(models_)
        if not models_:
            raise ValueError("a stack needs at least one model, got none")
        if device is None:
            first = next(models_[0].parameters(), None)
            device = first.device if first is not None else torch.device("cpu")
        arch = cls.arch_of(models_)
        if arch is not None:
            return cls.from_state_dicts(arch, [m.state_dict() for m in models_], device)
        if len(models_) == 1:
            return cls(models_[0], None, 1, device)
        raise ValueError(f"cannot stack {len(models_)} models of types "
                         f"{sorted({type(m).__name__ for m in models_})}: a stack of several "
                         "holds DigitsMLPs or ResNet9s of one shape")

    def copy(self) -> "ModelStack":
        """A deep copy (the parameters too)."""
        import copy

        new = copy.copy(self)
        new.module = copy.deepcopy(self.module)
        return new

    def parameters(self):
        return self.module.parameters()

    def train(self, mode: bool = True) -> "ModelStack":
        self.module.train(mode)
        return self

    def eval(self) -> "ModelStack":
        return self.train(False)

    @property
    def training(self) -> bool:
        return self.module.training

    def requires_grad_(self, flag: bool = True) -> "ModelStack":
        self.module.requires_grad_(flag)
        return self

    def autocast(self):
        """The context of training steps: bf16 autocast for the ResNet-9 on CUDA, else none."""
        import contextlib

        import torch

        if self.cuda and self.arch in CONV_ARCHS:  # tiny MLPs gain nothing from bf16
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def no_autocast(self):
        """The context of evaluation: autocast off (even inside a caller's autocast block)."""
        import torch

        return torch.autocast(device_type=self.device.type, enabled=False)

    def _layout(self, x):
        import torch

        if self.cuda and self.arch in CONV_ARCHS:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, x, autocast: bool = True):
        """x: (M, B, ...) one batch per model -> logits (M, B, C) float32.

        ``autocast=False``: plain float32 (what evaluation uses); else under :meth:`autocast`.
        """
        m, b = x.shape[:2]
        if m != self.m:
            raise ValueError(f"input holds batches for {m} models, the stack has {self.m}")
        with self.autocast() if autocast else self.no_autocast():
            if self.arch == "digits_mlp":
                out = self.module(x.reshape(m, b, -1))
            elif m == 1:
                out = self.module(self._layout(x[0])).unsqueeze(0)
            else:  # channels of model j are 3j .. 3j+2
                x = x.transpose(0, 1).reshape(b, m * x.shape[2], *x.shape[3:])
                out = self.module(self._layout(x)).transpose(0, 1)
        return out.float()

    __call__ = forward

    def forward_shared(self, x, autocast: bool = True):
        """x: (B, ...) the same batch for every model -> logits (M, B, C) float32.

        ``autocast`` as in :meth:`forward`."""
        if self.arch == "digits_mlp" or self.m == 1:
            with self.autocast() if autocast else self.no_autocast():
                if self.arch == "digits_mlp":
                    return self.module(x.reshape(x.shape[0], -1)).float()
                return self.module(self._layout(x)).unsqueeze(0).float()
        return self.forward(x.unsqueeze(0).expand(self.m, *x.shape), autocast=autocast)

    def state_dicts(self, prefix: str = "") -> list:
        """M single-model state dicts (cloned, on CPU); keys get ``prefix``."""
        from . import models

        sd = (self.module.stacked_state_dict() if self.arch == "digits_mlp"
              else self.module.state_dict())
        return models.unstack_state_dict(sd, self.m, prefix=prefix)

    def models(self) -> list:
        """The M models as single nn.Modules on the stack's device, in eval mode (a wrapped
        module is returned itself)."""
        from .models import load_model

        if self.arch is None:
            return [self.module.eval()]
        return [load_model(sd, arch=self.arch, device=self.device) for sd in self.state_dicts()]


def init_state_dict(arch: str, seed: int, num_classes: int = 10, hidden: int = 64) -> dict:
    """The initial weights of one model, from ``seed`` alone (built on CPU)."""
    import torch

    from .models import build_model

    kwargs = {"num_classes": num_classes}
    if arch == "digits_mlp":
        kwargs["hidden"] = hidden
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(arch, **kwargs).state_dict()


# ---------------------------------------------------------------------------------- the core loop

def optimizer(name: str, params, lr: float = 0.0, **options):
    """torch's ``"sgd"`` or ``"adam"`` over ``params`` (those with ``requires_grad``), in the
    fastest implementation that keeps each model of a stack independent of the others.

    On CUDA: ``fused=True``. Elsewhere ``foreach=True``: the CPU's fused kernels update a
    tensor's last few elements (past a multiple of the vector width) with other rounding than
    the rest, so a model's update would depend on its place in the stack (measured with torch
    2.13: stacks of 3 against 1 differ in the last bits for SGD with momentum and for Adam);
    foreach does not (tests/test_train.py checks it). ``options``: the optimiser's
    (``momentum``, ``nesterov``, ``weight_decay``, ...).
    """
    import torch

    classes = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}
    if name not in classes:
        raise ValueError(f"unknown optimiser {name!r}: expected one of {sorted(classes)}")
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no parameters with requires_grad to optimise")
    fused = all(p.device.type == "cuda" and p.is_floating_point() for p in params)
    return classes[name](params, lr=lr, **options,
                         **({"fused": True} if fused else {"foreach": True}))


def set_lr(opt, lr: float) -> None:
    """Set the learning rate of every parameter group of ``opt``."""
    for group in opt.param_groups:
        group["lr"] = lr


class device_settings:
    """Inside the block: ``threads`` torch CPU threads on the CPU (None: torch's setting),
    cuDNN autotuning on CUDA (fixed shapes: let cuDNN pick the fastest convolutions). Used
    while training and unlearning."""

    def __init__(self, threads, device):
        import torch

        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        device = torch.device(device)
        self.n = threads if device.type == "cpu" else None
        self.cuda = device.type == "cuda"

    def __enter__(self):
        import torch

        self.old = torch.get_num_threads(), torch.backends.cudnn.benchmark
        if self.n:
            torch.set_num_threads(self.n)
        if self.cuda:
            torch.backends.cudnn.benchmark = True

    def __exit__(self, *exc):
        import torch

        torch.set_num_threads(self.old[0])
        torch.backends.cudnn.benchmark = self.old[1]


def fit(dataset, train_indices, init_state_dicts, order_seeds, config: TrainConfig, device="cpu",
        progress: bool = True, desc: str = "training"):
    """Train M models at once from ``init_state_dicts`` on ``train_indices``: one 1-D array
    shared by every model, or ``(M, k)``, each model its own ``k`` examples.

    Model m draws its data order from ``order_seeds[m]``. Returns ``(state_dicts, train_logits,
    val_logits)``: M single-model state dicts (CPU) and logits (M, n, C) on CPU in eval mode,
    float32 without autocast (see :func:`predict`).
    """
    import torch

    device = torch.device(device)
    m = len(init_state_dicts)
    if len(order_seeds) != m:
        raise ValueError(f"{len(order_seeds)} order seeds for {m} models")
    with device_settings(config.threads, device):
        return _fit(dataset, train_indices, init_state_dicts, order_seeds, config, device,
                    progress, desc)


def _fit(dataset, train_indices, init_state_dicts, order_seeds, config, device, progress, desc):
    import torch
    from tqdm.auto import tqdm

    m = len(init_state_dicts)
    x_all = dataset.normalize(dataset.train_x, device=device)
    y_all = dataset.train_y.to(device)
    idx = torch.as_tensor(np.asarray(train_indices), dtype=torch.long)
    if idx.ndim == 2 and idx.shape[0] != m:
        raise ValueError(f"{idx.shape[0]} rows of train indices for {m} models")
    per_model = idx.ndim == 2  # each model its own examples (datamodels), else shared
    n = int(idx.shape[-1])
    bounds = batch_bounds(n, dataset.n_train, config)
    per_epoch = len(bounds)
    total = per_epoch * config.epochs
    stack = ModelStack.from_state_dicts(config.arch, init_state_dicts, device)
    opt = _sgd(stack, config)
    gens = [torch.Generator().manual_seed(int(s)) for s in order_seeds]
    augment = (augment_generators(order_seeds), _fill(dataset, device)) if config.augment else None
    stack.module.train()
    bar = tqdm(total=total, desc=desc, disable=not progress, leave=False)
    step = 0
    for _ in range(config.epochs):
        order = torch.stack([(idx[j] if per_model else idx)[torch.randperm(n, generator=g)]
                             for j, g in enumerate(gens)]).to(device)
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


def per_model_cross_entropy(out, y, label_smoothing: float = 0.0):
    """Mean cross-entropy per model: logits (..., B, C) and labels (..., B) -> (...,).

    Per-row math and a mean over each model's rows: a model's loss (and gradient) does not
    depend on the other models of its stack.
    """
    import torch.nn.functional as F

    if not label_smoothing:
        # log-softmax over 10 classes is slow on CPU as one op; this is 3x faster, same value
        z = out - out.detach().amax(-1, keepdim=True)
        lse = z.exp().sum(-1).log()
        return (lse - z.gather(-1, y.unsqueeze(-1)).squeeze(-1)).mean(-1)
    loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction="none",
                           label_smoothing=label_smoothing)
    return loss.view(y.shape).mean(-1)


def predict(stack: ModelStack, x, batch_size: int = 1024):
    """Logits (M, n, C) of the stacked models on normalised inputs, eval mode, on CPU.

    Evaluated in float32 without autocast on every device (training steps may use bf16
    autocast, evaluation never does), as :func:`klom_utils.unlearn.predict_logits` evaluates
    unlearned models: every model's margins are computed the same way.
    """
    import torch

    stack.module.eval()
    with torch.no_grad():
        out = [stack.forward_shared(x[i:i + batch_size], autocast=False).cpu()
               for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out, dim=1)


def fit_reference(dataset, train_indices, init_state_dict, order_seed, config: TrainConfig):
    """One model, the plain way (``nn.Module`` + ``torch.optim.SGD``, CPU, float32).

    The baseline of the benchmark and the check that :func:`fit` trains the same model.
    Returns ``(state_dict, train_logits, val_logits)``.
    """
    with device_settings(config.threads, "cpu"):
        return _fit_reference(dataset, train_indices, init_state_dict, order_seed, config)


def _fit_reference(dataset, train_indices, init_state_dict, order_seed, config):
    import torch
    import torch.nn.functional as F

    from .models import load_model

    model = load_model(init_state_dict, arch=config.arch).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=config.momentum,
                          nesterov=config.nesterov, weight_decay=config.weight_decay)
    x_all = dataset.normalize(dataset.train_x)
    idx = torch.as_tensor(np.asarray(train_indices), dtype=torch.long)
    n = idx.numel()
    bounds = batch_bounds(n, dataset.n_train, config)
    per_epoch = len(bounds)
    gen = torch.Generator().manual_seed(int(order_seed))
    augment = (augment_generators([order_seed]), _fill(dataset, "cpu")) if config.augment else None
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
    import time

    import torch
    import torch.nn.functional as F

    if config.stack != "auto":
        return max(1, min(int(config.stack), n_models))
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
    diff = store.record_or_compare(f"{folder}/{CONFIG_FILE}", record)
    if diff:
        raise ValueError(f"{folder} was trained with another config ({', '.join(diff)}); "
                         "use another store or the same config")


def _resolve_dataset(dataset, root):
    from .data import TensorDataset, load_dataset

    return dataset if isinstance(dataset, TensorDataset) else load_dataset(dataset, root=root)


def ensure_digits_forget_sets(store, dataset) -> None:
    """Write the DIGITS forget sets the store lacks, once: under a lock, so that job-array
    tasks starting together neither write them twice nor read a half-written set."""
    from filelock import FileLock

    from .data import digits_forget_sets, write_digits_forget_sets

    wanted = set(digits_forget_sets(dataset))
    if wanted <= set(store.forget_set_ids("DIGITS")):
        return
    lock = store.root / ".claims" / "forget_set_indices_DIGITS.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock), timeout=120):
        write_digits_forget_sets(store, dataset)  # only the missing ones, each atomically


def forget_indices(store, dataset, k: int) -> np.ndarray:
    """Forget set ``k`` of ``dataset`` from the store, checked against the train split.

    DIGITS forget sets are written into the store first if it has none.
    """
    from .data import check_forget_indices

    if dataset.name == "DIGITS":
        ensure_digits_forget_sets(store, dataset)
    try:
        indices = store.forget_set(dataset.name, k)
    except FileNotFoundError as err:
        hint = (f"; download them with klom_utils.download('forget_set_indices/{dataset.name}', "
                "local_dir=<the store>)" if dataset.name in ("CIFAR10", "LIVING17") else "")
        raise FileNotFoundError(f"{err}{hint}") from None
    try:
        return check_forget_indices(indices, dataset.n_train)
    except ValueError as err:
        raise ValueError(f"forget set {k} of {dataset.name}: {err}") from None


def train_models(dataset, store, model_ids, *, forget_set=None, device="auto", config=None,
                 progress: bool | None = True, root=None) -> list:
    """Train the models ``model_ids`` of a group into ``store``; returns the ids this call
    trained (not those already there, nor those another process was training: each model is
    claimed first, see :func:`klom_utils.launch.claimed`, so concurrent runs never train one
    model twice). ``progress``: bars, ``False`` nothing, ``None`` bars on a terminal and plain
    lines in logs.

    ``dataset``: ``"digits"``/``"cifar10"`` or a :class:`~klom_utils.data.TensorDataset`.
    ``store``: a path or a :class:`~klom_utils.store.Store`. ``forget_set=None`` trains full
    models (``full_models/<D>``); ``forget_set=k`` trains oracles without forget set k
    (``oracles/<D>/forget_set_<k>``). Ids already complete in the store are skipped.
    ``config``: a :class:`TrainConfig` (default: :func:`default_config`).
    """
    import torch

    from .data import retain_mask
    from .launch import claimed_chunks
    from .progress import progress_bar
    from .store import Store, full_models_folder, open_store, oracle_folder

    dev = resolve_device(device)
    ids = sorted({int(i) for i in model_ids})
    if any(i < 0 for i in ids):
        raise ValueError(f"model ids must be non-negative, got {ids[0]}")
    data = _resolve_dataset(dataset, root)
    config = (config or default_config(data.name)).checked()
    if forget_set is not None and data.name == "DIGITS":
        from .data import digits_forget_sets

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
        folder = full_models_folder(recipe_name(data.name, config))
        train_idx = np.arange(data.n_train)
        if data.name == "DIGITS":
            ensure_digits_forget_sets(store, data)
    else:
        folder = oracle_folder(recipe_name(data.name, config), forget_set)
        forget = forget_indices(store, data, forget_set)
        train_idx = np.flatnonzero(retain_mask(data.n_train, forget))
    _check_writable(store.path(folder))
    record = {"dataset": data.name, "group": group_name(forget_set),
              "n_train_examples": int(len(train_idx)), **config.recorded()}
    _record_config(store, folder, record)

    todo = [i for i in ids if not (store.path(folder).is_dir() and store.has_model(folder, i))]
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
    for chunk, covered in claimed_chunks(store, folder, todo, stack_size,
                                         lambda i: store.has_model(folder, i)):
        if chunk:
            _train_chunk(store, folder, chunk, data, data_dev, train_idx, group, config,
                         dev, progress)
            trained += chunk
        outer.update(covered)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    outer.close()
    return trained


def _train_chunk(store, folder, chunk, data, data_dev, train_idx, group, config, dev,
                 progress) -> None:
    """Train the models ``chunk`` at once and write them to ``folder``."""
    from .models import SAVE_PREFIX

    inits = [init_state_dict(config.arch, model_seed(data.name, group, i, "init", config.seed),
                             data.num_classes, config.hidden) for i in chunk]
    orders = [model_seed(data.name, group, i, "order", config.seed) for i in chunk]
    desc = f"{folder} {_ids_text(chunk)}"
    sds, train_logits, val_logits = fit(data_dev, train_idx, inits, orders, config, dev,
                                        progress=bool(progress), desc=desc)
    train_y, val_y = data.train_y.numpy(), data.val_y.numpy()
    for j, model_id in enumerate(chunk):
        sd = {SAVE_PREFIX + k: v for k, v in sds[j].items()}
        store.write_model(folder, model_id, train_logits=train_logits[j],
                          val_logits=val_logits[j], train_labels=train_y, val_labels=val_y,
                          state_dict=sd, epoch=config.epochs - 1)


def _ids_text(ids) -> str:
    return f"model {ids[0]}" if len(ids) == 1 else f"models {ids[0]}..{ids[-1]} ({len(ids)} at once)"

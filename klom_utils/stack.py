"""Stacks of many models: M models as one module, one forward for all, each model its own
parameters; with the optimiser, loss and prediction that keep every model of a stack
independent of the others (training and stacked unlearning both use them).
"""

from __future__ import annotations

import contextlib
import copy

import torch
import torch.nn.functional as F

from . import models

#: Architectures trained with bf16 autocast and channels-last on CUDA.
CONV_ARCHS = ("resnet9", "resnet18")


class ModelStack:
    """M models as one module: one forward for all, each model its own parameters.

    DIGITS MLPs (:class:`~klom_utils.models.StackedMLP`) and ResNet-9s (grouped convolutions,
    :class:`~klom_utils.models.StackedResNet9`; a stack of one is a plain ResNet-9) stack;
    a single model of any other kind is wrapped as a stack of one (``arch`` None). Every
    stacked tensor holds the models one after the other along dim 0, so per-model math (an
    optimiser's update, a per-model loss) never mixes models. Training and stacked unlearning
    (:mod:`klom_utils.unlearning`) both use it.

    ``stack(x)`` with x ``(M, B, ...)`` (a batch per model) gives logits ``(M, B, C)``.
    """

    def __init__(self, module, arch, m: int, device="cpu"):
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
        m = len(state_dicts)
        if m < 1:
            raise ValueError("a stack needs at least one model, got none")
        stacked = models.stack_state_dicts(state_dicts)
        module: torch.nn.Module
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

    @classmethod
    def from_checkpoints(cls, state_dicts: list, device="cpu") -> "ModelStack":
        """A stack of the models of checkpoints (state dicts as saved: prefixes allowed), with
        the checks of :func:`~klom_utils.models.load_model` (the first is loaded by it; the
        others must have its keys and shapes), without building a module per model. The
        same stack as ``ModelStack.of([load_model(sd, arch="auto") ...])``."""
        sds = [models.strip_prefixes(dict(models.unwrap_checkpoint(sd))) for sd in state_dicts]
        if not sds:
            raise ValueError("a stack needs at least one model, got none")
        first = models.load_model(sds[0], arch="auto")  # CheckpointError if it does not fit
        arch = cls.arch_of([first])
        if arch is None or len(sds) == 1:
            return cls.of([first], device)
        shapes = {k: tuple(v.shape) for k, v in sds[0].items()}
        for i, sd in enumerate(sds[1:], 1):
            if {k: tuple(v.shape) for k, v in sd.items()} != shapes:
                raise models.CheckpointError(f"checkpoint {i} of the stack has other keys or "
                                             "shapes than the first: models of one stack must "
                                             "share one architecture")
        expected = first.state_dict()
        return cls.from_state_dicts(arch, [{k: v.to(expected[k].dtype) for k, v in sd.items()}
                                           for sd in sds], device)

    @staticmethod
    def arch_of(models_) -> str | None:
        """The arch shared by ``models_`` if they can be stacked (same class and shapes:
        DigitsMLP or ResNet9), else None."""
        kinds = {type(m) for m in models_}
        if len(kinds) != 1:
            return None
        arch = {models.DigitsMLP: "digits_mlp", models.ResNet9: "resnet9"}.get(kinds.pop())
        if arch is None:
            return None
        shapes = {tuple((k, tuple(v.shape)) for k, v in m.state_dict().items()) for m in models_}
        return arch if len(shapes) == 1 else None

    @classmethod
    def of(cls, models_, device=None) -> "ModelStack":
        """A stack of nn.Modules: DigitsMLPs or ResNet-9s of one shape (copied into the
        stack), or one module of any kind (wrapped, not copied). ``device``: default the
        first model's."""
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
        new = copy.copy(self)
        new.module = copy.deepcopy(self.module)
        return new

    def block_of(self, name: str) -> str:
        """The block of a parameter of the stacked module: the first component of its key in
        a single model's state dict (:func:`blocks_of`)."""
        if self.arch == "digits_mlp":
            return models.StackedMLP.KEYS[name].split(".")[0]
        return name.split(".")[0]

    def train_only(self, blocks) -> "ModelStack":
        """Gradients for the parameters of ``blocks`` only; the other top-level layers are
        frozen and in eval mode (their batch-norm statistics stay as they are)."""
        keep = set(blocks)
        for name, p in self.module.named_parameters():
            p.requires_grad_(self.block_of(name) in keep)
        self.module.train()
        if self.arch != "digits_mlp":
            for name, child in self.module.named_children():
                if name not in keep:
                    child.eval()
        return self

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
        if self.cuda and self.arch in CONV_ARCHS:  # tiny MLPs gain nothing from bf16
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def no_autocast(self):
        """The context of evaluation: autocast off (even inside a caller's autocast block)."""
        return torch.autocast(device_type=self.device.type, enabled=False)

    def _layout(self, x):
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
        sd = (self.module.stacked_state_dict() if self.arch == "digits_mlp"
              else self.module.state_dict())
        return models.unstack_state_dict(sd, self.m, prefix=prefix)

    def models(self) -> list:
        """The M models as single nn.Modules on the stack's device, in eval mode (a wrapped
        module is returned itself)."""
        if self.arch is None:
            return [self.module.eval()]
        return [models.load_model(sd, arch=self.arch, device=self.device) for sd in self.state_dicts()]


def blocks_of(state_dict) -> list:
    """The blocks of a model, first to last: the first components of its state-dict keys
    (``["1", "3"]`` for the DIGITS MLP, the seven layers with weights of the ResNet-9,
    ``conv1`` ... ``fc`` of the ResNet-18); checkpoint prefixes such as ``model.`` ignored."""
    return list(dict.fromkeys(k.split(".")[0] for k in models.strip_prefixes(dict(state_dict))))


def init_state_dict(arch: str, seed: int, num_classes: int = 10, hidden: int = 64) -> dict:
    """The initial weights of one model, from ``seed`` alone (built on CPU)."""
    kwargs = {"num_classes": num_classes}
    if arch == "digits_mlp":
        kwargs["hidden"] = hidden
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return models.build_model(arch, **kwargs).state_dict()


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


def per_model_cross_entropy(out, y, label_smoothing: float = 0.0):
    """Mean cross-entropy per model: logits (..., B, C) and labels (..., B) -> (...,).

    Per-row math and a mean over each model's rows: a model's loss (and gradient) does not
    depend on the other models of its stack.
    """
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
    autocast, evaluation never does), as :func:`predict_logits` evaluates
    unlearned models: every model's margins are computed the same way.
    """
    stack.module.eval()
    with torch.no_grad():
        out = [stack.forward_shared(x[i:i + batch_size], autocast=False).cpu()
               for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out, dim=1)


def predict_logits(model, x, batch_size: int = 1024):
    """Logits of ``model`` on inputs ``x`` in eval mode, float32 on CPU.

    Evaluated without autocast (even inside a caller's autocast block), as
    :func:`predict` evaluates the originals and oracles: every model's
    margins are computed the same way.
    """
    model.eval()
    with torch.no_grad(), torch.autocast(device_type=x.device.type, enabled=False):
        return torch.cat([model(x[i:i + batch_size]).float().cpu()
                          for i in range(0, x.shape[0], batch_size)])

"""Models: ResNet-9 (loads the ``royrin/KLOM-models`` CIFAR-10 checkpoints), ResNet-18 (loads
their LIVING-17 checkpoints: torchvision's ``resnet18`` with a 17-class ``fc``, without needing
torchvision), the small DIGITS model, and stacked variants that hold M models in one module (one
forward for all).

Stacked modules keep every per-model tensor concatenated along dim 0 (M * rows, ...), in the
same key layout as the single model, so :func:`unstack_state_dict` / :func:`stack_state_dicts`
convert between the two by slicing and concatenating.
"""

from __future__ import annotations

import os

import torch
from torch import nn

#: Prefixes that wrappers add to state-dict keys; stripped on loading.
KNOWN_PREFIXES = ("model.", "module.", "_orig_mod.")
#: Prefix of the checkpoints this package writes (the one the Hub's checkpoints carry).
SAVE_PREFIX = "model."

DIGITS_HIDDEN = 64


class CheckpointError(ValueError):
    """A state dict that does not fit the architecture (names the offending keys)."""


# --------------------------------------------------------------------------------- building blocks

class Mul(nn.Module):
    """Multiply by a constant (ResNet-9 scales its logits by 0.2)."""

    def __init__(self, weight: float):
        super().__init__()
        self.weight = weight

    def forward(self, x):
        return x * self.weight


class Residual(nn.Module):
    """``x + module(x)``; the wrapped module appears as ``.module.`` in state-dict keys."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return x + self.module(x)


def conv_bn(c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1, padding: int = 1,
            groups: int = 1) -> nn.Sequential:
    """Conv (no bias), BatchNorm, ReLU. With ``groups=M`` channels are M models side by side."""
    return nn.Sequential(
        nn.Conv2d(c_in * groups, c_out * groups, kernel_size, stride=stride, padding=padding,
                  groups=groups, bias=False),
        nn.BatchNorm2d(c_out * groups),
        nn.ReLU(inplace=True),
    )


class StackedLinear(nn.Module):
    """M bias-free linear maps ``in -> out``; weight (M * out, in); input (B, M * in)."""

    def __init__(self, n_models: int, d_in: int, d_out: int):
        super().__init__()
        self.n_models, self.d_in, self.d_out = n_models, d_in, d_out
        self.weight = nn.Parameter(torch.empty(n_models * d_out, d_in))

    def forward(self, x):
        x = x.view(x.shape[0], self.n_models, self.d_in)
        w = self.weight.view(self.n_models, self.d_out, self.d_in)
        return torch.einsum("bmi,moi->bmo", x, w)


# ----------------------------------------------------------------------------------- ResNet-9

def _resnet9_layers(num_classes: int, m: int) -> list:
    linear = (nn.Linear(128, num_classes, bias=False) if m == 1
              else StackedLinear(m, 128, num_classes))
    return [
        conv_bn(3, 64, 3, 1, 1, groups=m),
        conv_bn(64, 128, 5, 2, 2, groups=m),
        Residual(nn.Sequential(conv_bn(128, 128, groups=m), conv_bn(128, 128, groups=m))),
        conv_bn(128, 256, 3, 1, 1, groups=m),
        nn.MaxPool2d(2),
        Residual(nn.Sequential(conv_bn(256, 256, groups=m), conv_bn(256, 256, groups=m))),
        conv_bn(256, 128, 3, 1, 0, groups=m),
        nn.AdaptiveMaxPool2d((1, 1)),
        nn.Flatten(),
        linear,
        Mul(0.2),
    ]


class ResNet9(nn.Sequential):
    """The CIFAR-10 ResNet-9 of the KLOM models; keys match ``resnet9_state_dict.txt``
    without the ``model.`` prefix. Input: normalised (B, 3, 32, 32)."""

    def __init__(self, num_classes: int = 10):
        super().__init__(*_resnet9_layers(num_classes, 1))


class StackedResNet9(nn.Sequential):
    """M ResNet-9s as one network (grouped convolutions).

    Input (B, M * 3, H, W): model m sees channels ``3m .. 3m+2``. Output (B, M, num_classes).
    """

    def __init__(self, n_models: int, num_classes: int = 10):
        super().__init__(*_resnet9_layers(num_classes, n_models))
        self.n_models = n_models


# ---------------------------------------------------------------------------------- ResNet-18

class BasicBlock(nn.Module):
    """torchvision's ResNet ``BasicBlock``: two 3x3 conv-BN pairs and a shortcut (a strided
    1x1 conv-BN ``downsample`` where the shape changes); same attribute names, so the same
    state-dict keys."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                         nn.BatchNorm2d(c_out))
                           if stride != 1 or c_in != c_out else None)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class ResNet18(nn.Module):
    """``torchvision.models.resnet18(num_classes=...)``, rebuilt: the same layers, state-dict
    keys (``resnet18_state_dict.txt``, no prefix), forward pass and initialisation (Kaiming
    normal, fan-out, for the convolutions; BatchNorm weight 1 and bias 0; torch's default for
    ``fc``). The LIVING-17 models of ``royrin/KLOM-models`` replace ``fc`` by
    ``Linear(512, 17)``, which is ``ResNet18(num_classes=17)``. Input: normalised
    (B, 3, H, W), ImageNet-sized or smaller."""

    def __init__(self, num_classes: int = 17):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        widths = (64, 128, 256, 512)
        for i, width in enumerate(widths):
            c_in, stride = (64, 1) if i == 0 else (widths[i - 1], 2)
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(c_in, width, stride),
                                                         BasicBlock(width, width)))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ------------------------------------------------------------------------------------ DIGITS MLP

class DigitsMLP(nn.Sequential):
    """The small DIGITS model: flatten, 64 -> hidden, ReLU, hidden -> classes."""

    def __init__(self, hidden: int = DIGITS_HIDDEN, num_classes: int = 10, d_in: int = 64):
        super().__init__(nn.Flatten(), nn.Linear(d_in, hidden), nn.ReLU(),
                         nn.Linear(hidden, num_classes))


class StackedMLP(nn.Module):
    """M DigitsMLPs with parameters stacked along dim 0 (keys as in :class:`DigitsMLP` via
    :meth:`stacked_state_dict`).

    Input: (M, B, d_in), each model its own batch, or (B, d_in) shared by all.
    Output: (M, B, classes).
    """

    KEYS = {"w1": "1.weight", "b1": "1.bias", "w2": "3.weight", "b2": "3.bias"}

    def __init__(self, n_models: int, hidden: int = DIGITS_HIDDEN, num_classes: int = 10,
                 d_in: int = 64):
        super().__init__()
        self.n_models, self.hidden, self.num_classes, self.d_in = n_models, hidden, num_classes, d_in
        self.w1 = nn.Parameter(torch.empty(n_models * hidden, d_in))
        self.b1 = nn.Parameter(torch.empty(n_models * hidden))
        self.w2 = nn.Parameter(torch.empty(n_models * num_classes, hidden))
        self.b2 = nn.Parameter(torch.empty(n_models * num_classes))

    def forward(self, x):
        m, h, c = self.n_models, self.hidden, self.num_classes
        w1 = self.w1.view(m, h, self.d_in).transpose(1, 2)
        w2 = self.w2.view(m, c, h).transpose(1, 2)
        if x.dim() == 2:
            hid = torch.matmul(x, w1).add_(self.b1.view(m, 1, h)).relu_()
        else:
            hid = torch.baddbmm(self.b1.view(m, 1, h), x, w1).relu_()
        return torch.baddbmm(self.b2.view(m, 1, c), hid, w2)

    def stacked_state_dict(self) -> dict:
        """State dict in :class:`DigitsMLP` key names, tensors stacked along dim 0."""
        return {self.KEYS[name]: p.detach() for name, p in self.named_parameters()}

    def load_stacked_state_dict(self, sd: dict) -> None:
        with torch.no_grad():
            for name, key in self.KEYS.items():
                getattr(self, name).copy_(sd[key])


# --------------------------------------------------------------------------------- state dicts

def unwrap_checkpoint(obj):
    """The state dict of a checkpoint saved as ``{"state_dict": {...}, ...}``; else ``obj``."""
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        return obj["state_dict"]
    return obj


def strip_prefixes(sd: dict) -> dict:
    """``sd`` without the checkpoint prefixes of :data:`KNOWN_PREFIXES` (repeated ones too)."""
    keys = list(sd)
    changed = True
    while changed and keys:
        changed = False
        for prefix in KNOWN_PREFIXES:
            if all(k.startswith(prefix) for k in keys):
                sd = {k[len(prefix):]: v for k, v in sd.items()}
                keys = list(sd)
                changed = True
    return sd


def stack_state_dicts(state_dicts: list) -> dict:
    """One stacked state dict from M single-model ones (same keys; scalars from the first)."""
    first = state_dicts[0]
    return {k: (torch.cat([sd[k] for sd in state_dicts]) if first[k].dim() else first[k].clone())
            for k in first}


def unstack_state_dict(sd: dict, n_models: int, prefix: str = "") -> list:
    """M single-model state dicts (cloned, on CPU) from a stacked one; keys get ``prefix``."""
    out: list = [dict() for _ in range(n_models)]
    for k, v in sd.items():
        v = v.detach().cpu()
        for m in range(n_models):
            out[m][prefix + k] = (v.view(n_models, -1, *v.shape[1:])[m].clone() if v.dim()
                                  else v.clone())
    return out


ARCHS = ("resnet9", "digits_mlp", "resnet18")
#: The single-model class of each arch.
_ARCH_CLASSES = {"resnet9": ResNet9, "digits_mlp": DigitsMLP, "resnet18": ResNet18}


def build_model(arch: str, **kwargs) -> nn.Module:
    """A fresh single model of ``arch`` (``"resnet9"``, ``"digits_mlp"`` or ``"resnet18"``)."""
    if arch not in _ARCH_CLASSES:
        raise ValueError(f"unknown arch {arch!r}: expected one of {ARCHS}")
    return _ARCH_CLASSES[arch](**kwargs)


def infer_arch(sd: dict) -> str:
    """Guess the architecture of a state dict from its keys."""
    sd = strip_prefixes(dict(sd))
    if "0.0.weight" in sd:
        return "resnet9"
    if "conv1.weight" in sd and "layer1.0.conv1.weight" in sd:
        return "resnet18"
    if "1.weight" in sd and "3.weight" in sd:
        return "digits_mlp"
    raise CheckpointError(f"cannot tell the architecture from keys {sorted(sd)[:5]}...")


def load_model(path_or_state_dict, arch: str = "resnet9", device=None,
               num_classes: int | None = None) -> nn.Module:
    """A model of ``arch`` (``"resnet9"``, ``"digits_mlp"``, ``"resnet18"`` or ``"auto"``)
    loaded with ``strict=True`` from a checkpoint path or a state dict, in eval mode.

    Keys may carry the ``model.``, ``module.`` and ``_orig_mod.`` prefixes. Missing, unexpected
    or wrongly shaped entries raise :class:`CheckpointError` naming them. ``num_classes``:
    default the checkpoint's; given, a checkpoint with another number is refused (e.g.
    ``load_model(path, arch="resnet18", num_classes=17)`` for the Hub's LIVING-17 models).
    """
    if num_classes is not None and (isinstance(num_classes, bool)
                                    or not isinstance(num_classes, int) or num_classes < 1):
        raise ValueError(f"num_classes must be a positive integer or None, got {num_classes!r}")
    sd = path_or_state_dict
    if isinstance(sd, (str, os.PathLike)):
        if not os.path.isfile(sd):
            raise FileNotFoundError(f"checkpoint {str(sd)!r} does not exist")
        sd = torch.load(sd, map_location="cpu", weights_only=True)
    sd = unwrap_checkpoint(sd)
    if not isinstance(sd, dict):
        raise CheckpointError(f"expected a state dict (a dict of tensors), got {type(sd).__name__}")
    sd = strip_prefixes(dict(sd))
    if arch == "auto":
        arch = infer_arch(sd)
    if arch not in _ARCH_CLASSES:
        raise ValueError(f"unknown arch {arch!r}: expected one of {ARCHS} or 'auto'")
    head = {"digits_mlp": "3.weight", "resnet9": "9.weight", "resnet18": "fc.weight"}[arch]
    kwargs = {}
    if num_classes is not None or head in sd:
        kwargs["num_classes"] = num_classes or sd[head].shape[0]
    if arch == "digits_mlp" and "1.weight" in sd:
        kwargs["hidden"], kwargs["d_in"] = sd["1.weight"].shape
    model = build_model(arch, **kwargs)
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        raise CheckpointError(f"state dict does not fit {arch}: " + "; ".join(parts))
    wrong = [f"{k}: {tuple(sd[k].shape)} (expected {tuple(v.shape)})"
             for k, v in expected.items() if tuple(sd[k].shape) != tuple(v.shape)]
    if wrong:
        raise CheckpointError(f"state dict does not fit {arch}: wrong shapes {wrong}")
    model.load_state_dict(sd, strict=True)
    if device is not None:
        model = model.to(device)
    return model.eval()

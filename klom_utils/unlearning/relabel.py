"""Relabelling methods: random labels and SalUn.

- ``random_labels`` (Graves et al. 2021, "Amnesiac machine learning", AAAI; the "RL" baseline
  of SalUn's experiments): fine-tune on the forget set, each forget example given a label
  drawn uniformly from its wrong classes (fresh every epoch), together with the retain set
  and its true labels, in one shuffled pass per epoch, cross-entropy, SGD.
- ``salun`` (Fan et al. 2024, "SalUn: empowering machine unlearning via gradient-based weight
  saliency", ICLR): the weight-saliency mask keeps the ``fraction`` of weights (0.5, as the
  paper's default) with the largest gradient magnitude of the forget loss, over all of a
  model's weights; then the random-label fine-tuning above updates only those weights.
  Followed: the mask from the gradient of the cross-entropy on the whole forget set at the
  original weights, in eval mode (batch norm with its running statistics), one global
  threshold per model. Changed: weight decay is applied to the
  masked weights only (SalUn's code lets SGD's weight decay shrink every weight), so the
  other weights stay exactly as they were.
"""

from __future__ import annotations

import math

import torch

from ..stack import optimizer
from .registry import register_method
from .steps import (
    batch_orders,
    cross_entropy,
    for_training,
    per_model,
    random_wrong_labels,
    sgd_defaults,
    step,
    trainable,
)


def _n_classes(student, data) -> int:
    """The number of classes, from one forward of the (copied) student in eval mode."""
    student.eval()
    with torch.no_grad():
        n = int(student.forward_shared(data.forget_x[:1], autocast=False).shape[-1])
    student.train()
    return n


def _relabel_finetune(models, data, config, generators, mask=None):
    """Random-label fine-tuning on forget plus retain; with ``mask`` (one 0/1 tensor per
    parameter) only the masked weights move (weight decay on them alone)."""
    student = for_training(models)
    n_classes, m = _n_classes(student, data), student.m
    decay = config["weight_decay"]
    opt = optimizer("sgd", student.parameters(), lr=config["lr"], momentum=config["momentum"],
                    weight_decay=0.0 if mask is not None else decay)
    params = trainable(opt)

    def masked() -> None:
        for p, keep in zip(params, mask):
            if p.grad is not None:
                p.grad.add_(p.detach(), alpha=decay).mul_(keep)

    pool_x = torch.cat([data.forget_x, data.retain_x])
    n_f, n_r = data.forget_y.shape[0], data.retain_y.shape[0]
    for _ in range(config["epochs"]):
        labels = torch.cat([random_wrong_labels(data.forget_y, n_classes, generators),
                            data.retain_y.expand(m, n_r)], dim=1)
        for idx in batch_orders(n_f + n_r, config["batch_size"], generators, data.device):
            step(opt, cross_entropy(student(pool_x[idx]), labels.gather(1, idx)),
                 before_step=masked if mask is not None else None)
    return student.eval()


@register_method("random_labels", {
    "DIGITS": sgd_defaults(lr=0.01, epochs=3, batch_size=64),
    # SalUn's RL on CIFAR-10 (ResNet-18): lr 0.01, 10 epochs; here the ResNet-9 with batch 256
    "CIFAR10": sgd_defaults(lr=0.01, epochs=10, batch_size=256),
}, stacked=True, search={
    "DIGITS": {"lr": [0.003, 0.01, 0.03], "epochs": [1, 3, 5]},
    "CIFAR10": {"lr": [1e-3, 1e-2, 5e-2], "epochs": [5, 10]},
})
def random_labels(models, data, config, *, generators):
    """Fine-tune on the forget set with random wrong labels together with the retain set
    (Graves et al. 2021)."""
    return _relabel_finetune(models, data, config, generators)


#: Forget examples per forward pass of the saliency mask.
MASK_BATCH = 512


def saliency_masks(models, data, fraction: float) -> list:
    """Per parameter of the stack, 1 where the weight is among the ``fraction`` of the
    model's weights with the largest gradient magnitude of the forget loss, else 0."""
    if not 0 < fraction <= 1:
        raise ValueError(f"salun: fraction must lie in (0, 1], got {fraction}")
    # gradients in eval mode (batch norm with its running statistics, as SalUn's own mask
    # code runs it), summed over batches of the forget set, each weighted by its share
    student = for_training(models).eval()
    m, n = student.m, len(data.forget_y)
    params = list(student.parameters())
    grads: list = [torch.zeros_like(p) for p in params]
    for start in range(0, n, MASK_BATCH):
        xb, yb = data.forget_x[start:start + MASK_BATCH], data.forget_y[start:start + MASK_BATCH]
        losses = cross_entropy(student(xb.unsqueeze(0).expand(m, *xb.shape)), yb.expand(m, -1))
        share = 1.0 if len(yb) == n else len(yb) / n
        for total, g in zip(grads, torch.autograd.grad(losses.sum() * share, params)):
            total += g
    size = [per_model(g, m) for g in grads]
    flat = torch.cat([g.abs().reshape(m, -1) for g in size], dim=1)
    keep = max(1, math.ceil(fraction * flat.shape[1]))
    threshold = flat.kthvalue(flat.shape[1] - keep + 1, dim=1).values  # (M,)
    return [(g.abs() >= threshold.view(m, *[1] * (g.dim() - 1))).reshape(p.shape).to(p.dtype)
            for g, p in zip(size, params)]


@register_method("salun", {
    "DIGITS": {**sgd_defaults(lr=0.01, epochs=3, batch_size=64), "fraction": 0.5},
    # SalUn on CIFAR-10 (ResNet-18): lr 0.013 for 10 epochs, mask ratio 0.5
    "CIFAR10": {**sgd_defaults(lr=0.013, epochs=10, batch_size=256), "fraction": 0.5},
}, stacked=True, search={
    "DIGITS": {"lr": [0.003, 0.01, 0.03], "epochs": [3, 5], "fraction": [0.3, 0.5, 0.7]},
    "CIFAR10": {"lr": [5e-3, 1.3e-2, 3e-2], "fraction": [0.3, 0.5, 0.7]},
})
def salun(models, data, config, *, generators):
    """SalUn (Fan et al. 2024): random-label fine-tuning of the salient weights only."""
    masks = saliency_masks(models, data, config["fraction"])
    return _relabel_finetune(models, data, config, generators, mask=masks)

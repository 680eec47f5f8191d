"""Matching methods: fine-tune towards target logits on the forget set and a retain sample.

Oracle matching takes the mean logits of held-out oracles; datamodel matching (Georgiev et al.
2025) the model's own logits plus a datamodel's predicted change, with no oracle; datamodel
direct writes those logits as the unlearned outputs without training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..stack import optimizer, predict
from .inputs import Outputs
from .registry import ANY_DATASET, register_method
from .steps import batch_orders, for_training, step


def _matching_defaults(lr: float, epochs: int, batch_size: int, forget_repeat: int = 5) -> dict:
    """Settings of a matching method (oracle or datamodel): per epoch the forget set
    ``forget_repeat`` times and a retain sample 20 times its size; learning rate x0.95 per
    epoch."""
    return {"lr": lr, "epochs": epochs, "batch_size": batch_size, "lr_decay": 0.95,
            "forget_repeat": forget_repeat, "retain_multiple": 20}


@register_method("oracle_matching", {
    "DIGITS": _matching_defaults(1e-3, 10, 64),
    "CIFAR10": _matching_defaults(5e-4, 13, 256),
}, needs_oracles=True, stacked=True, search={
    "DIGITS": {"lr": [3e-4, 1e-3, 3e-3], "epochs": [5, 10]},
    "CIFAR10": {"lr": [1e-4, 5e-4, 1e-3], "epochs": [8, 13]},
})
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

    student = for_training(models)
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
        for idx in batch_orders(ids.shape[1], config["batch_size"], generators, dev):
            sel = ids.gather(1, idx)
            out = student(pool_x[sel])
            step(opt, F.mse_loss(out, pool_t[rows, sel], reduction="none").mean((-2, -1)))
        for group in opt.param_groups:
            group["lr"] *= config["lr_decay"]
    return student.eval()


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
}, needs_datamodel=True, stacked=True, search={
    "DIGITS": {"lr": [3e-4, 1e-3, 3e-3], "forget_repeat": [5, 10], "shrink": [True, False]},
    "CIFAR10": {"lr": [5e-5, 1e-4, 5e-4], "epochs": [4, 8]},
})
def datamodel_matching(models, data, config, *, generators):
    """Datamodel matching (Georgiev et al. 2025): fine-tune, as oracle matching does, towards
    targets made without oracles: the model's own logits plus the datamodel's predicted
    change when the forget set leaves training."""
    _need_datamodel(data, "datamodel_matching")
    own = [predict(models, x).to(data.device) for x in (data.forget_x, data.retain_x)]
    return _match_logits(models, data, own[0] + data.datamodel_forget_shift,
                         own[1] + data.datamodel_retain_shift, config, generators)


@register_method("datamodel_direct", {ANY_DATASET: {"shrink": True}}, needs_datamodel=True,
                 stacked=True, search={"shrink": [True, False]})
def datamodel_direct(models, data, config, *, generators):
    """No training: the model's logits plus the datamodel's predicted change, as the outputs
    of the unlearned model (an :class:`Outputs`)."""
    _need_datamodel(data, "datamodel_direct")
    return Outputs(train_logits=predict(models, data.train_x) + data.datamodel_train_shift.cpu(),
                   val_logits=predict(models, data.val_x) + data.datamodel_val_shift.cpu())

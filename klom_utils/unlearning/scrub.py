"""SCRUB (Kurmanji et al. 2023), as published: a student moves away from a frozen teacher on
the forget set and stays close to it on the retain set."""

from __future__ import annotations

import torch

from .configs import check_config
from .registry import register_method
from .steps import (
    batch_orders,
    cross_entropy,
    distill_kl,
    for_training,
    frozen_outputs,
    rows_of,
    sgd,
    sgd_defaults,
    soften,
    step,
)


def _scrub_defaults(**values) -> dict:
    return sgd_defaults(**{"temperature": 4.0, "gamma": 0.99, "alpha": 0.1, "lr_decay": 0.1,
                            "forget_batch_size": 32, "retain_batch_size": 64, **values})


@register_method("scrub", {
    # DIGITS: chosen by leave-one-out (scripts/choose_digits_defaults.py) among settings around
    # those of scripts/tune_scrub.py (lr 0.05, alpha 0.1, max steps in 5 epochs, which were
    # tuned on the scoring oracles); a constant learning rate
    "DIGITS": _scrub_defaults(lr=0.02, epochs=10, max_epochs=3, alpha=0.5, lr_milestones=[]),
    # data-unlearning-bench's SCRUB; lr: the middle of its grid 5e-5 ... 5e-3 (Kurmanji's value)
    "CIFAR10": _scrub_defaults(lr=5e-4, epochs=10, max_epochs=3, lr_milestones=[3, 5, 9]),
}, stacked=True, search={
    "DIGITS": {"lr": [0.02, 0.05, 0.1], "max_epochs": [3, 5], "alpha": [0.1, 0.5]},
    "CIFAR10": {"lr": [5e-5, 5e-4, 5e-3], "max_epochs": [1, 3, 5]},  # the bench's lr grid
})
def scrub(models, data, config, *, generators):
    """SCRUB (Kurmanji et al. 2023) as published: the student (a copy of the model) is
    trained, the teacher (the original, frozen, in eval mode) is not.

    Each epoch: in the first ``max_epochs`` epochs, a "max" pass over the forget set (batches
    of ``forget_batch_size``) minimising ``-KL(teacher ‖ student)`` at ``temperature``; then a
    "min" pass over the retain set (batches of ``retain_batch_size``) minimising
    ``gamma * CE(student, y) + alpha * KL(teacher ‖ student)`` (the same KL, at
    ``temperature``, times T²; see :func:`scrub_min_loss`). SGD over the student's parameters;
    the learning rate is multiplied by ``lr_decay`` at each epoch of ``lr_milestones``
    (0-based: epoch ``e`` trains at ``lr * lr_decay ** (number of milestones <= e)``; the
    bench's ``[3, 5, 9]`` gives x0.1 from the 4th, 6th and 10th epoch on).
    """
    _check_scrub(config)
    teacher = models.copy().requires_grad_(False).eval()
    student = for_training(models)
    opt = sgd(student, config)  # over the student's parameters: the student is what moves
    schedule = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=config["lr_milestones"],
                                                    gamma=config["lr_decay"])
    t = config["temperature"]
    # the teacher is frozen: its softened outputs on every example once, not at every step
    on_forget = soften(frozen_outputs(teacher, data.forget_x), t) if config["max_epochs"] else None
    on_retain = soften(frozen_outputs(teacher, data.retain_x), t) if config["alpha"] else None
    for epoch in range(config["epochs"]):
        if epoch < config["max_epochs"]:
            for idx in batch_orders(data.forget_y.shape[0], config["forget_batch_size"], generators,
                               data.device):
                step(opt, -distill_kl(student(data.forget_x[idx]), rows_of(on_forget, idx), t))
        for idx in batch_orders(data.retain_y.shape[0], config["retain_batch_size"], generators,
                           data.device):
            target = None if on_retain is None else rows_of(on_retain, idx)
            step(opt, scrub_min_loss(student(data.retain_x[idx]), target, data.retain_y[idx],
                                     config))
        schedule.step()
    return student.eval()


def scrub_min_loss(student_logits, teacher_probs, y, config):
    """SCRUB's retain ("min") loss per model: ``gamma * CE + alpha * KL_T(teacher ‖ student)``
    of the student's logits (..., B, C), the teacher's softened outputs (:func:`~klom_utils.
    unlearning.steps.soften` at ``temperature``) and labels (..., B) -> (...,).

    ``teacher_probs`` may be None when ``alpha`` is 0 (the KL term is then left out).
    """
    loss = config["gamma"] * cross_entropy(student_logits, y)
    if config["alpha"]:
        loss = loss + config["alpha"] * distill_kl(student_logits, teacher_probs,
                                                    config["temperature"])
    return loss


def _check_scrub(config) -> None:
    check_config("scrub", config)
    bad = [m for m in config["lr_milestones"] if int(m) != m]
    if bad:
        raise ValueError(f"scrub: lr_milestones must be epochs (integers >= 0), got "
                         f"{config['lr_milestones']}")

"""Descent and ascent methods: do nothing (the baseline), gradient ascent on the forget set,
gradient descent on the retain set, and NegGrad+ (both at once)."""

from __future__ import annotations

from .registry import ANY_DATASET, register_method
from .steps import (
    Cycle,
    batch_orders,
    cross_entropy,
    descend_on_retain,
    for_training,
    per_model_draws,
    sgd,
    sgd_defaults,
    step,
    trainable,
)

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
    # DIGITS: chosen by leave-one-out (scripts/choose_digits_defaults.py; lr was 0.01)
    "DIGITS": sgd_defaults(lr=0.003, epochs=3, batch_size=16, max_grad_norm=0.0),
    "CIFAR10": sgd_defaults(lr=5e-8, epochs=3, batch_size=64, max_grad_norm=0.0),
}, stacked=True, search={
    "DIGITS": {"lr": [0.003, 0.01, 0.03], "epochs": [1, 3, 5]},
    # the authors' value (5e-8, barely moves the model) and their grid's range (1e-5 ... 5e-2)
    "CIFAR10": {"lr": [5e-8, 1e-5, 1e-4, 1e-3, 1e-2], "epochs": [1, 3, 5, 10]},
})
def gradient_ascent(models, data, config, *, generators):
    """Maximise cross-entropy on the forget set (SGD)."""
    student = for_training(models)
    opt = sgd(student, config)
    n = data.forget_y.shape[0]
    for _ in range(config["epochs"]):
        for idx in batch_orders(n, config["batch_size"], generators, data.device):
            loss = -cross_entropy(student(data.forget_x[idx]), data.forget_y[idx])
            step(opt, loss, config["max_grad_norm"])
    return student.eval()


@register_method("gradient_descent", {
    # DIGITS: chosen by leave-one-out (lr was 0.01, 3 epochs)
    "DIGITS": sgd_defaults(lr=0.03, epochs=5, batch_size=64),
    "CIFAR10": sgd_defaults(lr=1e-4, epochs=3, batch_size=64),
}, stacked=True, search={
    "DIGITS": {"lr": [0.003, 0.01, 0.03, 0.1], "epochs": [3, 5]},
    "CIFAR10": {"lr": [1e-4, 1e-3, 1e-2], "epochs": [3, 5]},
})
def gradient_descent(models, data, config, *, generators):
    """Fine-tune on the retain set only (minimise cross-entropy on R; SGD)."""
    student = for_training(models)
    return descend_on_retain(student, sgd(student, config), data, config, generators)


@register_method("neggrad_plus", {
    # DIGITS: chosen by leave-one-out (5 epochs before)
    "DIGITS": sgd_defaults(lr=0.02, epochs=3, forget_batch_size=16, retain_batch_size=64,
                            alpha=0.8, max_grad_norm=0.0),
    "CIFAR10": sgd_defaults(lr=1e-3, epochs=5, forget_batch_size=64, retain_batch_size=64,
                             alpha=0.5, max_grad_norm=0.0),
}, stacked=True, search={
    "DIGITS": {"lr": [0.01, 0.02, 0.05], "alpha": [0.5, 0.8, 0.95], "epochs": [3, 5]},
    "CIFAR10": {"lr": [1e-4, 1e-3, 1e-2], "alpha": [0.5, 0.8, 0.95]},
})
def neggrad_plus(models, data, config, *, generators):
    """Each step: ``alpha * CE(retain batch) - (1 - alpha) * CE(forget batch)`` (SGD).

    An epoch is one pass over the forget set; retain batches are drawn cyclically.
    """
    alpha = config["alpha"]
    if not 0 <= alpha <= 1:
        raise ValueError(f"neggrad_plus: alpha must lie in [0, 1], got {alpha}")
    student = for_training(models)
    opt = sgd(student, config)
    retain = Cycle(data.retain_y.shape[0], config["retain_batch_size"], generators, data.device)
    for _ in range(config["epochs"]):
        for f in batch_orders(data.forget_y.shape[0], config["forget_batch_size"], generators,
                         data.device):
            r = next(retain)
            loss = (alpha * cross_entropy(student(data.retain_x[r]), data.retain_y[r])
                    - (1 - alpha) * cross_entropy(student(data.forget_x[f]), data.forget_y[f]))
            step(opt, loss, config["max_grad_norm"])
    return student.eval()


@register_method("noisy_descent", {
    # EasyDUB's noisy descent: noise_std 0.01, max_grad_norm 1.0 (its defaults)
    "DIGITS": sgd_defaults(lr=0.01, epochs=3, batch_size=64, noise_std=0.01, max_grad_norm=1.0),
    "CIFAR10": sgd_defaults(lr=1e-3, epochs=3, batch_size=64, noise_std=0.01,
                            max_grad_norm=1.0),
}, stacked=True, search={
    "DIGITS": {"lr": [0.003, 0.01, 0.03], "noise_std": [0.003, 0.01, 0.03]},
    "CIFAR10": {"lr": [1e-4, 1e-3, 1e-2], "noise_std": [0.003, 0.01, 0.03]},
})
def noisy_descent(models, data, config, *, generators):
    """Noisy descent (EasyDUB): clipped, noisy gradient descent on the retain set.

    Each step: the cross-entropy of a retain batch; each model's whole gradient clipped to
    ``max_grad_norm``; Gaussian noise of standard deviation ``noise_std`` added to every
    gradient entry (not scaled by the clipping norm, as EasyDUB's code does), drawn from the
    model's own generator; SGD. Followed: EasyDUB's ``noisy_descent`` and its defaults.
    """
    student = for_training(models)
    opt = sgd(student, config)
    params = trainable(opt)

    def add_noise() -> None:
        for p, noise in zip(params, per_model_draws(params, generators, config["noise_std"])):
            p.grad.add_(noise)

    return descend_on_retain(student, opt, data, config, generators, config["max_grad_norm"],
                             add_noise)

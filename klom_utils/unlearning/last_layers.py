"""The "last k blocks" baselines of Goel et al. 2022 ("Towards adversarial evaluation of
machine unlearning"): EU-k re-initialises the last ``k`` blocks and retrains them on the
retain set, CF-k fine-tunes only the last ``k`` blocks on the retain set; the other blocks
stay frozen (and, with batch normalisation, in eval mode).

A block is a layer with weights, first to last (:func:`klom_utils.stack.blocks_of`): 2 for the
DIGITS MLP (the two linear layers), 7 for the ResNet-9 (the five convolution blocks, two of
them residual, and the linear head), 7 for the ResNet-18 (``conv1``, ``bn1``, ``layer1`` ...
``layer4``, ``fc``). Changed: the paper retrains EU-k for as long as the original training;
here for ``epochs`` (a setting, searched by ``klom compare``), since retraining the last blocks
fully costs about as much as the oracle on these small models. The re-initialisation draws
from each model's own generator (the model's default initialisation of those layers).
"""

from __future__ import annotations

import torch

from ..models import load_model
from ..stack import ModelStack, blocks_of
from .registry import register_method
from .steps import descend_on_retain, for_training, sgd, sgd_defaults


def _k_fits(method: str, k: int, blocks: list) -> None:
    if k > len(blocks):
        raise ValueError(f"{method}: k={k} is larger than the model's {len(blocks)} blocks "
                         f"with weights ({', '.join(blocks)})")


def check_k(method: str):
    """A check of ``k`` against a model's blocks (from its state dict), which
    :func:`~klom_utils.unlearning.unlearn_store` runs before anything is written."""
    def check(config, state_dict) -> None:
        _k_fits(method, config["k"], blocks_of(state_dict))
    return check


def stack_blocks(models) -> list:
    """The blocks of the stack's models, first to last."""
    return list(dict.fromkeys(models.block_of(n) for n, _ in models.module.named_parameters()))


def _retrain_last(student, data, config, generators, last):
    student.train_only(last)
    return descend_on_retain(student, sgd(student, config), data, config, generators)


def _last(models, config, method):
    blocks = stack_blocks(models)
    _k_fits(method, config["k"], blocks)
    return blocks[-config["k"]:]


@register_method("cf_k", {
    "DIGITS": sgd_defaults(k=1, lr=0.03, epochs=5, batch_size=64),
    "CIFAR10": sgd_defaults(k=2, lr=0.01, epochs=5, batch_size=256),
}, stacked=True, check=check_k("cf_k"), search={
    # the DIGITS MLP has 2 blocks: k = 2 would fine-tune all of it (gradient descent)
    "DIGITS": {"k": [1], "lr": [0.01, 0.03, 0.1], "epochs": [3, 5]},
    "CIFAR10": {"k": [1, 2, 3], "lr": [3e-3, 1e-2, 3e-2]},
})
def cf_k(models, data, config, *, generators):
    """CF-k (Goel et al. 2022): fine-tune only the last k blocks on the retain set."""
    last = _last(models, config, "cf_k")
    return _retrain_last(for_training(models), data, config, generators, last)


@register_method("eu_k", {
    "DIGITS": sgd_defaults(k=1, lr=0.05, epochs=10, batch_size=64),
    "CIFAR10": sgd_defaults(k=2, lr=0.05, epochs=10, batch_size=256),
}, stacked=True, check=check_k("eu_k"), search={
    # the DIGITS MLP has 2 blocks: k = 2 would retrain all of it from scratch
    "DIGITS": {"k": [1], "lr": [0.02, 0.05, 0.1], "epochs": [5, 10]},
    "CIFAR10": {"k": [1, 2, 3], "lr": [1e-2, 5e-2, 1e-1]},
})
def eu_k(models, data, config, *, generators):
    """EU-k (Goel et al. 2022): re-initialise the last k blocks, retrain them on the retain
    set."""
    last = set(_last(models, config, "eu_k"))
    fresh = []
    for sd, g in zip(models.state_dicts(), generators):
        model = load_model(sd, arch="auto")
        seed = int(torch.randint(0, 2**62, (1,), generator=g))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for name, child in model.named_children():
                if name in last:
                    for layer in child.modules():
                        if hasattr(layer, "reset_parameters"):
                            layer.reset_parameters()
        fresh.append(model)
    student = ModelStack.of(fresh, device=models.device).requires_grad_(True)
    return _retrain_last(student, data, config, generators, last)

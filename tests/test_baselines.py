"""The baselines of the unlearning literature: random labels, SalUn, l1-sparse, EU-k, CF-k
and noisy descent (each also in the stacked-equals-alone test of test_unlearn.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_unlearn import FORGET_SET, N_MODELS, digits_data, digits_store  # noqa: F401

from klom_utils import unlearning as U
from klom_utils.layout import full_models_folder
from klom_utils.models import DigitsMLP, ResNet9, load_model
from klom_utils.stack import ModelStack, blocks_of
from klom_utils.unlearning.relabel import saliency_masks
from klom_utils.unlearning.steps import random_wrong_labels

BASELINES = ["random_labels", "salun", "l1_sparse", "eu_k", "cf_k", "noisy_descent"]
#: Retain accuracy a method keeps at its DIGITS defaults: within this of the original's.
RETAIN_TOLERANCE = 0.03


def _data(n_forget=12, n_retain=60, shape=(1, 8, 8), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_forget + n_retain, *shape, generator=g)
    y = torch.randint(0, 10, (n_forget + n_retain,), generator=g)
    return U.UnlearnData(forget_x=x[:n_forget], forget_y=y[:n_forget], retain_x=x[n_forget:],
                         retain_y=y[n_forget:])


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", BASELINES)
def test_each_baseline_moves_the_weights_and_leaves_the_original(name):
    torch.manual_seed(0)
    model = DigitsMLP(hidden=32).eval()
    before = _params(model)
    config = U.resolve_config(name, "digits", {"epochs": 2})
    out = U.get_method(name)(model, _data(), config, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(v, before[k]) for k, v in _params(model).items())
    changed = {k for k, v in _params(out).items() if not torch.equal(v, before[k])}
    if name in ("eu_k", "cf_k"):  # the last block only (k = 1): the second linear layer
        assert changed == {"3.weight", "3.bias"}
    else:
        assert changed == set(before)


def test_salun_updates_only_the_salient_weights():
    torch.manual_seed(0)
    model, data = DigitsMLP(hidden=32).eval(), _data()
    config = U.resolve_config("salun", "digits", {"epochs": 2, "fraction": 0.3})
    masks = saliency_masks(ModelStack.of([model]), data, 0.3)
    kept = sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks)
    assert 0.3 <= kept < 0.31  # the top 30% of the weights (ties aside)
    out = U.get_method("salun")(model, data, config, generator=torch.Generator().manual_seed(1))
    flat_before = torch.cat([p.flatten() for p in model.state_dict().values()])
    flat_after = torch.cat([p.flatten() for p in out.state_dict().values()])
    mask = torch.cat([m.flatten() for m in masks]).bool()
    assert torch.equal(flat_before[~mask], flat_after[~mask])  # unmasked weights: untouched
    assert (flat_before[mask] != flat_after[mask]).float().mean() > 0.9


def test_random_wrong_labels_are_wrong_and_uniform():
    y = torch.zeros(20000, dtype=torch.long)
    labels = random_wrong_labels(y, 10, [torch.Generator().manual_seed(0)])[0]
    assert (labels != 0).all()
    counts = torch.bincount(labels, minlength=10)[1:].float()
    assert counts.min() > 0.9 * counts.mean() and counts.max() < 1.1 * counts.mean()


@pytest.mark.parametrize("name", ["eu_k", "cf_k"])
def test_last_k_blocks_of_the_resnet9(name):
    torch.manual_seed(0)
    model = ResNet9().eval()
    assert blocks_of(model.state_dict()) == ["0", "1", "2", "3", "5", "6", "9"]
    before = _params(model)
    data = _data(n_forget=4, n_retain=8, shape=(3, 16, 16))
    config = U.resolve_config(name, "cifar10", {"epochs": 1, "k": 2})
    out = U.get_method(name)(model, data, config, generator=torch.Generator().manual_seed(1))
    changed = {k.split(".")[0] for k, v in _params(out).items() if not torch.equal(v, before[k])}
    assert changed == {"6", "9"}  # frozen blocks: weights and batch-norm statistics unchanged


def test_defaults_keep_retain_accuracy(digits_store, digits_data):  # noqa: F811
    """At the DIGITS defaults, on trained models: retain accuracy within RETAIN_TOLERANCE of
    the originals' (stated in the methods' docs), and the weights move."""
    forget = digits_store.forget_set("DIGITS", FORGET_SET)
    data = U.UnlearnData.from_dataset(digits_data, forget)
    models = [load_model(digits_store.state_dict(full_models_folder("DIGITS"), i), arch="auto")
              for i in range(4)]

    def retain_accuracy(ms):
        return np.mean([float((m(data.retain_x).argmax(-1) == data.retain_y).float().mean())
                        for m in ms])

    with torch.no_grad():
        original = retain_accuracy(models)
    for name in BASELINES:
        out = U.unlearn_models(name, models, data, dataset="digits", forget_set=FORGET_SET)
        with torch.no_grad():
            assert retain_accuracy(out) >= original - RETAIN_TOLERANCE, name
        assert not torch.equal(out[0].state_dict()["3.weight"], models[0].state_dict()["3.weight"])


@pytest.mark.parametrize("method, item, match", [
    ("salun", "fraction=-0.5", r"fraction=-0.5 is out of range: expected a finite number > 0"),
    ("salun", "fraction=1.5", "fraction=1.5 is out of range"),
    ("noisy_descent", "noise_std=nan", "noise_std=nan is out of range"),
    ("eu_k", "k=0", "k=0 is out of range"),
    ("cf_k", "k=3", r"cf_k: k=3 is larger than the model's 2 blocks with weights \(1, 3\)"),
    ("l1_sparse", "alpha=-1", "alpha=-1.0 is out of range"),
])
def test_bad_settings_fail_before_anything_is_written(tmp_path, method, item, match):
    from klom_utils.train import train_models

    train_models("digits", tmp_path, [0], device="cpu", progress=False)
    with pytest.raises(ValueError, match=match):
        U.unlearn_store(tmp_path, "digits", 1, method, [0], config=[item], progress=False)
    assert not (tmp_path / "unlearned").exists()

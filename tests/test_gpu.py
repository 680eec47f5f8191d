"""Checks that need a CUDA GPU (marker ``gpu``; skipped cleanly without CUDA).

Run them with ``pytest -m gpu`` (``scripts/gpu_check.py`` does, after its measurements).
"""

import numpy as np
import pytest
import torch

from klom_utils import stack, train
from klom_utils import unlearning as U
from klom_utils.data import load_digits
from klom_utils.layout import full_models_folder, unlearned_folder
from klom_utils.models import load_model
from klom_utils.store import open_store

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _resnet_data(device, n=24, n_forget=6):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (n,), generator=g).to(device)
    t = torch.randn(n, 10, generator=g).to(device)
    return U.UnlearnData(forget_x=x[:n_forget], forget_y=y[:n_forget], retain_x=x[n_forget:],
                         retain_y=y[n_forget:], oracle_forget_logits=t[:n_forget],
                         oracle_retain_logits=t[n_forget:])


def test_optimizers_are_fused_on_cuda():
    params = [torch.nn.Parameter(torch.zeros(3, device="cuda"))]
    for name in ("sgd", "adam"):
        assert stack.optimizer(name, params, lr=0.1).defaults["fused"] is True


@pytest.mark.parametrize("name", ["gradient_descent", "scrub", "oracle_matching"])
def test_resnet9_stack_on_cuda_agrees_with_alone(name):
    """Grouped convolutions under bf16 autocast: stacked and alone agree to bf16 rounding."""
    data = _resnet_data("cuda")
    models = [load_model(stack.init_state_dict("resnet9", s)) for s in (1, 2)]
    cfg = {"epochs": 1, "lr": 1e-3, **({"max_epochs": 1} if name == "scrub" else {})}
    stacked = U.unlearn_models(name, [m.cuda() for m in models], data, dataset="cifar10",
                               config=cfg)
    for j, model in enumerate(models):
        alone = U.unlearn_models(name, [model.cuda()], data, dataset="cifar10", config=cfg,
                                 model_ids=[j])[0]
        a = stack.predict_logits(stacked[j], data.retain_x)
        b = stack.predict_logits(alone, data.retain_x)
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, atol=5e-2, rtol=5e-2)


def test_digits_unlearning_on_cuda_matches_cpu():
    d = load_digits()
    models = [load_model(stack.init_state_dict("digits_mlp", s), arch="digits_mlp")
              for s in (1, 2)]
    out = {}
    for device in ("cpu", "cuda"):
        data = U.UnlearnData.from_dataset(d, np.arange(0, 200, 4), device=device)
        out[device] = U.unlearn_models("scrub", [m.to(device) for m in models], data,
                                       dataset="digits", config={"epochs": 2, "max_epochs": 1})
    x = d.normalize(d.val_x)
    for a, b in zip(out["cpu"], out["cuda"]):
        torch.testing.assert_close(stack.predict_logits(a, x), stack.predict_logits(b.cpu(), x),
                                   atol=1e-3, rtol=1e-3)


def test_unlearn_store_on_cuda_evaluates_like_training(tmp_path):
    """Originals and unlearned models are evaluated the same way (float32, no autocast): do
    nothing reproduces the originals' stored logits up to float32 rounding."""
    from test_train import tiny_cifar

    d = tiny_cifar(n_train=64, n_val=16)
    cfg = train.default_config("cifar10", epochs=1, peak_epoch=0.5, batch_size=16, stack=2)
    store = open_store(tmp_path / "s", create=True)
    store.write_forget_set("CIFAR10", 1, np.arange(4))
    train.train_models(d, store, range(3), device="cuda", config=cfg, progress=False)
    for name in ("do_nothing", "gradient_ascent"):
        run = U.unlearn_store(store, d, 1, name, range(3), device="cuda", progress=False,
                              stack=2)
        assert run["written"] == [0, 1, 2]
    full = full_models_folder("CIFAR10")
    nothing = unlearned_folder("CIFAR10", "do_nothing", 1)
    for i in range(3):
        for split in ("train", "val"):
            a, b = store.logits(full, split, i), store.logits(nothing, split, i)
            assert a.dtype == b.dtype == torch.float32
            torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)
    margins = store.margins(unlearned_folder("CIFAR10", "gradient_ascent", 1), "train")
    assert np.isfinite(margins).all()

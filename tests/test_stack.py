"""Stacks of models: the optimiser keeps every model of a stack as alone (klom_utils.stack)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from klom_utils import stack


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_optimizer_updates_each_model_of_a_stack_as_alone(name):
    """Stacked tensors hold the models one after the other: model 0's update must not depend
    on the models beside it (sizes per model that are not multiples of a vector width)."""
    g = torch.Generator().manual_seed(0)
    sizes, steps = (7, 10, 17, 640), 20
    init = [torch.randn(3 * s, generator=g) for s in sizes]
    grads = [[torch.randn(3 * s, generator=g) for s in sizes] for _ in range(steps)]
    options = {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4} if name == "sgd" else {}

    def run(m):
        params = [torch.nn.Parameter(t[: m * s].clone()) for t, s in zip(init, sizes)]
        opt = stack.optimizer(name, params, lr=0.1, **options)
        for k in range(steps):
            for p, gr, s in zip(params, grads[k], sizes):
                p.grad = gr[: m * s].clone()
            stack.set_lr(opt, 0.01 * (k + 1))
            opt.step()
        return [p.detach()[:s] for p, s in zip(params, sizes)]

    assert all(torch.equal(a, b) for a, b in zip(run(3), run(1)))


def test_sgd_is_the_former_own_sgd():
    """torch's SGD (foreach on the CPU) makes the update the former ``train.SGD`` made
    (dampening 0, weight decay added to the gradient, Nesterov), lr set at each step. Against
    the former class itself it was bit-identical after 300 steps (torch 2.13, CPU; the DIGITS
    recipe trains the same models bit for bit); against this plain per-tensor formula, whose
    rounding differs, within 2e-6 after 300 steps."""
    g = torch.Generator().manual_seed(0)
    shapes = [(64, 8), (64,), (10,)]
    params = [torch.nn.Parameter(torch.randn(s, generator=g)) for s in shapes]
    ref = [p.detach().clone() for p in params]
    bufs = [None] * len(ref)
    opt = stack.optimizer("sgd", params, momentum=0.9, nesterov=True, weight_decay=5e-4)
    for step in range(300):
        lr = float(np.interp(step, [0, 60, 300], [0, 0.1, 0]))
        grads = [torch.randn(s, generator=g) for s in shapes]
        for p, gr in zip(params, grads):
            p.grad = gr.clone()
        stack.set_lr(opt, lr)
        opt.step()
        for j, gr in enumerate(grads):
            d = gr + 5e-4 * ref[j]
            bufs[j] = d.clone() if bufs[j] is None else bufs[j] * 0.9 + d
            ref[j] = ref[j] - lr * (d + 0.9 * bufs[j])
    for p, r in zip(params, ref):
        torch.testing.assert_close(p.detach(), r, atol=1e-5, rtol=1e-5)


def test_optimizer_checks_its_arguments():
    with pytest.raises(ValueError, match="unknown optimiser 'rmsprop'"):
        stack.optimizer("rmsprop", [torch.nn.Parameter(torch.zeros(2))])
    with pytest.raises(ValueError, match="no parameters with requires_grad"):
        stack.optimizer("sgd", [torch.zeros(2)])


def test_stack_from_checkpoints_equals_the_stack_of_loaded_models():
    from klom_utils.models import CheckpointError, build_model, load_model

    sds = [{f"model.{k}": v for k, v in build_model("digits_mlp", hidden=8, d_in=4,
                                                      num_classes=3).state_dict().items()}
           for _ in range(3)]  # with a prefix, as some checkpoints are saved
    direct = stack.ModelStack.from_checkpoints(sds)
    loaded = stack.ModelStack.of([load_model(sd, arch="auto") for sd in sds])
    x = torch.randn(3, 5, 4)
    assert torch.equal(direct(x), loaded(x))
    other = build_model("digits_mlp", hidden=6, d_in=4, num_classes=3).state_dict()
    with pytest.raises(CheckpointError, match="checkpoint 1 of the stack"):
        stack.ModelStack.from_checkpoints([sds[0], other])
    with pytest.raises(CheckpointError):
        stack.ModelStack.from_checkpoints([{"nonsense": torch.zeros(1)}])


def test_stack_from_wrapped_checkpoints():
    from klom_utils.models import build_model

    sds = [{"state_dict": build_model("digits_mlp", hidden=8, d_in=4, num_classes=3).state_dict(),
            "epoch": 3} for _ in range(2)]  # saved as {"state_dict": ..., ...}
    assert stack.ModelStack.from_checkpoints(sds).m == 2

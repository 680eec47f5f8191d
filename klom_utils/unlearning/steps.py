"""The building blocks of the built-in methods: per-model generators, batch orders, the SGD
optimiser, one step on per-model losses (with per-model clipping), and the losses.

Everything here keeps every model of a stack to itself: its own data order (its own
generator), its own loss, its own gradient norm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ids import model_seed
from ..stack import optimizer, per_model_cross_entropy


def model_generator(model_id: int, *, dataset: str = "", forget_set=None, method: str = "",
                    seed: int = 0):
    """The CPU ``torch.Generator`` of one unlearning run, seeded from the run's identity."""

    purpose = f"unlearn/{method}/{'' if forget_set is None else int(forget_set)}"
    return torch.Generator().manual_seed(model_seed(dataset, "unlearn", model_id, purpose, seed))


def for_training(models):
    """A copy of the stack in train mode with gradients on (the original is left as it is)."""
    return models.copy().requires_grad_(True).train()


def batch_orders(n: int, batch_size: int, generators, device) -> list:
    """Index tensors (M, b) of one shuffled pass over ``n`` rows, each model its own order
    (model j draws one permutation from ``generators[j]``)."""
    perm = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(device)
    return list(perm.split(batch_size, dim=1))


class Cycle:
    """Batches (M, b) of ``batch_size`` indices forever, reshuffled after each pass."""

    def __init__(self, n, batch_size, generators, device):
        self.args, self.queue = (n, batch_size, generators, device), []

    def __next__(self):
        if not self.queue:
            self.queue = batch_orders(*self.args)
        return self.queue.pop(0)


def sgd(models, config):
    return optimizer("sgd", models.parameters(), lr=config["lr"], momentum=config["momentum"],
                     weight_decay=config["weight_decay"])


def per_model(t, m: int):
    """View of a stacked tensor as (m, ...): models one after the other along dim 0."""
    return t.unsqueeze(0) if t.dim() == 0 else t.unflatten(0, (m, -1))


def step(optimizer, losses, max_grad_norm: float = 0.0, before_step=None):
    """One step on the sum of the per-model ``losses`` (M,); with ``max_grad_norm`` each
    model's gradient is clipped to that norm on its own (as ``clip_grad_norm_`` would);
    ``before_step()`` (if given) may change the gradients just before the update."""
    optimizer.zero_grad(set_to_none=True)
    losses.sum().backward()
    if max_grad_norm and max_grad_norm > 0:
        m = losses.shape[0]
        grads = [per_model(p.grad, m) for g in optimizer.param_groups for p in g["params"]
                 if p.grad is not None]
        norms = torch.stack([torch.linalg.vector_norm(g, dim=tuple(range(1, g.dim())))
                             for g in grads]).norm(dim=0)
        coef = (max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.view(m, *[1] * (g.dim() - 1)))
    if before_step is not None:
        before_step()
    optimizer.step()


def descend_on_retain(student, optimizer, data, config, generators, max_grad_norm: float = 0.0,
                      before_step=None):
    """``config["epochs"]`` passes of cross-entropy descent on the retain set (batches of
    ``config["batch_size"]``, each model its own order); returns the student in eval mode."""
    n = data.retain_y.shape[0]
    for _ in range(config["epochs"]):
        for idx in batch_orders(n, config["batch_size"], generators, data.device):
            step(optimizer, cross_entropy(student(data.retain_x[idx]), data.retain_y[idx]),
                 max_grad_norm, before_step)
    return student.eval()


def trainable(optimizer) -> list:
    """The parameters an optimiser updates."""
    return [p for g in optimizer.param_groups for p in g["params"]]


def per_model_draws(params, generators, scale: float = 1.0) -> list:
    """Gaussian draws shaped like each stacked tensor of ``params``, model j's slices from
    ``generators[j]`` only (on the CPU, then moved), times ``scale``."""
    m = len(generators)
    out = []
    for p in params:
        rows = per_model(p, m)
        draws = torch.stack([torch.randn(rows.shape[1:], generator=g) for g in generators])
        out.append(draws.to(p.device, p.dtype).reshape(p.shape) * scale)
    return out


def frozen_outputs(models, x, batch_size: int = 1024):
    """Outputs (M, n, C) of a frozen stack on every row of ``x`` (shared by its models),
    computed once, so that a fixed target is not recomputed at every step; read per-model
    batches with :func:`rows_of`. Row for row what calling the stack on per-model batches
    gives: bit for bit for the DIGITS MLP on the CPU where a batch holds at least 3 rows
    (tests/test_unlearn.py; a product of 1 or 2 rows rounds differently, by about 1e-6 of the
    logits), to float rounding on CUDA (bf16, other kernels per batch size)."""
    with torch.no_grad():
        return torch.cat([models.forward_shared(x[i:i + batch_size])
                          for i in range(0, x.shape[0], batch_size)], dim=1)


def rows_of(outputs, idx):
    """``outputs`` (M, n, C) at each model's rows ``idx`` (M, b): (M, b, C)."""
    return torch.gather(outputs, 1, idx.unsqueeze(-1).expand(*idx.shape, outputs.shape[-1]))


def random_wrong_labels(y, n_classes: int, generators):
    """Per model, labels drawn uniformly from the classes other than ``y``: (M, n)."""
    shift = torch.stack([torch.randint(1, n_classes, y.shape, generator=g) for g in generators])
    return (y.cpu().unsqueeze(0) + shift).remainder(n_classes).to(y.device)


def cross_entropy(logits, y):
    """Mean cross-entropy per model: (..., B, C), (..., B) -> (...,)."""
    return per_model_cross_entropy(logits, y)


def soften(logits, temperature: float):
    """Softened probabilities, ``softmax(logits / T)`` over the classes."""
    return F.softmax(logits / temperature, dim=-1)


def distill_kl(student_logits, teacher_probs, temperature: float):
    """KL(teacher ‖ student) of the softened outputs, times T² (Hinton's distillation loss),
    the mean over each model's rows: (..., B, C) -> (...,). ``teacher_probs``: the teacher's
    softened outputs (:func:`soften`), fixed, so computed once."""
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits / t, dim=-1), teacher_probs, reduction="none")
    return kl.sum(-1).mean(-1) * t * t


def sgd_defaults(**values) -> dict:
    return {"momentum": 0.9, "weight_decay": 5e-4, **values}

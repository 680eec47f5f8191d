"""l1-sparse fine-tuning (Jia et al. 2023, "Model sparsity can simplify machine unlearning",
NeurIPS): fine-tune on the retain set with the cross-entropy plus ``alpha_t`` times the l1
norm of the weights, ``alpha_t = alpha * (1 - t / epochs)`` decaying linearly over the epochs
``t = 0 .. epochs - 1``, as in the authors' code (``FT_l1``). Published (CIFAR-10, ResNet-18):
SGD, lr 0.01, 10 epochs, alpha 5e-4. Followed: the l1 norm of every weight of the model (each
model of a stack its own), the linear decay per epoch."""

from __future__ import annotations

from .registry import register_method
from .steps import batch_orders, cross_entropy, for_training, per_model, sgd, sgd_defaults, step, trainable


@register_method("l1_sparse", {
    "DIGITS": {**sgd_defaults(lr=0.01, epochs=5, batch_size=64), "alpha": 5e-4},
    "CIFAR10": {**sgd_defaults(lr=0.01, epochs=10, batch_size=256), "alpha": 5e-4},
}, stacked=True, search={
    "DIGITS": {"lr": [0.003, 0.01, 0.03], "alpha": [1e-4, 5e-4, 2e-3]},
    "CIFAR10": {"lr": [3e-3, 1e-2, 3e-2], "alpha": [1e-4, 5e-4, 1e-3]},
})
def l1_sparse(models, data, config, *, generators):
    """Fine-tune on the retain set with a decaying l1 penalty on the weights (Jia et al.)."""
    student = for_training(models)
    opt = sgd(student, config)
    params, m = trainable(opt), student.m
    n = data.retain_y.shape[0]
    for epoch in range(config["epochs"]):
        alpha = config["alpha"] * (1 - epoch / config["epochs"])
        for idx in batch_orders(n, config["batch_size"], generators, data.device):
            loss = cross_entropy(student(data.retain_x[idx]), data.retain_y[idx])
            if alpha:
                loss = loss + alpha * sum(per_model(p, m).abs().reshape(m, -1).sum(1)
                                          for p in params)
            step(opt, loss)
    return student.eval()

"""Data augmentation of training batches: random flips and translations, each model drawing
from its own generator (so a model trained in a stack sees the same draws as alone)."""

from __future__ import annotations

import hashlib
from typing import Any

import torch


def augment_generators(order_seeds) -> list:
    """One CPU generator per model for its augmentations, seeded from its order seed (so from
    the model's identity alone: the same draws whatever else trains in its stack)."""
    return [torch.Generator().manual_seed(int.from_bytes(
        hashlib.sha256(f"{int(s)}/augment".encode()).digest()[:8], "little") & (2**63 - 1))
        for s in order_seeds]


def augment_batch(x, generators, fill):
    """Random horizontal flips (probability 1/2) and translations of a batch per model.

    ``x``: normalised inputs (M, B, C, H, W) on any device; ``generators``: M CPU generators
    (model m's draws come from ``generators[m]`` only); ``fill``: the value of the pixels
    shifted in, (1, C, 1, 1) (the normalised black). Translations are uniform in
    ``[-t, t]`` pixels per axis, ``t = max(1, H // 16)`` (2 on 32x32 CIFAR-10, 1 on 8x8
    DIGITS). Every output pixel is an input pixel or ``fill``, exactly.
    """
    m, b, c, h, w = x.shape
    t = max(1, h // 16)
    draws = [(torch.rand(b, generator=g) < 0.5, torch.randint(-t, t + 1, (b, 2), generator=g))
             for g in generators]
    flip = torch.cat([d[0] for d in draws]).to(x.device)
    shift = torch.cat([d[1] for d in draws]).to(x.device)
    n = m * b
    padded = fill.to(x).expand(n, c, h + 2 * t, w + 2 * t).clone()
    padded[:, :, t:t + h, t:t + w] = x.reshape(n, c, h, w)
    rows = t + shift[:, :1] + torch.arange(h, device=x.device)  # (n, h)
    cols = t + shift[:, 1:] + torch.arange(w, device=x.device)  # (n, w); flipped: mirrored
    cols = torch.where(flip.view(-1, 1), w + 2 * t - 1 - cols, cols)
    out = padded.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, w + 2 * t))
    out = out.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))
    return out.reshape(m, b, c, h, w)


def black_fill(dataset: Any, device: Any) -> torch.Tensor:
    """The normalised value of a black pixel, (1, C, 1, 1)."""
    black = torch.zeros(1, dataset.train_x.shape[1], 1, 1, dtype=torch.uint8)
    return dataset.normalize(black, device=device)

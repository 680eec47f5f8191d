"""Benchmark: training many models at once.

Default (the embedded run): 100 DIGITS models on the CPU, stacked (one forward for all) against
the same models trained one at a time the plain way (``nn.Module`` + ``torch.optim.SGD``), and
the whole ``train_models`` call into a fresh store (training, logits, margins, files).

    python scripts/bench_train.py                      # 100 DIGITS models, CPU
    python scripts/bench_train.py --device cuda --arch resnet9
        # seconds per ResNet-9 on 24 epochs of CIFAR-10-shaped random data, per stack size,
        # and the fraction of the bf16 peak (a model costs about 2.1 PFLOP; H200 ~ 790 TFLOP/s)

Prints a markdown table of measured times and ratios (best of ``--repeat`` runs).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from klom_utils import data, devices, stack, train  # noqa: E402
from klom_utils.ids import model_seed  # noqa: E402

RESNET9_FLOP_PER_MODEL = 2.1e15  # 24 epochs of CIFAR-10 (forward + backward)


def best_of(repeat, fn):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def bench_digits(args):
    d = data.load_digits()
    cfg = train.default_config("digits", stack=args.models)
    if args.epochs:
        cfg = train.default_config("digits", stack=args.models, epochs=args.epochs,
                                   peak_epoch=cfg.peak_epoch * args.epochs / cfg.epochs)
    ids = range(args.models)
    seeds = [model_seed("DIGITS", "full", i, "init", cfg.seed) for i in ids]
    orders = [model_seed("DIGITS", "full", i, "order", cfg.seed) for i in ids]
    inits = [stack.init_state_dict("digits_mlp", s, 10, cfg.hidden) for s in seeds]
    idx = np.arange(d.n_train)

    t_stacked, (_, _, val_stacked) = best_of(
        args.repeat, lambda: train.fit(d, idx, inits, orders, cfg, progress=False))
    n_plain = args.plain_models or args.models

    def plain():
        return [train.fit_reference(d, idx, inits[i], orders[i], cfg)[2] for i in range(n_plain)]

    t_plain, val_plain = best_of(1 if n_plain > 20 else args.repeat, plain)
    t_plain_all = t_plain * args.models / n_plain
    diff = max(float((val_stacked[i] - val_plain[i]).abs().max()) for i in range(n_plain))

    def end_to_end():
        with tempfile.TemporaryDirectory() as tmp:
            train.train_models(d, tmp, ids, config=cfg, progress=False)

    t_e2e, _ = best_of(args.repeat, end_to_end)
    acc = float((val_stacked.argmax(-1) == d.val_y).float().mean())
    print(f"\nDIGITS, {args.models} models ({cfg.epochs} epochs, MLP 64-{cfg.hidden}-10), "
          f"CPU, {cfg.threads or torch.get_num_threads()} thread(s), {os.cpu_count()} cores; "
          f"mean test accuracy {acc:.4f}\n")
    print("| what | time (s) | per model (ms) | vs one at a time |")
    print("|---|---:|---:|---:|")
    extra = "" if n_plain == args.models else f" (timed {n_plain}, scaled)"
    rows = [(f"one at a time, plain nn.Module + SGD{extra}", t_plain_all),
            (f"stacked, {args.models} at once (train_models' core)", t_stacked),
            ("stacked, whole train_models into a new store", t_e2e)]
    for name, t in rows:
        print(f"| {name} | {t:.2f} | {1e3 * t / args.models:.1f} | {t_plain_all / t:.1f}x |")
    print(f"\nmax |val logits, stacked - one at a time| over {n_plain} models: {diff:.2e}")
    goal = 10.0 * args.models / 100
    print(f"goal: {goal:.0f} s for {args.models} models -> "
          f"{'met' if t_e2e <= goal else 'NOT met'} ({t_e2e:.2f} s end to end)")


def random_cifar(n_train, n_val, device, size: int = 32):
    """CIFAR-10-shaped random images (uint8, ``size`` x ``size``) and labels on ``device``."""
    g = torch.Generator().manual_seed(0)
    return data.TensorDataset(
        name="CIFAR10",
        train_x=torch.randint(0, 256, (n_train, 3, size, size), generator=g, dtype=torch.uint8),
        train_y=torch.randint(0, 10, (n_train,), generator=g),
        val_x=torch.randint(0, 256, (n_val, 3, size, size), generator=g, dtype=torch.uint8),
        val_y=torch.randint(0, 10, (n_val,), generator=g),
        classes=data.CIFAR10_CLASSES, mean=data.CIFAR10_MEAN, std=data.CIFAR10_STD,
    ).to(device)


def bench_resnet9(args):
    device = devices.resolve_device(args.device)
    d = random_cifar(args.n_train, args.n_val, device)
    base = train.default_config("cifar10", batch_size=args.batch_size or 512)
    epochs = args.epochs or base.epochs
    flop = RESNET9_FLOP_PER_MODEL * (epochs / 24) * (args.n_train / 50_000)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    peak = args.peak_tflops * 1e12
    idx = np.arange(d.n_train)
    print(f"\nResNet-9, {epochs} epochs of CIFAR-10-shaped random data ({args.n_train} train, "
          f"{args.n_val} test images), batch {base.batch_size}, {name}\n")
    print("| models at once | s per model | TFLOP/s | fraction of bf16 peak "
          f"({args.peak_tflops:.0f} TFLOP/s) |")
    print("|---:|---:|---:|---:|")
    stacks = [int(s) for s in args.stacks.split(",")]
    if device.type == "cuda":
        auto = train.choose_stack(base, d, device, max(stacks))
    for m in stacks:
        cfg = train.default_config("cifar10", epochs=epochs, stack=m, batch_size=base.batch_size,
                                   peak_epoch=base.peak_epoch * epochs / base.epochs)
        inits = [stack.init_state_dict("resnet9", i) for i in range(m)]
        warm = dataclasses.replace(cfg, epochs=1, peak_epoch=0.5)
        train.fit(d, idx[: 4 * base.batch_size], inits, list(range(m)), warm, device,
                  progress=False)  # warm-up: kernels, allocator
        if device.type == "cuda":
            torch.cuda.synchronize(device)

        def run():
            out = train.fit(d, idx, inits, list(range(m)), cfg, device, progress=False)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            return out

        t, _ = best_of(args.repeat, run)
        per_model = t / m
        print(f"| {m} | {per_model:.2f} | {flop / per_model / 1e12:.1f} | "
              f"{flop / per_model / peak:.1%} |")
    if device.type == "cuda":
        print(f"\nstack='auto' picks {auto} on this device")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="digits_mlp", choices=["digits_mlp", "resnet9"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--models", type=int, default=100, help="DIGITS: models to train")
    p.add_argument("--plain-models", type=int, default=None,
                   help="DIGITS: time only this many one at a time and scale (default: all)")
    p.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    p.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--stacks", default="1,2,4", help="resnet9: models at once to compare")
    p.add_argument("--n-train", type=int, default=50_000, help="resnet9: train images")
    p.add_argument("--n-val", type=int, default=10_000, help="resnet9: test images")
    p.add_argument("--batch-size", type=int, default=None, help="resnet9: default 512")
    p.add_argument("--peak-tflops", type=float, default=790.0,
                   help="resnet9: the device's bf16 peak (default: H200, about 790)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.arch == "digits_mlp":
        bench_digits(args)
    else:
        bench_resnet9(args)


if __name__ == "__main__":
    main()

"""GPU check: what the package does on one CUDA GPU, in one run (under 8 minutes on an H200).

Prints markdown tables:

1. ResNet-9 on the paper recipe (``train.default_config("cifar10")``: 24 epochs, batch 512,
   bf16 autocast, channels-last) on random CIFAR-10-shaped data kept on the device: seconds
   per model for stacks of 1, 2, 4, 8 models, and the fraction of the bf16 peak (790 TFLOP/s
   on an H200) at about 2.1 PFLOP per model. The time of an epoch is measured as the
   difference of a ``fit`` of 1 and of 1 + ``--epochs`` epochs (so warm-up, cuDNN autotuning
   and the final evaluation cancel out), then scaled to 24 epochs.
2. Stacked unlearning on ResNet-9: every built-in method with its CIFAR10 settings, on a
   random forget set and a random retain subset (``--retain``; the methods that pass over
   the retain set scale with it), seconds per model alone and in stacks.
3. KLOM on 60,000 examples x 100 unlearned vs 100 oracle margins held on the device.
4. Margins of originals, oracles and unlearned models come from the same float32 evaluation:
   a tiny store trained and unlearned on the GPU; every folder's stored logits against a plain
   float32 forward of its checkpoint (and, for scale, a bf16 one).

Then it runs the gpu-marked tests (``pytest -m gpu``). Without CUDA it says so in one line
and exits 2. ``--device cpu --tiny`` runs every step on the CPU at toy sizes (a check of the
code paths, not a measurement).

    python scripts/gpu_check.py                  # on a machine with a CUDA GPU
    python scripts/gpu_check.py --device cpu --tiny
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from klom_utils import devices, stack, train  # noqa: E402
from klom_utils import unlearning as unlearn  # noqa: E402
from klom_utils.layout import full_models_folder, oracle_folder, unlearned_folder
from klom_utils.metric import klom  # noqa: E402
from klom_utils.models import load_model  # noqa: E402
from klom_utils.store import open_store  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_train import RESNET9_FLOP_PER_MODEL, random_cifar  # noqa: E402

BUILTIN = ("do_nothing", "gradient_ascent", "gradient_descent", "neggrad_plus", "scrub",
           "oracle_matching", "datamodel_matching", "datamodel_direct")


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device, fn):
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def check_training(args, device) -> None:
    recipe = train.default_config("cifar10", batch_size=args.batch_size)
    d = random_cifar(args.n_train, args.n_val, device, args.image_size)
    idx = np.arange(d.n_train)
    flop = RESNET9_FLOP_PER_MODEL * d.n_train / 50_000
    print(f"\n## 1. ResNet-9 training, paper recipe ({recipe.epochs} epochs, batch "
          f"{recipe.batch_size}, lr {recipe.lr}), {d.n_train} random images on the device\n")
    print(f"| models at once | s per epoch per model | s per model ({recipe.epochs} epochs) | "
          f"TFLOP/s | fraction of bf16 peak ({args.peak_tflops:.0f} TFLOP/s) |")
    print("|---:|---:|---:|---:|---:|")
    for m in args.stacks:
        inits = [stack.init_state_dict("resnet9", i) for i in range(m)]

        def fit(epochs, rows=idx):
            cfg = dataclasses.replace(recipe, epochs=epochs, stack=m,
                                      peak_epoch=recipe.peak_epoch * epochs / recipe.epochs)
            return timed(device, lambda: train.fit(d, rows, inits, list(range(m)), cfg, device,
                                                   progress=False))[0]

        fit(1, idx[:4 * recipe.batch_size])  # warm-up: cuDNN autotuning, the allocator
        short, long = fit(1), fit(1 + args.epochs)
        per_epoch = max(long - short, 1e-9) / args.epochs / m
        per_model = per_epoch * recipe.epochs
        rate = flop / per_model
        print(f"| {m} | {per_epoch:.3f} | {per_model:.2f} | {rate / 1e12:.1f} | "
              f"{rate / (args.peak_tflops * 1e12):.1%} |", flush=True)
    if device.type == "cuda":
        print(f"\n`stack='auto'` (train_models) picks {train.choose_stack(recipe, d, device, 8)} "
              "on this device; goal: >= 40% of peak (about 6.6 s per model on an H200)")


def unlearn_data(d, n_forget: int, n_retain: int, device):
    """Forget set: the first ``n_forget`` images; retain: the next ``n_retain``; random
    oracle logits and datamodel shift (the cost does not depend on their values)."""
    g = torch.Generator().manual_seed(1)
    sub = dataclasses.replace(d, train_x=d.train_x[:n_forget + n_retain],
                              train_y=d.train_y[:n_forget + n_retain])
    n = sub.n_train + sub.n_val
    return unlearn.UnlearnData.from_dataset(
        sub, np.arange(n_forget), device=device,
        oracle_train_logits=torch.randn(sub.n_train, 10, generator=g),
        datamodel_shift=0.1 * torch.randn(n, 10, generator=g))


def check_unlearning(args, device) -> None:
    d = random_cifar(args.n_forget + args.retain, args.n_val, device, args.image_size)
    udata = unlearn_data(d, args.n_forget, args.retain, device)
    sizes = args.unlearn_stacks
    print(f"\n## 2. Stacked unlearning, ResNet-9, CIFAR10 settings; forget {args.n_forget}, "
          f"retain {args.retain}, logits on {udata.train_x.shape[0] + udata.val_x.shape[0]} "
          "images\n")
    print("| method | " + " | ".join(f"s per model, {m} at once" for m in sizes)
          + f" | speed-up {sizes[-1]} vs {sizes[0]} |")
    print("|---|" + "---:|" * (len(sizes) + 1))
    with devices.device_settings(None, device):
        for name in args.methods:
            spec = unlearn.get_method(name)
            keys = unlearn.default_config(spec, "cifar10")
            config = unlearn.resolve_config(spec, "cifar10", {
                k: v for k, v in args.method_overrides.items() if k in keys})
            warm = {**config, **{k: 1 for k in ("epochs", "max_epochs") if k in keys}}
            per_model = []
            for m in sizes:
                models = [load_model(stack.init_state_dict("resnet9", i)) for i in range(m)]
                gens = unlearn._generators(spec, range(m), "CIFAR10", 1, 0)

                def run(settings):
                    out = spec.on_stack(stack.ModelStack.of(models, device=device), udata,
                                        dict(settings), generators=gens)
                    return unlearn._outputs(spec, out, m, udata.train_x, udata.val_x, False)

                run(warm)  # warm-up (one epoch): cuDNN autotuning of this stack's shapes
                seconds, _ = timed(device, lambda: run(config))
                per_model.append(seconds / m)
            print(f"| {name} | " + " | ".join(f"{t:.3f}" for t in per_model)
                  + f" | {per_model[0] / per_model[-1]:.1f}x |", flush=True)


def check_klom(args, device) -> None:
    g = torch.Generator(device=device).manual_seed(0)
    shape = (args.klom_models, args.klom_examples)
    u = torch.randn(shape, generator=g, device=device) + 0.5
    o = torch.randn(shape, generator=g, device=device)
    klom(unlearned=u[:, :100], oracle=o[:, :100])  # first call: compiles or loads the kernel
    seconds, scores = timed(device, lambda: klom(unlearned=u, oracle=o))
    print(f"\n## 3. KLOM, {shape[1]} examples x {shape[0]} unlearned vs {shape[0]} oracle "
          f"margins (on {device.type}, copied to the CPU by klom)\n")
    print("| seconds | examples per second | mean KLOM |")
    print("|---:|---:|---:|")
    print(f"| {seconds:.2f} | {shape[1] / seconds:,.0f} | {float(np.mean(scores)):.3f} |")


def check_evaluation(args, device) -> bool:
    """Stored logits of originals, oracles and unlearned models against a plain float32
    forward of their checkpoints; True when every folder matches to float32 rounding."""
    d = random_cifar(args.eval_train, 64, "cpu", args.image_size)
    cfg = train.default_config("cifar10", epochs=1, peak_epoch=0.5, batch_size=32, stack=2)
    methods = ("do_nothing", "gradient_descent", "scrub")
    rows, ok = [], True
    with tempfile.TemporaryDirectory(prefix="klom-gpu-check-") as root:
        store = open_store(root, create=True)
        store.write_forget_set("CIFAR10", 1, np.arange(8))
        train.train_models(d, store, range(2), device=device, config=cfg, progress=False)
        train.train_models(d, store, range(2), forget_set=1, device=device, config=cfg,
                           progress=False)
        folders = [full_models_folder("CIFAR10"), oracle_folder("CIFAR10", 1)]
        for name in methods:
            small = {"epochs": 1, **({"max_epochs": 1} if name == "scrub" else {})}
            run = unlearn.unlearn_store(store, d, 1, name, range(2), device=device,
                                        config=small if name != "do_nothing" else None,
                                        save_checkpoints=True, stack=2, progress=False)
            folders.append(run["folder"])
        x = d.normalize(d.train_x, device=device)
        for folder in folders:
            f32 = bf16 = 0.0
            for i in range(2):
                model = load_model(store.state_dict(folder, i), device=device).eval()
                stored = store.logits(folder, "train", i)
                with torch.no_grad(), torch.autocast(device.type, enabled=False):
                    plain = model(x).float().cpu()
                with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
                    low = model(x).float().cpu()
                f32 = max(f32, float((stored - plain).abs().max()))
                bf16 = max(bf16, float((stored - low).abs().max()))
            same = f32 <= 1e-3 and (device.type != "cuda" or f32 < bf16)
            ok &= same
            rows.append((folder, f32, bf16, same))
        originals = store.logits(full_models_folder("CIFAR10"), "train", 0)
        nothing = store.logits(unlearned_folder("CIFAR10", "do_nothing", 1), "train", 0)
        gap = float((originals - nothing).abs().max())
    tf32 = torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32
    print(f"\n## 4. One float32 evaluation for every folder (logits on {d.n_train} train "
          f"images; TF32 allowed: {tf32})\n")
    print("| folder | max abs vs float32 forward | max abs vs bf16 forward | same evaluation |")
    print("|---|---:|---:|:---:|")
    for folder, f32, bf16, same in rows:
        print(f"| {folder} | {f32:.2e} | {bf16:.2e} | {'yes' if same else 'NO'} |")
    print(f"\ndo nothing against the originals (same weights, evaluated when unlearning): "
          f"max abs {gap:.2e}")
    return ok and gap <= 1e-3


def run_gpu_tests() -> int:
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
           "tests"]
    print(f"\n## 5. gpu-marked tests: {' '.join(cmd[1:])}\n", flush=True)
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    print("\n".join((done.stdout + done.stderr).strip().splitlines()[-15:]))
    return done.returncode


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--tiny", action="store_true", help="toy sizes (to check the code paths)")
    p.add_argument("--peak-tflops", type=float, default=790.0)
    p.add_argument("--skip-tests", action="store_true", help="do not run pytest -m gpu")
    args = p.parse_args(argv)
    sizes = dict(n_train=50_000, n_val=10_000, batch_size=512, epochs=2, stacks=[1, 2, 4, 8], n_forget=500,
                 retain=5_000, unlearn_stacks=[1, 8], klom_examples=60_000, klom_models=100,
                 eval_train=256, methods=list(BUILTIN), image_size=32, method_overrides={})
    if args.tiny:
        sizes.update(n_train=128, n_val=32, batch_size=32, epochs=1, stacks=[1, 2], n_forget=8, retain=64,
                     unlearn_stacks=[1, 2], klom_examples=600, klom_models=10, eval_train=64,
                     image_size=16, method_overrides={"epochs": 1, "max_epochs": 1})
    for key, value in sizes.items():
        setattr(args, key, value)
    return args


def main(argv=None) -> int:
    args = parse(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device (torch {torch.__version__}); nothing measured "
              "(--device cpu --tiny checks the code paths)")
        return 2
    device = torch.device(args.device)
    start = time.perf_counter()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"# GPU check: {name}, torch {torch.__version__}"
          + (", toy sizes" if args.tiny else ""))
    for check in (check_training, check_unlearning, check_klom):
        check(args, device)
        print(f"\n({time.perf_counter() - start:.0f} s so far)", flush=True)
    same = check_evaluation(args, device)
    tests = 0 if args.skip_tests else run_gpu_tests()
    print(f"\ntotal {time.perf_counter() - start:.0f} s; same float32 evaluation: "
          f"{'yes' if same else 'NO'}; gpu tests: {'passed' if tests == 0 else 'FAILED'}")
    return 0 if same and tests == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

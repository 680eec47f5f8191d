"""Writing models into a store and reading them back, against a baseline commit, in one run.

Writes 100 DIGITS-sized models (train logits 1,442 x 10, val logits 355 x 10, their margins, no
checkpoint: what unlearning writes) into a fresh folder, then reads every model's val logits
and train margins back (as a comparison's selection score does), with the package of this
checkout and with ``klom_utils`` at ``--baseline`` (imported beside it, ``scripts/baseline.py``).
Prints milliseconds per model, best of ``--repeats``, and the ratio.
"""

import argparse
import os
import shutil
import tempfile
import time

import numpy as np
import torch
from baseline import baseline_module

from klom_utils import store as current

N_MODELS, N_TRAIN, N_VAL, CLASSES = 100, 1442, 355, 10


def write_and_read(module, root, train, val, train_y, val_y):
    """Seconds to write the models (one call per chunk where the module has one), and to read
    them back."""
    store = module.open_store(root, create=True)
    ids = list(range(N_MODELS))
    start = time.perf_counter()
    if hasattr(store, "write_models"):
        store.write_models("m", ids, train_logits=train, val_logits=val, train_labels=train_y,
                           val_labels=val_y, epoch=0)
    else:
        for j in ids:
            store.write_model("m", j, train_logits=train[j], val_logits=val[j],
                              train_labels=train_y, val_labels=val_y, epoch=0)
    written = time.perf_counter() - start
    start = time.perf_counter()
    store.logits_of("m", "val", ids)
    store.margins("m", "train", model_ids=ids)
    return written, time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", default="5ac13c5", help="commit to compare with")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    old = baseline_module("store", rev=args.baseline,
                          needs=("easydub", "files", "layout", "metric", "binning", "_typing"))
    gen = torch.Generator().manual_seed(0)
    train = torch.randn(N_MODELS, N_TRAIN, CLASSES, generator=gen)
    val = torch.randn(N_MODELS, N_VAL, CLASSES, generator=gen)
    rng = np.random.default_rng(0)
    train_y, val_y = rng.integers(0, CLASSES, N_TRAIN), rng.integers(0, CLASSES, N_VAL)
    best = {}
    folder = tempfile.mkdtemp(prefix="bench_store_")
    try:
        for _ in range(args.repeats):  # alternated, so that drift hits both alike
            for name, module in (("baseline", old), ("new", current)):
                if module is None:
                    continue
                root = os.path.join(folder, name)
                shutil.rmtree(root, ignore_errors=True)
                times = write_and_read(module, root, train, val, train_y, val_y)
                best[name] = [min(a, b) for a, b in zip(best.get(name, times), times)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{N_MODELS} DIGITS models (4 files each), ms per model, best of {args.repeats}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'step':<36s}{'baseline':>10s}{'new':>10s}{'new/base':>10s}")
    for i, step in enumerate(("write (logits, margins)", "read back (val logits, margins)")):
        new = best["new"][i] * 1e3 / N_MODELS
        base = best["baseline"][i] * 1e3 / N_MODELS if "baseline" in best else float("nan")
        print(f"{step:<36s}{base:10.2f}{new:10.2f}{new / base:10.2f}")


if __name__ == "__main__":
    main()

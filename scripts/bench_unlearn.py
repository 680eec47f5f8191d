"""Benchmark: unlearning many models at once (stacked) against one model at a time.

For every built-in method, ``unlearn_store`` on the same DIGITS models twice in the same run:
one model at a time (``stack=1``) and stacked (``stack="auto"``: all the models at once), into
a fresh temporary store (full models, held-out oracles for oracle matching, and a random
datamodel file for the datamodel methods). Both include loading the checkpoints, computing
the logits and writing them. Prints a markdown table of times and ratios, and whether every
model's logits are bit-identical both ways.

    python scripts/bench_unlearn.py                 # 100 models, every built-in method
    python scripts/bench_unlearn.py --models 10 --methods scrub,do_nothing
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from klom_utils import data, train  # noqa: E402
from klom_utils import unlearning as unlearn  # noqa: E402
from klom_utils.layout import unlearned_folder  # noqa: E402
from klom_utils.store import open_store

BUILTIN = ("do_nothing", "gradient_ascent", "gradient_descent", "neggrad_plus", "scrub",
           "oracle_matching", "datamodel_matching", "datamodel_direct")
#: The methods chapter 05 runs on each of its 3 forget sets.
BOOK_METHODS = BUILTIN[:6]
HELD_OUT = range(unlearn.HELD_OUT_ORACLE_START, unlearn.HELD_OUT_ORACLE_START + 4)


def make_store(root, d, n_models: int, forget_set: int) -> str:
    """Full models 0..n-1, held-out oracles of ``forget_set``, a random datamodel file."""
    start = time.perf_counter()
    train.train_models(d, root, range(n_models), progress=False)
    train.train_models(d, root, HELD_OUT, forget_set=forget_set, progress=False)
    path = os.path.join(root, "random_datamodel.npy")
    theta = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16,
                                      shape=(d.n_train, d.n_train + d.n_val, d.num_classes))
    rng = np.random.default_rng(0)
    for i in range(0, d.n_train, 256):
        theta[i:i + 256] = 1e-3 * rng.standard_normal((len(theta[i:i + 256]), *theta.shape[1:]))
    theta.flush()
    print(f"store: {n_models} models, {len(HELD_OUT)} held-out oracles, random datamodel "
          f"({time.perf_counter() - start:.1f} s)")
    return path


def same_logits(store, a: str, b: str, ids) -> bool:
    return all(torch.equal(store.logits(a, split, i), store.logits(b, split, i))
               for i in ids for split in ("train", "val"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=int, default=100, help="DIGITS models to unlearn")
    p.add_argument("--methods", default=",".join(BUILTIN), help="comma-separated methods")
    p.add_argument("--forget-set", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1, "
                   "what unlearn_store uses for DIGITS)")
    args = p.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in unlearn.METHODS]
    if unknown or args.models < 1:
        p.error(f"unknown methods {unknown}" if unknown else "--models must be >= 1")
    d = data.load_digits()
    ids = range(args.models)
    rows, total = [], {"one": 0.0, "stacked": 0.0, "book_one": 0.0, "book_stacked": 0.0}
    with tempfile.TemporaryDirectory(prefix="klom-bench-unlearn-") as root:
        datamodel = make_store(root, d, args.models, args.forget_set)
        store = open_store(root)
        for name in methods:
            seconds = {}
            for how, stack in (("one", 1), ("stacked", "auto")):
                run = unlearn.unlearn_store(store, d, args.forget_set, name, ids,
                                            name=f"{name}-{how}", stack=stack,
                                            threads=args.threads, progress=False,
                                            datamodel=datamodel)
                seconds[how] = run["seconds"]
                total[how] += run["seconds"]
                if name in BOOK_METHODS:
                    total[f"book_{how}"] += run["seconds"]
            same = same_logits(store, *(unlearned_folder("DIGITS", f"{name}-{how}",
                                                         args.forget_set)
                                        for how in ("one", "stacked")), ids)
            rows.append((name, seconds["one"], seconds["stacked"], same))
            print(f"  {name}: {seconds['one']:.2f} s one at a time, {seconds['stacked']:.2f} s "
                  "stacked", flush=True)
    print(f"\nDIGITS, {args.models} models, forget set {args.forget_set}, unlearn_store "
          f"(load, unlearn, logits, write), CPU, {args.threads} thread(s), "
          f"{os.cpu_count()} cores, torch {torch.__version__}\n")
    print("| method | one at a time (s) | stacked (s) | speed-up | logits bit-identical |")
    print("|---|---:|---:|---:|:---:|")
    for name, one, stacked, same in rows:
        print(f"| {name} | {one:.2f} | {stacked:.2f} | {one / stacked:.1f}x | "
              f"{'yes' if same else 'NO'} |")
    print(f"| all | {total['one']:.2f} | {total['stacked']:.2f} | "
          f"{total['one'] / total['stacked']:.1f}x | |")
    if total["book_stacked"]:
        print(f"\nchapter 05 unlearns {len(BOOK_METHODS)} methods x 3 forget sets: about "
              f"{3 * total['book_one']:.0f} s one at a time -> {3 * total['book_stacked']:.0f} s "
              f"stacked ({3 * (total['book_one'] - total['book_stacked']):.0f} s less in "
              "`make book`; estimated from this forget set)")
    slower = [name for name, one, stacked, _ in rows if stacked >= one]
    scrub = [one / stacked for name, one, stacked, _ in rows if name == "scrub"]
    print("goals: every method faster stacked: " + ("met" if not slower else
                                                    f"NOT met ({', '.join(slower)})")
          + (f"; SCRUB >= 5x: {'met' if scrub[0] >= 5 else 'NOT met'} ({scrub[0]:.1f}x)"
             if scrub else ""))
    return 0 if all(same for *_, same in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Choose the datamodel's settings by measurement: KLOM of ``datamodel_direct`` per setting.

    .venv/bin/python scripts/tune_datamodel.py --store _build/run/store
    .venv/bin/python scripts/tune_datamodel.py --store S --models 1000 2000 --ridges 0.1 0.01

Reads a DIGITS store that has full models 0..N-1 and N oracles of each forget set (``make
book`` writes one under ``_build/run/store``), and for each setting (number of subset
models, fraction, estimator, ridge) estimates the datamodel from subset models kept in a
scratch store beside it (``--scratch``; its ``datamodels/DIGITS/`` is trained on first use and
reused; one folder per fraction), then scores "datamodel direct", the originals' logits plus
the predicted shift, against the oracles with KLOM (canonical, N vs N). Direct needs no
training, so a whole grid takes minutes; datamodel matching fine-tunes towards the same
targets. Prints per setting and forget set the 95th percentiles of forget, retain and
validation, next to doing nothing, and the time the datamodel took.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from klom_utils.data import load_dataset  # noqa: E402
from klom_utils.datamodels import (estimate_datamodel, forget_shift,  # noqa: E402
                                   load_subset_runs, train_subset_models)
from klom_utils.metric import klom, margins, summarize  # noqa: E402
from klom_utils.store import full_models_folder, open_store, oracle_folder  # noqa: E402
from klom_utils.train import forget_indices  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", required=True, help="DIGITS store with full models and oracles")
    p.add_argument("--scratch", default="runs/tune_datamodel", help="where subset models go")
    p.add_argument("--n-models", type=int, default=100, help="N per side")
    p.add_argument("--forget-sets", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--models", type=int, nargs="+", default=[1000, 2000],
                   help="numbers of subset models")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.5])
    p.add_argument("--ridges", type=float, nargs="+", default=[1.0, 0.1, 0.01])
    p.add_argument("--difference", action="store_true", help="also the difference estimator")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    data = load_dataset("digits")
    store = open_store(args.store)
    ids = range(args.n_models)
    labels = np.concatenate([data.train_y.numpy(), data.val_y.numpy()])
    full = np.concatenate([store.logits_of(full_models_folder("DIGITS"), s, ids)
                           for s in ("train", "val")], axis=1)
    sets = {}
    for k in args.forget_sets:
        oracle = np.concatenate([store.logits_of(oracle_folder("DIGITS", k), s, ids)
                                 for s in ("train", "val")], axis=1)
        sets[k] = (forget_indices(store, data, k), margins(oracle, labels))

    def p95s(unlearned_logits, k):
        forget, oracle_margins = sets[k]
        scores = klom(unlearned=margins(unlearned_logits, labels), oracle=oracle_margins)
        return {g: v["p95"] for g, v in summarize(scores, forget=forget,
                                                  n_train=data.n_train).items()}

    rows = [["do nothing", "", ""] + [" / ".join(f"{v:.2f}" for v in p95s(full, k).values())
                                      for k in sets]]
    for fraction in args.fractions:
        scratch = open_store(os.path.join(args.scratch, f"fraction_{fraction}"), create=True)
        for m in args.models:
            start = time.perf_counter()
            train_subset_models(data, scratch, range(m), fraction=fraction, progress=False)
            masks, logits = load_subset_runs(scratch, "DIGITS", data.n_train, range(m))
            trained = time.perf_counter() - start
            settings = [("regression", r) for r in args.ridges]
            settings += [("difference", None)] if args.difference else []
            for estimator, ridge in settings:
                start = time.perf_counter()
                theta = estimate_datamodel(masks, logits, estimator=estimator,
                                           **({"ridge": ridge} if ridge else {}))
                seconds = trained + time.perf_counter() - start
                cells = []
                for k, (forget, _) in sets.items():
                    shifted = full + forget_shift(theta[forget])
                    cells.append(" / ".join(f"{v:.2f}" for v in p95s(shifted, k).values()))
                rows.append([f"{m} at {fraction}", f"{estimator} {ridge or ''}".strip(),
                             f"{seconds:.0f}"] + cells)
                print(" | ".join(rows[-1]), flush=True)
    header = ["subset models", "estimator", "s"] + [f"set {k}: forget / retain / val p95"
                                                    for k in sets]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print()
    for r in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    print(f"\nKLOM canonical, KL(unlearned || oracle), {args.n_models} vs {args.n_models}; "
          "'s': seconds to train (or load) the subset models and estimate")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

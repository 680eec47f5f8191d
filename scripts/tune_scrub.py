"""Tune SCRUB's DIGITS defaults by measurement: KLOM and accuracy of a small grid of configs.

    python scripts/tune_scrub.py                                   # the default grid
    python scripts/tune_scrub.py --forget-sets 3 --configs "lr=0.05,epochs=5" "alpha=0.5"

Builds (or reuses) a DIGITS store with ``--n-models`` full models and as many oracles per
forget set, unlearns them with ``do_nothing`` and with SCRUB under each config (the DIGITS
defaults with the config's overrides; ``lr_milestones`` as ``3/5/9``), scores each against the
oracles, and prints per config and forget set the 95th percentiles of KLOM on the forget,
retain and validation sets, the accuracies (forget/retain/test) and the seconds the unlearning
of all models took. Runs resume: what the store holds is skipped (each config gets its own
folder name). ``--json`` writes the rows.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from klom_utils.data import load_dataset  # noqa: E402
from klom_utils.evaluate import score  # noqa: E402
from klom_utils.train import train_models  # noqa: E402
from klom_utils.unlearning import parse_overrides, resolve_config, unlearn_store  # noqa: E402

#: Part of the grid searched to choose the DIGITS defaults (overrides of the registered
#: defaults; "" is the defaults themselves). The numbers are in klom_utils/unlearn.py.
GRID = [
    "",  # lr 0.05, 10 epochs, max steps in the first 5, gamma 0.99, alpha 0.1, no lr decay
    "epochs=5,max_epochs=3",
    "lr=0.02,epochs=5,max_epochs=3,alpha=0.5",
    "lr=0.05,epochs=5,max_epochs=3,alpha=0.5,forget_batch_size=16",
    "lr=0.05,epochs=5,max_epochs=2,alpha=0.5,lr_milestones=2/4",
    "gamma=0.1,alpha=1",
    "lr=0.1,epochs=5,max_epochs=5",
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", default="runs/tune_scrub/store", help="store folder")
    p.add_argument("--n-models", type=int, default=100, help="N full models and N oracles")
    p.add_argument("--forget-sets", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--configs", nargs="+", default=GRID,
                   help="comma-separated key=value overrides, one string per config")
    p.add_argument("--json", default=None, help="write the rows here")
    return p.parse_args(argv)


def overrides(text: str) -> dict:
    """``"lr=0.1,lr_milestones=3/5"`` -> ``{"lr": "0.1", "lr_milestones": "3,5"}``."""
    items = parse_overrides([t for t in text.split(",") if t.strip()])
    return {k: v.replace("/", ",") for k, v in items.items()}


def folder_name(config: dict) -> str:
    """``scrub-<hash of the whole config>``: one folder per config, whatever the defaults."""
    return "scrub-" + hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def row(name, k, record, seconds):
    acc = record["accuracy"]
    return {"config": name, "forget_set": k, "seconds": round(seconds, 1),
            **{f"{g}_p95": round(record[g]["p95"], 2) for g in ("forget", "retain", "validation")},
            **{f"acc_{g}": round(acc[g], 3) for g in ("forget", "retain", "test")}}


def main(argv=None) -> int:
    args = parse_args(argv)
    data = load_dataset("digits")
    ids = range(args.n_models)
    train_models(data, args.store, ids, progress=False)
    for k in args.forget_sets:
        train_models(data, args.store, ids, forget_set=k, progress=False)
    runs = [("do_nothing", "do_nothing", None)]
    for text in args.configs:
        config = resolve_config("scrub", "digits", overrides(text))
        runs.append((text or "defaults", folder_name(config), config))
    rows = []
    for label, name, config in runs:
        for k in args.forget_sets:
            start = time.perf_counter()
            run = unlearn_store(args.store, data, k, "scrub" if config else "do_nothing", ids,
                                config=config, name=name, progress=False)
            seconds = time.perf_counter() - start if run["written"] else float("nan")
            rows.append(row(label, k, score(args.store, data, k, name),
                            seconds))
            r = rows[-1]
            print(f"{label:<70s} set {k}  KLOM p95 forget {r['forget_p95']:5.2f} retain "
                  f"{r['retain_p95']:5.2f} val {r['validation_p95']:5.2f}  acc "
                  f"{r['acc_forget']:.3f}/{r['acc_retain']:.3f}/{r['acc_test']:.3f}  "
                  f"{r['seconds']:5.1f} s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

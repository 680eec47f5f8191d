"""End to end on DIGITS: train, unlearn with the six methods, score, print the results table.

    python scripts/run_digits_eval.py                         # N = 100, forget sets 1 2 3
    python scripts/run_digits_eval.py --n-models 20 --forget-sets 3 --store /tmp/s

Steps (each resumable: what the store already holds is skipped):
1. train N full models (ids 0..N-1);
2. per forget set k, train 2N oracles (ids 0..2N-1: N to score against, N more for a noise
   floor at the same N) and ``--held-out`` oracles (ids 1000..) that only oracle matching uses
   (scoring never does);
3. per forget set and method, unlearn the N full models (``unlearn_store``);
4. score each (forget set, method) against N oracles (``score``), in both KL directions with
   ``--both-directions``.

Prints the table of 95th percentiles (forget / retain / validation, with intervals for their
expected values at N, the noise floor at the same N),
N, accuracies, and the time each step took; writes the records and timings to ``--out``
(JSON) and, with ``--figures DIR``, the book's three figures as PNG files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from klom_utils.data import load_dataset  # noqa: E402
from klom_utils.evaluate import klom_scores, load_margins, results_table, score  # noqa: E402
from klom_utils.layout import HELD_OUT_ORACLE_START
from klom_utils.train import train_models  # noqa: E402
from klom_utils.unlearning import resolve_config, unlearn_store  # noqa: E402

METHODS = ["do_nothing", "gradient_ascent", "gradient_descent", "neggrad_plus", "scrub",
           "oracle_matching"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", default="runs/digits_eval/store", help="store folder")
    p.add_argument("--n-models", type=int, default=100, help="N full models and N oracles")
    p.add_argument("--held-out", type=int, default=10,
                   help="held-out oracles per forget set for oracle matching (ids 1000..)")
    p.add_argument("--forget-sets", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--methods", nargs="+", default=METHODS)
    p.add_argument("--n-splits", type=int, default=25,
                   help="random half-splits of the models behind each interval")
    p.add_argument("--both-directions", action="store_true",
                   help="also score KL(oracle || unlearned) (data-unlearning-bench's direction)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="runs/digits_eval/records.json", help="records (JSON)")
    p.add_argument("--figures", default=None, metavar="DIR", help="also save figures here")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def timed(timings, step, fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    timings.append({"step": step, "seconds": round(time.perf_counter() - start, 2)})
    print(f"  {step}: {timings[-1]['seconds']:.1f} s", flush=True)
    return out


def save_figures(store, data, records, forget_sets, methods, folder):
    from klom_utils.plots import klom_distributions, margin_histograms, p95_bars

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    p95_bars(records).savefig(folder / "p95_bars.png", dpi=120)
    for k in forget_sets:
        margins = {m: load_margins(store, data, k, m) for m in methods}
        first = next(iter(margins.values()))
        scores = {m: klom_scores(mm) for m, mm in margins.items()}
        klom_distributions(scores, first.forget, first.n_train).savefig(
            folder / f"klom_distributions_{k}.png", dpi=120)
        if "do_nothing" in margins and "oracle_matching" in margins:
            nothing = margins["do_nothing"]
            examples = first.forget[:4]
            margin_histograms(nothing.oracle, margins["oracle_matching"].unlearned,
                              nothing.unlearned, examples,
                              labels=("oracles", "oracle matching", "originals"),
                              titles=[f"forget example {e}" for e in examples]).savefig(
                folder / f"margins_{k}.png", dpi=120)


def main(argv=None) -> int:
    args = parse_args(argv)
    progress = not args.quiet
    data = load_dataset("digits")
    ids = list(range(args.n_models))
    oracle_ids = list(range(2 * args.n_models))
    held_out = list(range(HELD_OUT_ORACLE_START, HELD_OUT_ORACLE_START + args.held_out))
    timings = []
    total = time.perf_counter()

    print(f"store {args.store}: N = {args.n_models}, forget sets {args.forget_sets}")
    timed(timings, f"train {len(ids)} full models", train_models, data, args.store, ids,
          device=args.device, progress=progress)
    for k in args.forget_sets:
        timed(timings, f"train {len(oracle_ids)} + {len(held_out)} held-out oracles, forget set "
              f"{k}", train_models, data, args.store, oracle_ids + held_out, forget_set=k,
              device=args.device, progress=progress)
    for k in args.forget_sets:
        for m in args.methods:
            timed(timings, f"unlearn {m}, forget set {k}", unlearn_store, args.store, data, k,
                  m, ids, device=args.device, progress=progress)
    records, reverse = [], []
    for k in args.forget_sets:
        for m in args.methods:
            records.append(timed(timings, f"score {m}, forget set {k}", score, args.store,
                                 data, k, m, n_splits=args.n_splits))
            if args.both_directions:
                reverse.append(score(args.store, data, k, m, n_splits=args.n_splits,
                                     direction="oracle||unlearned"))
    total = time.perf_counter() - total

    print()
    print(results_table(records))
    if reverse:
        print()
        print(results_table(reverse))
    print()
    print(f"{'step':<55s} seconds")
    for t in timings:
        print(f"{t['step']:<55s} {t['seconds']:8.1f}")
    print(f"{'total':<55s} {total:8.1f}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    configs = {m: resolve_config(m, "digits") for m in args.methods}
    out.write_text(json.dumps({"n_models": args.n_models, "held_out": held_out,
                               "forget_sets": args.forget_sets, "configs": configs,
                               "records": records, "records_oracle_unlearned": reverse,
                               "timings": timings,
                               "total_seconds": round(total, 2)}, indent=2) + "\n")
    print(f"wrote {out}")
    if args.figures:
        from klom_utils.store import open_store

        save_figures(open_store(args.store), data, records, args.forget_sets, args.methods,
                     args.figures)
        print(f"wrote figures to {args.figures}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

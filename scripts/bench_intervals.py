"""Coverage of the intervals of the 95th percentiles, measured by simulation; and their cost.

    .venv/bin/python scripts/bench_intervals.py                 # every setting, 100 replicates
    .venv/bin/python scripts/bench_intervals.py --settings independent shared --replicates 200

What is measured. In each setting there is a pool of 1,000 unlearned models and 1,000 oracles.
A replicate draws ``N = 100`` of each without replacement and computes the point estimate and
interval of each group's 95th percentile (:func:`klom_utils.p95_interval`). The target is the
expected 95th percentile at ``N = 100`` vs ``100``: the mean over ``--truth-draws`` further
draws from the same pools (its standard deviation over those draws, divided by ``sqrt(1 - N /
pool)`` to be that of fresh models rather than of draws from a finite pool, is the "true sd";
the replicates' own draws spread less, so coverage is a little conservative, the more so for
small pools).
Printed per setting and group: coverage (share of replicates whose interval holds the target),
the median of width / (2 z true sd) (1: as wide as an interval built with the true sd), and
whether every interval held its own point estimate; and, as the baseline, the same for the
percentile bootstrap that resamples models with replacement (what the project used before).

Settings: ``independent`` (synthetic normal margins, independent per model and example; the
unlearned models keep a shift on 50 forget examples), ``shared`` (the same with a per-model
effect shared by all examples, correlation 0.3), ``heavy`` (Student-t margins, 3 degrees of
freedom), ``digits_do_nothing`` and ``digits_gradient_ascent`` (DIGITS forget set 2, 50
examples: ``--digits-pool`` (1,000) full models, or the same unlearned by gradient ascent,
against as many oracles; trained once into ``--store`` and reused). The cost: one call on
60,000 examples x 100 vs 100 against one klom call and the previous p95_interval (commit
``--baseline-rev``), in the same run (best of 5 interleaved rounds; ``--no-cost`` skips it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from statistics import NormalDist

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from baseline import BASELINE_REV, baseline_module  # noqa: E402

from klom_utils.metric import group_index, klom  # noqa: E402
from klom_utils.uncertainty import p95_interval  # noqa: E402

GROUPS = ("forget", "retain", "validation")
SYNTHETIC = ("independent", "shared", "heavy")
DIGITS = ("digits_do_nothing", "digits_gradient_ascent")
POOL, N = 1000, 100


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--settings", nargs="*", default=list(SYNTHETIC + DIGITS),
                   choices=list(SYNTHETIC + DIGITS))
    p.add_argument("--replicates", type=int, default=100)
    p.add_argument("--truth-draws", type=int, default=1000)
    p.add_argument("--n-splits", type=int, default=25, help="p95_interval's n_splits")
    p.add_argument("--baseline-resamples", type=int, default=50,
                   help="resamples of the with-replacement bootstrap (0: skip the baseline)")
    p.add_argument("--digits-pool", type=int, default=POOL,
                   help="DIGITS models per pool (trained on first use; fewer: quicker, and the "
                        "replicates' draws overlap more)")
    p.add_argument("--store", default="runs/bench_intervals/store",
                   help="DIGITS store with the pools (trained here on first use)")
    p.add_argument("--no-cost", dest="cost", action="store_false",
                   help="skip the timing on 60,000 examples")
    p.add_argument("--baseline-rev", default=BASELINE_REV,
                   help="git commit of the previous p95_interval, timed beside it")
    p.add_argument("--baseline-splits", type=int, default=25,
                   help="n_splits of the previous p95_interval (its default)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.replicates < 1 or args.truth_draws < 2:
        p.error("--replicates must be >= 1 and --truth-draws >= 2")
    return args


# ------------------------------------------------------------------------------------- pools

def synthetic_pools(name, rng, n_train=2000, n_val=1000, n_forget=50):
    """Pools of unlearned and oracle margins (POOL, n_train + n_val) and the forget set."""
    n = n_train + n_val
    forget = rng.choice(n_train, n_forget, replace=False)
    mu, sd = rng.normal(3, 2, n), rng.uniform(0.5, 2, n)
    shift = np.full(n, 0.05)  # slightly off everywhere, far off on part of the forget set
    shift[forget] = rng.uniform(0, 2, n_forget)

    def draw(offset):
        e = rng.standard_t(3, (POOL, n)) if name == "heavy" else rng.normal(size=(POOL, n))
        if name == "shared":
            e = np.sqrt(0.3) * rng.normal(size=(POOL, 1)) + np.sqrt(0.7) * e
        return (mu + offset + sd * e).astype(np.float32)

    return draw(shift), draw(0.0), forget, n_train


def digits_pools(name, store_dir, pool=POOL, forget_set=2):
    """DIGITS pools from a store (trained here on first use, then read)."""
    from klom_utils.data import load_dataset
    from klom_utils.forget_sets import forget_indices
    from klom_utils.layout import full_models_folder, oracle_folder, unlearned_folder
    from klom_utils.store import folder_margins
    from klom_utils.train import train_models
    from klom_utils.unlearning import unlearn_store

    data = load_dataset("digits")
    ids = range(pool)
    train_models(data, store_dir, ids)
    train_models(data, store_dir, ids, forget_set=forget_set)
    if name == "digits_do_nothing":
        folder = full_models_folder(data.name)
    else:
        unlearn_store(store_dir, data, forget_set, "gradient_ascent", ids)
        folder = unlearned_folder(data.name, "gradient_ascent", forget_set)
    from klom_utils.store import open_store

    store = open_store(store_dir)
    unlearned = folder_margins(store, folder, data, list(ids))
    oracle = folder_margins(store, oracle_folder(data.name, forget_set), data, list(ids))
    return unlearned, oracle, forget_indices(store, data, forget_set), data.n_train


# ------------------------------------------------------------------------------ measurement

def p95s(scores, index):
    return np.array([np.percentile(scores[i], 95) for i in index.values()])


def bootstrap_baseline(u, o, index, rng, resamples, level=0.95):
    """The percentile bootstrap that resamples models with replacement (the old interval)."""
    boot = np.array([p95s(klom(unlearned=u[rng.integers(0, len(u), len(u))],
                               oracle=o[rng.integers(0, len(o), len(o))]), index)
                     for _ in range(resamples)])
    tails = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    return np.percentile(boot, tails, axis=0)


def measure(name, u_pool, o_pool, forget, n_train, args, rng):
    index = group_index(u_pool.shape[1], forget, n_train, None)
    draw = lambda pool: pool[np.sort(rng.choice(len(pool), N, replace=False))]
    truth_p95 = np.array([p95s(klom(unlearned=draw(u_pool), oracle=draw(o_pool)), index)
                          for _ in range(args.truth_draws)])
    # the spread of draws without replacement from a finite pool is that of fresh models times
    # sqrt(1 - N / pool) (exact for a mean): the ideal interval is built with the fresh one
    truth, true_sd = truth_p95.mean(0), truth_p95.std(0, ddof=1) / np.sqrt(1 - N / len(u_pool))
    z = NormalDist().inv_cdf(0.975)
    ours, base, seconds = [], [], []
    for _ in range(args.replicates):
        u, o = draw(u_pool), draw(o_pool)
        start = time.perf_counter()
        ci = p95_interval(unlearned=u, oracle=o, forget=forget, n_train=n_train,
                          n_splits=args.n_splits, seed=int(rng.integers(2**31)))
        seconds.append(time.perf_counter() - start)
        low = np.array([ci[g]["low"] for g in GROUPS])
        high = np.array([ci[g]["high"] for g in GROUPS])
        point = np.array([ci[g]["p95"] for g in GROUPS])
        ours.append((low <= truth) & (truth <= high))
        ours[-1] = np.stack([ours[-1], (high - low) / (2 * z * true_sd),
                             (low <= point) & (point <= high)])
        if args.baseline_resamples:
            b_low, b_high = bootstrap_baseline(u, o, index, rng, args.baseline_resamples)
            base.append(np.stack([(b_low <= truth) & (truth <= b_high),
                                  (b_high - b_low) / (2 * z * true_sd),
                                  (b_low <= point) & (point <= b_high)]))
    rows = []
    for label, res in (("p95_interval", ours), ("bootstrap, models with replacement", base)):
        if not res:
            continue
        res = np.array(res)  # (replicates, 3, groups)
        for j, g in enumerate(GROUPS):
            rows.append([name, label, g, f"{truth[j]:.3f}", f"{true_sd[j]:.4f}",
                         f"{100 * res[:, 0, j].mean():.0f}%", f"{np.median(res[:, 1, j]):.2f}",
                         f"{100 * res[:, 2, j].mean():.0f}%"])
    return rows, float(np.median(seconds)), int(u_pool.shape[1])


def cost_per_call(args, repeats=5):
    """Seconds per p95_interval call on 60,000 examples x 100 vs 100, of one klom call and of
    the previous p95_interval (commit ``--baseline-rev``), best of ``repeats`` interleaved."""
    rng = np.random.default_rng(args.seed)
    n_train, n = 50_000, 60_000
    mu = rng.normal(3, 2, n).astype(np.float32)
    u = mu + rng.normal(size=(N, n)).astype(np.float32)
    o = mu + rng.normal(size=(N, n)).astype(np.float32)
    forget = rng.choice(n_train, 100, replace=False)
    baseline = baseline_module("uncertainty", args.baseline_rev)
    old = baseline.p95_interval if baseline else p95_interval
    kw = dict(unlearned=u, oracle=o, forget=forget, n_train=n_train)
    calls = {"klom": lambda: klom(unlearned=u, oracle=o),
             "p95_interval": lambda: p95_interval(n_splits=args.n_splits, **kw),
             "previous p95_interval": lambda: old(n_splits=args.baseline_splits, **kw)}
    best = {name: np.inf for name in calls}
    for call in calls.values():  # warm up (compiles or loads the kernels)
        call()
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def main(argv=None):
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print(f"N = {N} vs {N} drawn from pools of {POOL} (DIGITS: {args.digits_pool}); "
          f"{args.replicates} replicates; target: "
          f"mean p95 over {args.truth_draws} draws; 95% intervals; n_splits={args.n_splits}; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    rows, costs = [], []
    for name in args.settings:
        start = time.perf_counter()
        pools = (synthetic_pools(name, rng) if name in SYNTHETIC
                 else digits_pools(name, args.store, args.digits_pool))
        found, seconds, n_examples = measure(name, *pools, args, rng)
        rows += found
        costs.append([name, str(n_examples), f"{seconds:.3f}"])
        print(f"  {name}: {time.perf_counter() - start:.0f} s", flush=True)
    print()
    print(table(["setting", "interval", "group", "target p95", "true sd", "coverage",
                 "width / (2 z true sd)", "holds its estimate"], rows))
    print()
    print(table(["setting", "examples", "seconds per p95_interval call (median)"], costs))
    if args.cost:
        best = cost_per_call(args)
        one = best["klom"]
        print(f"\n60,000 examples x {N} vs {N} models (float32), best of 5 interleaved rounds, load "
              f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores:")
        print(table(["call", "seconds", "klom calls"],
                    [["klom (one call)", f"{one:.4f}", "1"],
                     [f"p95_interval, n_splits={args.n_splits}", f"{best['p95_interval']:.4f}",
                      f"{best['p95_interval'] / one:.1f}"],
                     [f"previous p95_interval (commit {args.baseline_rev}), "
                      f"n_splits={args.baseline_splits}", f"{best['previous p95_interval']:.4f}",
                      f"{best['previous p95_interval'] / one:.1f}"]]))

if __name__ == "__main__":
    main()

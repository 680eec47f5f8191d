"""Benchmark: ``klom_utils.metric.klom`` against a read-only pass over the same margins, the
previous implementation and a plain per-example loop.

All compute the canonical KLOM (clip, np.histogram on the joint range, q floored at eps where
p > 0, no renormalisation). The read-only pass is ``np.add.reduce`` over both arrays (what
reading the margins once costs: KLOM's floor). The previous implementation is the package at
commit ``--baseline-rev`` (``scripts/baseline.py``); the script checks that both give the same
scores bit for bit, in every variant and direction. The one-off cost of the first call in a
process (numba compiling the kernels, or loading them from its cache) is measured and printed
apart. By default the loop runs over every example; ``--loop-examples`` times it on fewer and
extrapolates linearly. The results are checked to agree.

    python scripts/bench_klom.py                 # 60,000 examples, 100 vs 100 models
    python scripts/bench_klom.py --examples 10000 --models 200 --loop-examples 1000
"""

import argparse
import os
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from baseline import BASELINE_REV, baseline_module  # noqa: E402

from klom_utils.metric import DIRECTIONS, VARIANTS, klom  # noqa: E402


def klom_loop(unlearned, oracle, bins=20, eps=1e-5, clip=(-100.0, 100.0)):
    """The plain implementation: np.clip and np.histogram, one example at a time."""
    out = np.empty(unlearned.shape[1])
    for e in range(unlearned.shape[1]):
        u = np.clip(unlearned[:, e].astype(np.float64), *clip)
        o = np.clip(oracle[:, e].astype(np.float64), *clip)
        lo, hi = min(u.min(), o.min()), max(u.max(), o.max())
        if lo == hi:
            out[e] = 0.0
            continue
        p = np.histogram(u, bins=bins, range=(lo, hi))[0] / len(u)
        q = np.histogram(o, bins=bins, range=(lo, hi))[0] / len(o)
        m = p > 0
        out[e] = np.sum(p[m] * np.log(p[m] / np.maximum(q[m], eps)))
    return out


def synthetic_margins(n_models, n_examples, seed=0):
    """Random float32 margins with some shifted examples, ties and point masses."""
    rng = np.random.default_rng(seed)
    shift = rng.normal(0, 1, n_examples) * (rng.random(n_examples) < 0.2)
    scale = rng.uniform(0.5, 3.0, n_examples)
    oracle = rng.normal(2.0, 1.0, (n_models, n_examples)) * scale
    unlearned = rng.normal(2.0, 1.0, (n_models, n_examples)) * scale + shift
    ties = rng.random(n_examples) < 0.1  # values rounded to 0.5: many ties, values on edges
    unlearned[:, ties] = np.round(unlearned[:, ties] * 2) / 2
    oracle[:, ties] = np.round(oracle[:, ties] * 2) / 2
    point = rng.random(n_examples) < 0.05  # unlearned models all give the same margin
    unlearned[:, point] = 8.0
    return unlearned.astype(np.float32), oracle.astype(np.float32)


def interleaved_best(fns, repeats):
    """Best wall-clock and CPU (all threads) time of each function over `repeats` rounds,
    running them in turn so that both see the same machine load; and the last results."""
    wall, cpu = [float("inf")] * len(fns), [float("inf")] * len(fns)
    results = [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            results[i] = fn()
            cpu[i] = min(cpu[i], time.process_time() - start_cpu)
            wall[i] = min(wall[i], time.perf_counter() - start_wall)
    return wall, cpu, results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=60_000)
    parser.add_argument("--models", type=int, default=100, help="models per group")
    parser.add_argument("--loop-examples", type=int, default=None,
                        help="time the per-example loop on this many examples and extrapolate "
                             "(default: all of them)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="best of this many rounds (each round runs all, in turn)")
    parser.add_argument("--baseline-rev", default=BASELINE_REV,
                        help="git commit of the previous implementation")
    args = parser.parse_args()
    for name in ("examples", "models", "loop_examples", "repeats"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")

    unlearned, oracle = synthetic_margins(args.models, args.examples)
    n_loop = min(args.loop_examples or args.examples, args.examples)
    print(f"KLOM, canonical: {args.examples:,} examples, {args.models} unlearned vs "
          f"{args.models} oracle models (float32 margins), 20 bins; best of {args.repeats} "
          f"interleaved rounds; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    baseline = baseline_module("metric", args.baseline_rev)
    old_klom = baseline.klom if baseline else klom
    start = time.perf_counter()  # numba compiles the kernels, or loads them from its cache
    klom(unlearned=unlearned[:, :10], oracle=oracle[:, :10])
    first_call = time.perf_counter() - start
    old_klom(unlearned=unlearned[:, :10], oracle=oracle[:, :10])
    wall, cpu, (_, ours, old, loop) = interleaved_best(
        [lambda: (np.add.reduce(unlearned), np.add.reduce(oracle)),
         lambda: klom(unlearned=unlearned, oracle=oracle),
         lambda: old_klom(unlearned=unlearned, oracle=oracle),
         lambda: klom_loop(unlearned[:, :n_loop], oracle[:, :n_loop])], args.repeats)
    scale = args.examples / n_loop  # the loop is linear in the number of examples
    wall[3], cpu[3] = wall[3] * scale, cpu[3] * scale

    diff = np.max(np.abs(ours[:n_loop] - loop)) if n_loop else 0.0
    if not diff <= 1e-12:
        raise SystemExit(f"results disagree: max |ours - loop| = {diff:.3g}")
    rows = [
        ("read-only pass: np.add.reduce over both arrays", wall[0], cpu[0]),
        ("klom_utils.metric.klom", wall[1], cpu[1]),
        (f"previous klom (commit {args.baseline_rev})", wall[2], cpu[2]),
        (f"per-example loop (timed on {n_loop:,} examples, x{scale:.1f})", wall[3], cpu[3]),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'implementation':<{width}}  {'wall (s)':>8}  {'CPU (s)':>8}  {'/ read-only':>11}"
          f"  {'klom faster, wall':>17}")
    for name, w, c in rows:
        print(f"{name:<{width}}  {w:8.4f}  {c:8.4f}  {w / wall[0]:10.1f}x  {w / wall[1]:16.1f}x")
    print(f"klom: {wall[1] / wall[0]:.2f} times the read-only pass (wall; CPU "
          f"{cpu[1] / cpu[0]:.2f}), {wall[2] / wall[1]:.2f} times faster than the previous "
          f"implementation; load average after the run {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores (other processes share the machine)")
    print(f"results agree with the loop on the {n_loop:,} looped examples: max |diff| = {diff:.1e}")
    same = [f"{v}/{d}" for v in VARIANTS for d in DIRECTIONS for a in (np.float32, np.float64)
            if np.array_equal(klom(unlearned=unlearned.astype(a), oracle=oracle.astype(a),
                                   variant=v, direction=d),
                              old_klom(unlearned=unlearned.astype(a), oracle=oracle.astype(a),
                                       variant=v, direction=d), equal_nan=True)]
    print(f"bit for bit equal to the previous implementation (float32 and float64 margins): "
          f"{len(same)} of {2 * len(VARIANTS) * len(DIRECTIONS)} (variant, direction, dtype)")
    print(f"one-off cost of the first klom call in a process (compiling the kernels, or loading "
          f"them from numba's cache): {first_call:.2f} s, not included above")
    tracemalloc.start()  # numpy reports its allocations to tracemalloc
    klom(unlearned=unlearned, oracle=oracle)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"memory: input {(unlearned.nbytes + oracle.nbytes) / 2**20:.0f} MiB; peak allocated "
          f"during one klom call {peak / 2**20:.1f} MiB (tracemalloc, separate untimed run; "
          f"numba's own buffers, a few per chunk of examples, are not counted)")


if __name__ == "__main__":
    main()

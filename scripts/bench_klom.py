"""Benchmark: vectorised ``klom_utils.metric.klom`` against a plain per-example loop.

Both compute the canonical KLOM (clip, np.histogram on the joint range, q floored at eps where
p > 0, no renormalisation). The one-off cost of the first call in a process (numba compiling
the counting kernel, or loading it from its cache) is measured and printed apart. By default
the loop runs over every example; ``--loop-examples`` times it on fewer and extrapolates
linearly. The results are checked to agree.

    python scripts/bench_klom.py                 # 60,000 examples, 100 vs 100 models
    python scripts/bench_klom.py --examples 10000 --models 200 --loop-examples 1000
"""

import argparse
import os
import time
import tracemalloc

import numpy as np

from klom_utils.metric import klom


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
    parser.add_argument("--repeats", type=int, default=3,
                        help="best of this many rounds (each round runs both, in turn)")
    args = parser.parse_args()
    for name in ("examples", "models", "loop_examples", "repeats"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")

    unlearned, oracle = synthetic_margins(args.models, args.examples)
    n_loop = min(args.loop_examples or args.examples, args.examples)
    print(f"KLOM, canonical: {args.examples:,} examples, {args.models} unlearned vs "
          f"{args.models} oracle models (float32 margins), 20 bins; best of {args.repeats} "
          f"interleaved rounds")

    start = time.perf_counter()  # numba compiles the kernel, or loads it from its cache
    klom(unlearned=unlearned[:, :10], oracle=oracle[:, :10])
    first_call = time.perf_counter() - start
    (w_ours, w_loop), (c_ours, c_loop), (ours, loop) = interleaved_best(
        [lambda: klom(unlearned=unlearned, oracle=oracle),
         lambda: klom_loop(unlearned[:, :n_loop], oracle[:, :n_loop])], args.repeats)
    scale = args.examples / n_loop  # the loop is linear in the number of examples
    w_loop, c_loop = w_loop * scale, c_loop * scale

    diff = np.max(np.abs(ours[:n_loop] - loop)) if n_loop else 0.0
    if not diff <= 1e-12:
        raise SystemExit(f"results disagree: max |ours - loop| = {diff:.3g}")

    rows = [
        (f"per-example loop (timed on {n_loop:,} examples, x{scale:.1f})", w_loop, c_loop),
        ("klom_utils.metric.klom (all examples)", w_ours, c_ours),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'implementation':<{width}}  {'wall (s)':>8}  {'CPU (s)':>8}  {'speed-up wall':>13}"
          f"  {'speed-up CPU':>12}")
    for name, wall, cpu in rows:
        print(f"{name:<{width}}  {wall:8.3f}  {cpu:8.3f}  {w_loop / wall:12.0f}x"
              f"  {c_loop / cpu:11.0f}x")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          f"(other processes share the machine; wall-clock ratios suffer most)")
    print(f"results agree on the {n_loop:,} looped examples: max |diff| = {diff:.1e}")
    print(f"one-off cost of the first klom call in a process (compiling the kernel, or loading "
          f"it from numba's cache): {first_call:.2f} s, not included above")
    tracemalloc.start()  # numpy reports its allocations to tracemalloc
    klom(unlearned=unlearned, oracle=oracle)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"memory: input {(unlearned.nbytes + oracle.nbytes) / 2**20:.0f} MiB; peak allocated "
          f"during one klom call {peak / 2**20:.1f} MiB (tracemalloc, separate untimed run)")


if __name__ == "__main__":
    main()

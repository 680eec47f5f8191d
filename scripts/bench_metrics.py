"""Simulation and benchmark of the other lenses (``klom_utils.lenses``): U-LiRA, KS, accuracy
gaps and ToW.

1. **Nulls** (unlearned models drawn exactly as the oracles): how often U-LiRA's interval holds
   0.5 on each group, and whether the model-level KS forget-quality p-values are uniform
   (the share below 0.01, 0.05, 0.10 and 0.50, and their mean).
2. **Coverage** where the unlearned models differ (a share of forget examples shifted): for
   each lens, the share of replicates whose interval holds the expected value at this N (the
   mean over all replicates), the mean interval width, and that width over the ideal one
   (an interval built with the spread of the estimate over the replicates: 1 = as wide).
3. **Speed**: all lenses of one score on 60,000 examples x 100 vs 100 models (1,000 forget
   examples), as a ratio to one KLOM call measured in the same run, with and without the
   intervals; and the machine's load average.

Margins are synthetic: per example a mean and scale, per model a shared random effect (models
differ as a whole, so examples are correlated through the models, as in real stores).

    python scripts/bench_metrics.py              # about 10 minutes on 2 cores
    python scripts/bench_metrics.py --reps 100 --skip-speed
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from baseline import baseline_module  # noqa: E402

from klom_utils.accuracy_gaps import model_accuracies  # noqa: E402
from klom_utils.lenses import compute_lenses  # noqa: E402
from klom_utils.metric import klom  # noqa: E402

#: The commit before the accuracy lens counted in one compiled pass (boolean copies, then
#: numpy's count_nonzero).
ACCURACY_BASELINE_REV = "406c818"


def population(rng, n_models, mu, scale, shift, rho=0.1):
    """Margins (n_models, n_examples): mu + scale * (shared model effect + noise) + shift."""
    a = rng.normal(size=(n_models, 1))
    e = rng.normal(size=(n_models, mu.size))
    return (mu + scale * (np.sqrt(rho) * a + np.sqrt(1 - rho) * e) + shift).astype(np.float32)


def examples(rng, n_forget, n_retain, n_val, shifted_share):
    n = n_forget + n_retain + n_val
    mu, scale = rng.normal(3.0, 2.0, n), rng.uniform(0.5, 3.0, n)
    shift = np.zeros(n)
    hit = rng.random(n_forget) < shifted_share
    shift[:n_forget][hit] = rng.uniform(0.5, 3.0, hit.sum()) * scale[:n_forget][hit]
    return mu, scale, shift


def replicate(rng, n_models, world, level, n_splits, seed):
    mu, scale, shift = world["mu"], world["scale"], world["shift"]
    u = population(rng, n_models, mu, scale, shift)
    o = population(rng, 3 * n_models, mu, scale, 0.0)
    null = (o[n_models:2 * n_models], o[2 * n_models:])
    return compute_lenses(u, o[:n_models], forget=world["forget"], n_train=world["n_train"], null=null,
                  level=level, n_splits=n_splits, seed=seed)


def quantities(r):
    """(name, value, low, high) of every lens quantity of one result."""
    out = []
    for g, e in r["ulira"]["groups"].items():
        out.append((f"U-LiRA {g}", e["value"], e["low"], e["high"]))
    for g, e in r["ks"]["groups"].items():
        out.append((f"KS p95 {g}", e["p95"], e["low"], e["high"]))
    acc = r["accuracy"]
    for g, e in acc["gap"].items():
        out.append((f"accuracy gap {g}", e["value"], e["low"], e["high"]))
    out.append(("average gap", acc["average_gap"]["value"], acc["average_gap"]["low"],
                acc["average_gap"]["high"]))
    out.append(("ToW", acc["tow"]["value"], acc["tow"]["low"], acc["tow"]["high"]))
    return out


def run_cell(name, n_models, shifted_share, reps, level, n_splits, seed):
    rng = np.random.default_rng(seed)
    n_forget, n_retain, n_val = 100, 2000, 1000
    mu, scale, shift = examples(rng, n_forget, n_retain, n_val, shifted_share)
    world = dict(mu=mu, scale=scale, shift=shift, forget=np.arange(n_forget),
                 n_train=n_forget + n_retain)
    results = [replicate(rng, n_models, world, level, n_splits, seed + 1 + i)
               for i in range(reps)]
    table = {}
    for i, q in enumerate(quantities(results[0])):
        vals = np.array([quantities(r)[i][1:] for r in results])
        truth = vals[:, 0].mean()
        if shifted_share == 0 and q[0].startswith("U-LiRA"):
            truth = 0.5  # exact in expectation when nothing differs
        if shifted_share == 0 and q[0].startswith("accuracy gap"):
            truth = 0.0
        cover = np.mean((vals[:, 1] <= truth) & (truth <= vals[:, 2]))
        ideal = 2 * 1.96 * vals[:, 0].std()  # as wide as an interval with the true sd
        table[q[0]] = (truth, cover, np.mean(vals[:, 2] - vals[:, 1]), ideal)
    pvals = np.array([r["ks"]["forget_quality"]["p_value"] for r in results])
    print(f"\n{name}: N = {n_models} per side, {reps} replicates, {level:.0%} intervals, "
          f"{n_splits} half-splits; forget 100, retain 2000, validation 1000 examples")
    mc = np.sqrt(level * (1 - level) / reps)
    print(f"  {'quantity':<24}{'expected':>10}{'coverage':>10}{'mean width':>12}"
          f"{'width/ideal':>13}   (Monte Carlo sd of a coverage near {level:.0%}: {mc:.3f})")
    for q, (truth, cover, width, ideal) in table.items():
        flag = "" if cover >= 0.93 else "  (!) below 93%"
        ratio = width / ideal if ideal > 0 else float("nan")
        print(f"  {q:<24}{truth:>10.4f}{cover:>10.3f}{width:>12.4f}{ratio:>13.2f}{flag}")
    shares = {a: np.mean(pvals <= a) for a in (0.01, 0.05, 0.10, 0.50)}
    print("  KS forget quality p-value: share <= " + ", ".join(
        f"{a:g}: {s:.3f}" for a, s in shares.items()) + f"; mean {pvals.mean():.3f}")
    return table, shares


def speed(repeats=5):
    rng = np.random.default_rng(0)
    n_train, n_forget = 50_000, 1_000
    mu, scale, shift = examples(rng, n_forget, n_train - n_forget, 10_000, 0.5)
    u = population(rng, 100, mu, scale, shift)
    o = population(rng, 300, mu, scale, 0.0)
    null = (o[100:200], o[200:])
    kw = dict(forget=np.arange(n_forget), n_train=n_train, null=null)
    compute_lenses(u[:, :2000], o[:100, :2000], forget=np.arange(100), n_train=1500)  # compile
    klom(unlearned=u, oracle=o[:100])

    def best(fn):
        t = []
        for _ in range(repeats):
            s = time.perf_counter()
            fn()
            t.append(time.perf_counter() - s)
        return min(t)

    t_klom = best(lambda: klom(unlearned=u, oracle=o[:100]))
    each = {m: best(lambda: compute_lenses(u, o[:100], **kw, metrics=("klom", m),
                                           intervals=False))
            for m in ("ulira", "accuracy", "ks")}
    t_values = best(lambda: compute_lenses(u, o[:100], **kw, n_splits=10, intervals=False))
    t_alone = best(lambda: compute_lenses(u, o[:100], **{**kw, "null": None}, intervals=False))
    t_all = best(lambda: compute_lenses(u, o[:100], **kw))
    former = baseline_module("accuracy_gaps", ACCURACY_BASELINE_REV, needs=())
    four = (u, o[:100], o[100:200], o[200:])
    t_counts = best(lambda: [model_accuracies(a, kw["forget"], n_train) for a in four])
    t_former = best(lambda: [former.model_accuracies(a > 0, kw["forget"], n_train)
                             for a in four]) if former else float("nan")
    print("\nspeed: 60,000 examples (1,000 forget), 100 vs 100 models, float32; best of "
          f"{repeats}; load average {os.getloadavg()[0]:.2f}")
    print(f"  one KLOM call                              {t_klom:8.3f} s")
    for m, t in each.items():
        print(f"  {m + ', value and null':<43s}{t:8.3f} s = {t / t_klom:.1f} KLOM calls")
    print(f"  U-LiRA + accuracies + KS, values only      {t_alone:8.3f} s = "
          f"{t_alone / t_klom:.1f} KLOM calls (the nulls depend on the oracles alone)")
    print(f"  U-LiRA + accuracies + KS, values and nulls {t_values:8.3f} s = "
          f"{t_values / t_klom:.1f} KLOM calls")
    print(f"  the same with intervals (25 half-splits)   {t_all:8.3f} s = "
          f"{t_all / t_klom:.1f} KLOM calls")
    print(f"  accuracy counts of the 4 model groups: {t_counts * 1e3:.1f} ms, at commit "
          f"{ACCURACY_BASELINE_REV} (boolean copies, count_nonzero) {t_former * 1e3:.1f} ms: "
          f"{t_former / t_counts:.2f}x faster")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--level", type=float, default=0.95)
    ap.add_argument("--n-splits", type=int, default=25)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--speed-only", action="store_true")
    args = ap.parse_args()
    start = time.perf_counter()
    cells = () if args.speed_only else (("null (unlearned drawn as oracles)", 50, 0.0),
                           ("null (unlearned drawn as oracles)", 100, 0.0),
                           ("shifted (40% of forget examples)", 50, 0.4),
                           ("shifted (40% of forget examples)", 100, 0.4))
    for name, n, share in cells:
        run_cell(name, n, share, args.reps, args.level, args.n_splits, seed=n + int(10 * share))
    if not args.skip_speed:
        speed()
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Computing KLOM
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/klom-tutorial/klom-tutorial/blob/main/notebooks/06_computing_klom.ipynb)
#
# **What you will learn.** How to turn a store of unlearned models and oracles into KLOM
# results: per-example scores, their summary per group (forget, retain, validation) by the
# 95th percentile, a bootstrap interval for that percentile (and how to read it), the noise
# floor that a perfect method would score, and the comparison table of every method on every
# forget set that `klom_utils.evaluate` builds, with its figures. The default run scores the
# DIGITS models unlearned in the previous chapter; the same code scores CIFAR-10 at paper
# scale.

# %% tags=["hide-input"]
# In Colab, install klom_utils from the repository (elsewhere: `pip install -e .` in a clone).
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q",
         "git+https://github.com/klom-tutorial/klom-tutorial"],
        check=True,
    )

# %% tags=["parameters"]
dataset = "digits"  # "digits" (embedded, CPU) or "cifar10"
forget_sets = [1, 2, 3]  # forget sets to score
methods = ["do_nothing", "gradient_ascent", "gradient_descent",
           "neggrad_plus", "scrub", "oracle_matching"]
n_boot = 200  # bootstrap resamples for the intervals of the 95th percentiles
data_root = None  # CIFAR-10 download cache (None: $KLOM_CACHE or ~/.cache)
seed = 0
store_dir = "klom_run/store"  # the model store (KLOM-models layout)
results_dir = "klom_run/results"  # writes <results_dir>/06_computing_klom.json

# %%
# %matplotlib inline
import json
import math
import warnings
from pathlib import Path

import numpy as np

from klom_utils import bootstrap_p95, noise_floor, open_store, summarize
from klom_utils.data import load_dataset
from klom_utils.evaluate import (klom_scores, load_margins, results_table,
                                 score_many)
from klom_utils.plots import klom_distributions, p95_bars

warnings.filterwarnings("ignore", "IProgress not found")  # no ipywidgets

store = open_store(store_dir)
data = load_dataset(dataset, root=data_root)
D = data.name
results = {"parameters": {"dataset": dataset, "forget_sets": forget_sets,
                          "methods": methods, "n_boot": n_boot,
                          "seed": seed}}


def finite(x):
    """JSON-ready copy of x: nan and infinities become None."""
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# %% [markdown]
# ## 1. One method on one forget set, step by step
#
# We start with "do nothing" on the first forget set. `load_margins` reads from the store the
# margins of the $N$ unlearned models (here: the originals, unchanged) and of the oracles of
# that forget set, on every training example followed by every test example. It leaves out
# the held-out oracles (ids from 1000) that oracle matching used.

# %%
k0 = forget_sets[0]
m = load_margins(store, data, k0, "do_nothing")
print(f"unlearned margins {m.unlearned.shape}, oracle margins {m.oracle.shape}")
print(f"forget set {k0}: {len(m.forget)} of {m.n_train} training examples; "
      f"{m.unlearned.shape[1] - m.n_train} test examples")

# %% [markdown]
# One KLOM score per example (the canonical estimator of the KLOM chapter: 20 bins, margins
# clipped to $[-100, 100]$, $\varepsilon = 10^{-5}$, KL(unlearned ‖ oracle)), then the
# statistics of each group. The headline of a group is its **95th percentile**: a method
# must do well on nearly every example, not on average.

# %%
scores = klom_scores(m)
summary = summarize(scores, forget=m.forget, n_train=m.n_train)
for g, s in summary.items():
    print(f"{g:<11s} n={s['count']:5d}  p95 {s['p95']:5.2f}  "
          f"p99 {s['p99']:5.2f}  mean {s['mean']:5.2f}")

# %% [markdown]
# **How sure is a 95th percentile?** With $N$ models per group, a different draw of models
# gives a different score. `bootstrap_p95` resamples the unlearned models and the oracles
# with replacement, recomputes every score, and reports the spread of each group's 95th
# percentile. Read it with care: a resample repeats some models, which makes its histograms
# spikier, so resampled KLOM is biased *upwards*, most visibly near the noise floor, where the
# interval can lie entirely above the point estimate. Use it to judge how much two numbers
# could differ by chance, not as a confidence interval for the true value.

# %%
boot = bootstrap_p95(unlearned=m.unlearned, oracle=m.oracle, forget=m.forget,
                     n_train=m.n_train, n_boot=n_boot, seed=seed)
for g, b in boot.items():
    print(f"{g:<11s} p95 {b['p95']:5.2f}   bootstrap 95% range "
          f"[{b['low']:.2f}, {b['high']:.2f}]")
results["step_by_step"] = {"forget_set": k0, "summary": summary,
                           "bootstrap": boot}

# %% [markdown]
# ## 2. The noise floor
#
# What would a perfect method score, one whose unlearned models are exact draws from the
# oracles' distribution? Not 0: two finite samples of one distribution give different
# histograms. `noise_floor` splits the oracles into two random halves and scores one against
# the other. Each half has only $N/2$ models, and the floor falls like $1/N$, so this
# estimate is somewhat *above* what a perfect method would score with all $N$; with 100
# oracles it is the floor for 50 against 50 (about 1.7 at the 95th percentile for
# well-behaved margins, see the KLOM chapter), not the 0.7 of 100 against 100.

# %%
floor = summarize(noise_floor(m.oracle, seed=seed), forget=m.forget,
                  n_train=m.n_train)
half = m.oracle.shape[0] // 2
for g, s in floor.items():
    print(f"{g:<11s} noise floor ({half} vs {half}) p95 {s['p95']:5.2f}   "
          f"do nothing p95 {summary[g]['p95']:5.2f}")
results["noise_floor"] = floor

# %% [markdown]
# Doing nothing is the right thing on the retain and test examples (there, originals and
# oracles differ only by the forget set), and it scores about as low as this floor there,
# often lower, since the floor compares only half as many models. On the forget set it is far
# above: that gap is what an unlearning method has to close.
#
# ## 3. Every method on every forget set
#
# `score_many` repeats the above for each (forget set, method) pair: per group the 95th and
# 99th percentiles, mean and standard deviation, the bootstrap range of the 95th percentile,
# the noise floor of that forget set's oracles, and the mean accuracies of the unlearned
# models. `results_table` prints it.

# %%
records = score_many(store, data, forget_sets, methods, n_boot=n_boot,
                     seed=seed, progress=True)
print(results_table(records))

# %% [markdown]
# ## 4. Figures
#
# The distribution of the per-example scores of each method, per group (boxes from the 25th
# to the 75th percentile, whiskers at the 5th and 95th, the 95th percentile marked), for
# each forget set:

# %%
per_example = {}
for k in forget_sets:
    per_example[k] = {name: klom_scores(load_margins(store, data, k, name))
                      for name in methods}
    fig = klom_distributions(per_example[k], store.forget_set(D, k),
                             data.n_train)
    fig.set_size_inches(12, 3.8)
    fig.suptitle(f"{D}, forget set {k} "
                 f"({len(store.forget_set(D, k))} images)")
    display(fig)

# %% [markdown]
# And the headline numbers, the 95th percentile of each group with its bootstrap range, per
# method, against the noise floor of the forget set's oracles (dashed):

# %%
for k in forget_sets:
    display(p95_bars([r for r in records if r["forget_set"] == k]))

# %% [markdown]
# ## 5. Reading the results
#
# A good method is low on **all three** groups: low on the forget set (it forgot), and low on
# retain and validation (it did not damage the rest). A method that only lowers the forget
# score by wrecking the model shows it in the other two groups and in its accuracies. For
# each forget set, the methods ranked by the mean of their three 95th percentiles:

# %%
ranking = {}
for k in forget_sets:
    rows = [r for r in records if r["forget_set"] == k]
    rows.sort(key=lambda r: np.mean([r[g]["p95"] for g in
                                     ("forget", "retain", "validation")]))
    ranking[str(k)] = [r["method"] for r in rows]
    print(f"forget set {k}:")
    for r in rows:
        p = [r[g]["p95"] for g in ("forget", "retain", "validation")]
        print(f"  {r['method']:<17s} forget {p[0]:5.2f}  retain {p[1]:5.2f}  "
              f"validation {p[2]:5.2f}  (mean {np.mean(p):5.2f})")
results["ranking"] = ranking

# %% [markdown]
# What to look for in this table, whatever the dataset:
#
# - **Doing nothing** is the reference: high on the forget set, near the floor elsewhere.
# - **Oracle matching** should come close to the noise floor on the forget set: if it does
#   not, something in the pipeline is wrong (the wrong oracles, the wrong order of examples).
#   It is not a practical method (it needs oracles), but it is the best check available.
# - Methods that barely change the model (small learning rates, few steps) stay near "do
#   nothing"; methods pushed hard on the forget set (gradient ascent) can lower the forget
#   score and raise retain and validation scores at the same time.
# - Differences smaller than the bootstrap ranges are not differences.
#
# ## Summary
#
# - KLOM per example, summarised per group by the 95th percentile; report the noise floor
#   (oracles against held-out oracles) beside every table, and the accuracies.
# - `klom_utils.evaluate.score` does it for one method and forget set,
#   `score_many` and `results_table` for the whole comparison, and `klom_utils.plots`
#   draws the figures.
# - Bootstrap ranges of the 95th percentile show which differences are meaningful; they are
#   biased upwards near the floor.
# - The numbers of this run are below (and in `06_computing_klom.json`).

# %%
keep = ("method", "forget_set", "forget_size", "n_unlearned", "n_oracles",
        "forget", "retain", "validation", "noise_floor", "accuracy")
results["records"] = [{key: r[key] for key in keep if key in r}
                      for r in records]
out = Path(results_dir) / "06_computing_klom.json"
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps(finite(results), indent=2, allow_nan=False))
print(f"wrote {out}")

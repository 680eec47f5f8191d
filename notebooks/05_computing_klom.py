# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Computing KLOM
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/klom-tutorial/klom-tutorial/blob/main/notebooks/05_computing_klom.ipynb)
#
# **What you will learn.** How to turn a store of unlearned models and oracles into KLOM
# results you can trust: per-example scores and their 95th percentile per group (forget,
# retain, validation); an interval that says how much that percentile would move with another
# draw of models, and what exactly it covers; the noise floor, a perfect method's score,
# measured at the *same* number of models $N$ as the method; both KL directions and which
# published table uses which; the diagnostics that flag numbers not to read at face value;
# and the comparison table of every method on every forget set, with its figures. The default
# run scores the DIGITS models unlearned in the previous chapter; the same code scores
# CIFAR-10 at paper scale.
#
# > **Embedded run.** The numbers on this page come from the default run (DIGITS models of
# > chapters 3 and 4, on a CPU), not from CIFAR-10; scoring itself needs no GPU. The CIFAR-10
# > models it would score at paper scale are trained and unlearned on a GPU; status: not yet
# > run on a GPU by this project (no GPU measurement exists; the code paths are tested on
# > CPU with tiny inputs). [Paper scale](../book/paper_scale.md) keeps the measured status.

# %% tags=["hide-input"] mystnb={"code_prompt_show": "Show the Colab install cell", "code_prompt_hide": "Hide the Colab install cell"}
# Colab install cell: installs klom_utils at the release this book was built from, keeping
# Colab's own torch (elsewhere it does nothing: `pip install -e .` in a clone).
import sys

if "google.colab" in sys.modules:
    import subprocess

    import torch

    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "klom_utils @ git+https://github.com/klom-tutorial/klom-tutorial@v0.1.0",
                    f"torch=={torch.__version__}"], check=True)

# %% tags=["parameters"]
dataset = "digits"  # "digits" (embedded, CPU) or "cifar10"
forget_sets = [1, 2, 3]  # forget sets to score
methods = ["do_nothing", "gradient_ascent", "gradient_descent",
           "neggrad_plus", "scrub", "oracle_matching"]
n_splits = 25  # random half-splits of the models behind each interval
n_models = 100  # models per group (when this chapter builds the store itself)
n_oracles = None  # per forget set (None: 2 * n_models, for a floor at N)
n_held_out_oracles = 10  # held-out oracles per forget set, for oracle matching
device = "auto"  # to train a missing DIGITS store ("auto": CUDA if present)
progress = True  # progress bars (the book's build turns them off)
data_root = None  # CIFAR-10 download cache (None: $KLOM_CACHE or ~/.cache)
seed = 0
store_dir = "klom_run/store"  # the model store (KLOM-models layout)
results_dir = "klom_run/results"  # writes <results_dir>/05_computing_klom.json

# %%
# %matplotlib inline
import json
import warnings
from pathlib import Path

import numpy as np
from IPython.display import Markdown, display

from klom_utils import klom, noise_floor, p95_interval, summarize
from klom_utils.data import load_dataset
from klom_utils.evaluate import (
    jsonable,
    klom_scores,
    load_margins,
    results_table,
    score,
    score_arrays,
    score_many,
)
from klom_utils.layout import oracle_folder
from klom_utils.lens_tables import lens_table
from klom_utils.oracles import held_out_oracle_ids, scoring_oracle_ids
from klom_utils.plots import FigureLog, klom_distributions, p95_bars, use_style
from klom_utils.prepare import StoreNeeds, prepare_store
from klom_utils.store import folder_margins
from klom_utils.tables import ResultsTable, glue

warnings.filterwarnings("ignore", "IProgress not found")  # no ipywidgets
use_style()  # the book's figure style
shown = FigureLog()  # shows each figure and keeps what the style check reads

# The store of chapters 3 and 4 (run alone: the DIGITS store, built here).
store = prepare_store(store_dir,
                      StoreNeeds(dataset, n_models, forget_sets, n_oracles,
                                 n_held_out_oracles, methods),
                      device=device, root=data_root, seed=seed,
                      progress=progress)
data = load_dataset(dataset, root=data_root)
D = data.name
results = {"parameters": {"dataset": dataset, "forget_sets": forget_sets,
                          "methods": methods, "n_splits": n_splits,
                          "seed": seed}}


# %% [markdown]
# ## 1. One method on one forget set, step by step
#
# We start with "do nothing" on the first forget set. `load_margins` reads from the store the
# margins of the $N$ unlearned models (here: the originals, unchanged) and of $N$ oracles of
# that forget set (the lowest ids: as many oracles as unlearned models, since KLOM at
# unequal $N$ is not comparable with KLOM at equal $N$), on every training example followed
# by every test example. It leaves out the held-out oracles (ids from 1000) that oracle
# matching used.

# %%
k0 = forget_sets[0]
m = load_margins(store, data, k0, "do_nothing")
print(f"unlearned margins {m.unlearned.shape}, "
      f"oracle margins {m.oracle.shape}")
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
# **How sure is a 95th percentile?** The examples are fixed; the models are not: another
# $N$ seeds would give other margins and another 95th percentile. `p95_interval` gives, per
# group, an interval for the **expected** 95th percentile at this $N$ per side, the value
# that repeating the whole experiment (train, unlearn, score with $N$ new models per side)
# would average to. It splits the models of each side into random halves many times and
# measures how much the percentile moves, corrects for the extra per-example noise of
# half-size samples, and reports a normal interval around the estimate
# (`klom_utils.uncertainty` explains the method). In simulations with pools of 1,000 models
# (`scripts/bench_intervals.py`, numbers in the README) it covers the expected value in
# 93-100% of repetitions at $N = 100$, mostly at most twice as wide as an interval built from
# the true spread (about 3 times where every forget example scores near KLOM's cap, as for
# doing nothing). With 10 forget examples the forget interval is wide: the 95th percentile
# of 10 numbers rests on the two largest. It says nothing about another $N$: KLOM falls as
# $N$ grows.
#
# Resampling the models *with replacement* (a plain bootstrap) does not work for KLOM: a
# resample repeats models, which makes every histogram spikier, so resampled KLOM sits far
# above the estimate; such intervals almost never hold the expected value.

# %%
ci = p95_interval(unlearned=m.unlearned, oracle=m.oracle, forget=m.forget,
                  n_train=m.n_train, n_splits=n_splits, seed=seed)
n_side = m.unlearned.shape[0]
print(f"95% intervals for the expected p95 at N = {n_side} per side:")
for g, c in ci.items():
    print(f"{g:<11s} p95 {c['p95']:5.2f}   [{c['low']:.2f}, {c['high']:.2f}]")
results["step_by_step"] = {"forget_set": k0, "n_per_side": n_side,
                           "summary": summary, "interval": ci}

# %% [markdown]
# ## 2. The noise floor, at the same $N$
#
# What would a perfect method score, one whose unlearned models are exact draws from the
# oracles' distribution? Not 0: two finite samples of one distribution give different
# histograms. `noise_floor` scores $N$ oracles against $N$ *other* oracles. That needs $2N$
# oracles, which is why the training chapter trained twice as many oracles as full models.
# The floor depends on $N$ as much as any score does. Below, doing nothing and the floor side
# by side at two sizes, each pair at one $N$ (the largest the oracles allow, and half of it):

# %%
oracle_ids = scoring_oracle_ids(store, D, k0)
all_oracles = folder_margins(store, oracle_folder(D, k0), data, oracle_ids)
floor_n = min(n_side, len(oracle_ids) // 2)
at_n = {}
for n in (floor_n, floor_n // 2):
    nothing = klom(unlearned=m.unlearned[:n], oracle=m.oracle[:n])
    at_n[n] = {
        "do_nothing": summarize(nothing, forget=m.forget, n_train=m.n_train),
        "floor": summarize(noise_floor(all_oracles, n_per_side=n, seed=seed),
                           forget=m.forget, n_train=m.n_train)}
print("95th percentiles; N = models per side")
print(f"{'':11s}" + "".join(f"{'do nothing, N=' + str(n):>18s}"
                            f"{'floor, N=' + str(n):>13s}" for n in at_n))
for g in ("forget", "retain", "validation"):
    print(f"{g:<11s}" + "".join(f"{v['do_nothing'][g]['p95']:18.2f}"
                                f"{v['floor'][g]['p95']:13.2f}"
                                for v in at_n.values()))
floor, floor_half = at_n[floor_n]["floor"], at_n[floor_n // 2]["floor"]
results["noise_floor"] = {"n_per_side": floor_n, **floor}
results["noise_floor_half"] = {"n_per_side": floor_n // 2, **floor_half}
results["do_nothing_at_n"] = {str(n): v["do_nothing"] for n, v in at_n.items()}
nothing = at_n[floor_n]["do_nothing"]
word = {g: "above" if nothing[g]["p95"] > floor[g]["p95"] else "not above"
        for g in ("retain", "validation")}
display(*glue(results, floor_n=floor_n, floor_retain_word=word["retain"],
              floor_validation_word=word["validation"],
              nothing_retain=nothing["retain"]["p95"],
              floor_retain=floor["retain"]["p95"],
              nothing_validation=nothing["validation"]["p95"],
              floor_validation=floor["validation"]["p95"]))

# %% [markdown]
# At the same $N$ ({glue}`floor_n` per side), doing nothing is {glue}`floor_retain_word` the
# floor on the retain examples ({glue}`nothing_retain` against {glue}`floor_retain`) and
# {glue}`floor_validation_word` it on the test examples ({glue}`nothing_validation` against
# {glue}`floor_validation`): removing the forget set from training changes the models a
# little everywhere, and KLOM can see it. Doing nothing at the larger $N$ set against the floor at the smaller one would have
# looked "below the floor": a comparison of numbers measured at different $N$. On the forget
# set doing nothing is far above: that gap is what an unlearning method has to close.
#
# ## 3. Every method on every forget set
#
# The {glue}`n_methods` methods of chapter 4 on its {glue}`n_sets` forget sets.
#
# `score_many` repeats the above for each (forget set, method) pair: per group the 95th and
# 99th percentiles, mean and standard deviation, the interval of the 95th percentile, the
# noise floor at the same $N$ (or, where fewer than $2N$ oracles exist, as on the Hub, the
# floor at the largest size they allow *and* the method rescored at that size, both
# labelled), diagnostics, and the mean accuracies of the unlearned models. `results_table`
# prints it, with what the intervals cover and any warning below it.

# %%
records = score_many(store, data, forget_sets, methods, n_splits=n_splits,
                     seed=seed, progress=progress)
display(*glue(results, n_methods=len(methods), n_sets=len(forget_sets)))
results_table(records)  # a text table (print it); shown here as HTML

# %% [markdown]
# Below the table, `(!)` lines are the diagnostics: a model whose margins sit far outside the
# others (one diverged model stretches every histogram's range and can halve KLOM), fewer
# than 50 models per side, unequal $N$. For forget sets under 100 examples the 95th
# percentile rests on the two to four largest scores, so the table adds the forget mean and
# the count of forget examples above the retain group's 99th percentile.
#
# ## 4. The two KL directions
#
# KL divergence is not symmetric, and the published tables do not all use the same
# direction: the *Attribute-to-Delete* paper's code and EasyDUB compute KL(unlearned ‖
# oracle), our default; the results table of data-unlearning-bench computes KL(oracle ‖
# unlearned). The two can differ by several times on the same models and can even order
# methods differently, so compare a number only with numbers of the same direction. Here is
# every method in both, with the noise floor of each direction at the same $N$:

# %%
reverse = score_many(store, data, forget_sets, methods, n_splits=n_splits,
                     seed=seed, direction="oracle||unlearned",
                     progress=progress)
directions, direction_floors = {}, {}
groups = ("forget", "retain", "validation")
print("95th percentiles, KL(unlearned || oracle) / KL(oracle || unlearned);\n"
      "N: models per side")
for k in forget_sets:
    print(f"\nforget set {k}\n{'method':<18s}{'N':>4s}"
          + "".join(f"{g:>16s}" for g in groups))
    for fwd, rev in zip([r for r in records if r["forget_set"] == k],
                        [r for r in reverse if r["forget_set"] == k]):
        cells = {g: (fwd[g]["p95"], rev[g]["p95"]) for g in groups}
        directions[f"{k}/{fwd['method']}"] = cells
        print(f"{fwd['method']:<18s}{fwd['n_unlearned']:>4d}"
              + "".join(f"{a:6.2f} / {b:5.2f}".rjust(16)
                        for a, b in cells.values()))
    ff, fr = fwd["noise_floor"], rev["noise_floor"]
    if ff and fr:
        direction_floors[str(k)] = {
            "n_per_side": ff["n_per_side"],
            **{g: (ff[g]["p95"], fr[g]["p95"]) for g in groups}}
        print(f"{'noise floor':<18s}{ff['n_per_side']:>4d}"
              + "".join(f"{ff[g]['p95']:6.2f} / {fr[g]['p95']:5.2f}".rjust(16)
                        for g in groups))
results["directions"] = directions
# per forget set: (forward, reverse) p95
results["direction_floors"] = direction_floors
k_first = forget_sets[0]
om = directions.get(f"{k_first}/oracle_matching")
fl = direction_floors.get(str(k_first))
# without oracle matching or a floor: "nan" in the text below
nan = float("nan")
om, fl = om or {"forget": (nan, nan)}, fl or {"forget": (nan, nan)}
display(*glue(results, om_forward=om["forget"][0], om_reverse=om["forget"][1],
              floor_forward=fl["forget"][0], floor_reverse=fl["forget"][1],
              om_ratio_forward=om["forget"][0] / fl["forget"][0],
              om_ratio_reverse=om["forget"][1] / fl["forget"][1], digits=2))

# %% [markdown]
# The floors of the two directions are close: both compare two samples of oracles. The
# methods are not. On the first forget set, oracle matching's forget 95th percentile is
# {glue}`om_forward` in KL(unlearned ‖ oracle), {glue}`om_ratio_forward` times that
# direction's floor ({glue}`floor_forward`), and {glue}`om_reverse` in KL(oracle ‖ unlearned),
# {glue}`om_ratio_reverse` times its floor ({glue}`floor_reverse`). The reverse direction
# asks whether the unlearned models *cover* the spread of the oracles, and oracle matching
# pulls every model towards one target, which narrows that spread (section 6).
#
# **Which direction to report.** Report KL(unlearned ‖ oracle) as the headline, as the
# *Attribute-to-Delete* paper and EasyDUB do: it asks of every unlearned model whether its
# output is plausible for a retrained one, which is the question unlearning poses, and its
# numbers compare with theirs. Always state it, give the noise floor in the same direction
# and at the same $N$, and where you compare with the data-unlearning-bench table, add
# KL(oracle ‖ unlearned), which also penalises ensembles narrower than the oracles.
#
# ## 5. Figures
#
# The distribution of the per-example scores of each method, per group, for each forget set:
# boxes from the 25th to the 75th percentile with the median, whiskers to the most extreme
# scores between the 5th and the 95th percentile, and the 95th percentile itself as a
# diamond (above the whisker where few examples lie near it, as on a small forget set):

# %%
per_example = {}
for k in forget_sets:
    per_example[k] = {name: klom_scores(load_margins(store, data, k, name))
                      for name in methods}
    fig = klom_distributions(per_example[k], store.forget_set(D, k),
                             data.n_train)
    fig.suptitle(f"{D}, forget set {k} "
                 f"({len(store.forget_set(D, k))} images)")
    display(shown(fig))

# %% [markdown]
# And the headline numbers, the 95th percentile of each group with its interval, per
# method, against the noise floor at the same $N$ (dashed):

# %%
for k in forget_sets:
    display(shown(p95_bars([r for r in records if r["forget_set"] == k])))

# %% [markdown]
# ## 6. Reading the results
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
by = {(r["forget_set"], r["method"]): r for r in records}
above = [k for k in forget_sets
         if (k, "oracle_matching") in by and (k, "do_nothing") in by
         and (by[k, "oracle_matching"]["retain"]["p95"]
              > by[k, "do_nothing"]["retain"]["p95"])]
display(*glue(results, om_above_retain=len(above)))

# %% [markdown]
# What to look for in this table, whatever the dataset:
#
# - **Doing nothing** is the reference: high on the forget set, near the floor
#   elsewhere (at the same $N$; on this run's first forget set, retain {glue}`nothing_retain`
#   against a floor of {glue}`floor_retain`).
# - **Oracle matching** should come close to the noise floor on the forget set: if it does
#   not, something in the pipeline is wrong (the wrong oracles, the wrong order of examples).
#   It is not a practical method (it needs oracles), but it is the best check available on
#   the forget set. It is *not* the best achievable everywhere: on retain and validation
#   examples it can score above doing nothing (in this run it does on {glue}`om_above_retain`
#   of the {glue}`n_sets` forget sets; see below why).
# - Methods that barely change the model (small learning rates, few steps) stay near "do
#   nothing"; methods pushed hard on the forget set (gradient ascent) can lower the forget
#   score and raise retain and validation scores at the same time.
# - Where two methods' intervals overlap, this run cannot tell them apart at this $N$ (an
#   interval covers the expected value of one method's 95th percentile; for a formal test
#   of a difference, repeat the experiment). Compare only numbers at the same $N$, direction
#   and variant.
#
# **Why oracle matching can score above doing nothing on retain examples.** Removing a few
# training images barely moves a model's margins on the other images, so the originals are
# already close to the oracles there and doing nothing scores near the floor. Oracle matching
# fine-tunes every one of the $N$ models towards the *same* target, the mean logits of a few
# held-out oracles: the unlearned models then agree with each other more than independently
# trained oracles do, and a narrower distribution of margins scores higher against the
# oracles' spread. Measured on the retain examples of this run (medians over examples):

# %%
spread = {}
for k in forget_sets:
    for name in [m for m in ("do_nothing", "oracle_matching") if m in methods]:
        mm = load_margins(store, data, k, name)
        retain = np.setdiff1d(np.arange(mm.n_train), mm.forget)
        u, o = mm.unlearned[:, retain], mm.oracle[:, retain]
        spread[f"{k}/{name}"] = {
            "sd_ratio": float(np.median(u.std(0) / o.std(0))),
            "mean_shift_in_sd": float(np.median(
                np.abs(u.mean(0) - o.mean(0)) / o.std(0)))}
print(f"{'set/method':<20s}{'sd unlearned / sd oracles':>27s}"
      f"{'|mean shift| / sd oracles':>27s}")
for key, v in spread.items():
    print(f"{key:<20s}{v['sd_ratio']:>27.2f}{v['mean_shift_in_sd']:>27.2f}")
results["retain_spread"] = spread

# %% [markdown]
# A ratio of standard deviations well below 1 is the narrowing; a larger mean shift adds to
# it. Matching more held-out oracles, or fewer epochs, trades forget-set fidelity against it.
#
# ## 7. Other lenses on the same models
#
# Reviewers ask for a membership-inference view beside a distribution metric, and papers
# report accuracy gaps. All of them can be computed from what this page already has (the
# margins, and the logits for the accuracies), without training anything more
# (`score(..., metrics="all")`, or `klom score --metrics all`):
#
# - **U-LiRA**: per forget example, a likelihood-ratio test fitted on half of the unlearned
#   models and half of the oracles tries to tell the other halves apart; the mean balanced
#   accuracy is 0.5 when it cannot (chance) and 1.0 when it always can (the cap). Random
#   retain and validation examples of the forget set's size are the controls.
# - **KS**: per example, the two-sample Kolmogorov-Smirnov statistic between the two sides'
#   margins (0 to 1), summarised like KLOM by its 95th percentile; and a "forget quality"
#   p-value: the KS test of the models' mean forget margins, unlearned against oracles.
# - **Accuracies**: per group the mean accuracy of each side (a model is right where its
#   largest logit is the label's; not where its margin is positive: KLOM's margin
#   $z_y - \log\sum_{k \ne y} e^{z_k}$ is positive only where the label's probability is above
#   1/2), the gap (unlearned minus oracles), the average gap, and ToW, the product of
#   $1 - |\text{gap}|$ (1: as retrained).
#
# Each comes with an interval over the randomness of training (half-sampling of the models)
# and its **null**: the same lens for two disjoint groups of oracles at the same $N$, what a
# perfect method would get. We score doing nothing, gradient ascent and oracle matching on
# the first forget set.

# %%
lens_methods = [m for m in ("do_nothing", "gradient_ascent", "oracle_matching")
                if m in methods]
lens_records = [score(store, data, k0, name, n_splits=n_splits, seed=seed,
                      metrics="all")
                for name in lens_methods]
lens_table(lens_records)

# %% [markdown]
# Side by side on the forget set, each with its null at the same $N$:

# %%
def forget_lenses(r):
    lens = r["metrics"]
    return {"KLOM p95": r["forget"]["p95"],
            "KLOM floor": r["noise_floor"]["forget"]["p95"],
            "U-LiRA": lens["ulira"]["groups"]["forget"]["value"],
            "U-LiRA null": lens["ulira"]["groups"]["forget"]["null"],
            "KS p95": lens["ks"]["groups"]["forget"]["p95"],
            "KS null": lens["ks"]["groups"]["forget"]["null"],
            "forget quality p": lens["ks"]["forget_quality"]["p_value"],
            "forget acc gap": lens["accuracy"]["gap"]["forget"]["value"],
            "ToW": lens["accuracy"]["tow"]["value"]}


side = {r["method"]: forget_lenses(r) for r in lens_records}
columns = list(side[lens_methods[0]])
display(ResultsTable.build(
    f"Forget set {k0}: four lenses, each beside its null (N = "
    f"{lens_records[0]['n_per_side']} per side)",
    ["forget set", "method", *columns],
    [[k0, name, *(f"{v:.3g}" if v >= 1e-12 else "< 1e-12"
                  for v in row.values())]
     for name, row in side.items()],
    ["floor and nulls: the same lens for two disjoint groups of oracles "
     "at the same N; forget quality p: KS test of the models' mean forget "
     "margins (small: told apart)."]))
results["lenses"] = {"forget_set": k0,
                     "n_per_side": lens_records[0]["n_per_side"],
                     "forget": side}

# %% [markdown]
# A sanity check of U-LiRA itself: the held-out oracles (ids from 1000, trained like the
# others without the forget set) scored as if they were unlearned models must look like
# oracles, so U-LiRA should sit near 0.5 there:

# %%
held = held_out_oracle_ids(store, D, k0)
held_m = folder_margins(store, oracle_folder(D, k0), data, held)
check = score_arrays(held_m, m.oracle, m.forget, m.n_train, n_splits=n_splits,
                     seed=seed, metrics="ulira")
check_ulira = check["metrics"]["ulira"]
if check_ulira["groups"]:
    u_check = check_ulira["groups"]["forget"]
    print(f"{len(held)} held-out oracles against "
          f"{check['n_oracles']} oracles\n"
          f"U-LiRA on the forget set: {u_check['value']:.3f} "
          f"[{u_check['low']:.3f}, {u_check['high']:.3f}]")
    results["lenses"]["held_out_oracles_ulira"] = {
        "n_per_side": check["n_per_side"],
        **{key: u_check[key] for key in ("value", "low", "high")}}
else:  # too few held-out oracles in this run
    print(check_ulira["why"])

# %% [markdown]
# Where the lenses agree and where they do not, on this run:

# %%
def ranks(metric, reverse=False):
    return sorted(side, key=lambda name: side[name][metric], reverse=reverse)


orders = {"KLOM p95": ranks("KLOM p95"), "U-LiRA": ranks("U-LiRA"),
          "KS p95": ranks("KS p95"), "ToW": ranks("ToW", reverse=True)}
keys = {"KLOM p95": "KLOM p95", "U-LiRA": "U-LiRA", "KS p95": "KS p95",
        "ToW": "ToW"}
lines = [f"- **{lens}** (best first): " + ", ".join(
    f"{name} {side[name][keys[lens]]:.3g}" for name in order)
    for lens, order in orders.items()]
by_best = {}
for lens, order in orders.items():
    by_best.setdefault(order[0], []).append(lens)
if len(by_best) == 1:
    lines.append(f"- All four lenses put {next(iter(by_best))} first.")
else:
    lines.append("- They disagree on the best method: " + "; ".join(
        f"{' and '.join(lenses)} put {name} first"
        for name, lenses in by_best.items()) + ".")
gap_row = {name: row["forget acc gap"] for name, row in side.items()}
lines.append("- Forget accuracy gaps (unlearned minus oracles): " + ", ".join(
    f"{name} {v:+.3f}" for name, v in gap_row.items())
    + f" (spread {max(gap_row.values()) - min(gap_row.values()):.3f}): "
      "accuracy moves only where a prediction flips.")
display(Markdown("\n".join(lines)))
results["lenses"]["rankings"] = orders

# %% [markdown]
# How to read them together. KLOM and KS compare whole distributions of margins, example by
# example, and look at the worst examples (the 95th percentile); U-LiRA averages a test's
# success over the forget set, so a few badly unlearned examples among many good ones move it
# little, and its Gaussian test also sees a difference in *spread*: models that agree with each
# other more than oracles do (the narrowing of oracle matching in section 6) are told apart
# even where their margins are centred right; accuracy gaps only see predictions that flip.
# A method can therefore pass the accuracy view and fail KLOM, or the other way round. Read each against its own null at the
# same $N$, and when a value sits within 5% of its cap the diagnostics say so: a saturated
# metric cannot rank methods.
#
# ## Summary
#
# - KLOM per example, summarised per group by the 95th percentile; report beside every
#   table the noise floor at the same $N$, the accuracies, the direction, and the diagnostics.
# - The interval of a 95th percentile covers its expected value at the scored $N$ over the
#   randomness of training; its coverage is measured, not assumed.
# - `klom_utils.evaluate.score` does it for one method and forget set,
#   `score_many` and `results_table` for the whole comparison, and `klom_utils.plots`
#   draws the figures.
# - Other lenses on the same models (`metrics="all"`): U-LiRA, KS with its forget quality,
#   accuracy gaps and ToW, each with its interval and its null at the same $N$; they answer
#   different questions, so report them beside KLOM, not instead of it.
# - The numbers of this run are above (and in `05_computing_klom.json`).
#
# ## What you learned
#
# - How to go from margins to a table: KLOM per example, the 95th percentile per group, its
#   interval, the noise floor at the same $N$, diagnostics and accuracies.
# - Why a number means nothing without its $N$, its direction and its floor.
# - How to read a comparison: low on all three groups, intervals in view.
#
# ## Exercises
#
# 1. Compute the noise floor of the first forget set at $N = 50$
#    (`noise_floor(all_oracles, n_per_side=50)`) and compare it with doing nothing rescored
#    at 50 models per side.
# 2. Rerun with `n_splits = 100`: how much do the intervals change, and how much longer does
#    the page take?
# 3. Score the methods with `variant="bench2025"` and `direction="oracle||unlearned"`
#    (`score_many(..., variant=..., direction=...)`): does the ranking change?
# 4. Score gradient ascent with `metrics="all"` at a larger learning rate (chapter 4 shows how
#    to unlearn with other settings): which lens moves first, KLOM, U-LiRA or the accuracy gap?

# %% tags=["hide-input"] mystnb={"code_prompt_show": "Show the cell that saves this page's key numbers", "code_prompt_hide": "Hide the cell that saves this page's key numbers"}
# The key numbers of this page, for the tests: <results_dir>/05_computing_klom.json
keep = ("method", "forget_set", "forget_size", "n_unlearned", "n_oracles",
        "n_per_side", "forget", "retain", "validation", "noise_floor", "matched",
        "diagnostics", "accuracy", "klom", "interval")
results["records"] = [{key: r[key] for key in keep if key in r}
                      for r in records]
results["figures"] = shown.records
out = Path(results_dir) / "05_computing_klom.json"
out.parent.mkdir(parents=True, exist_ok=True)
_ = out.write_text(json.dumps(jsonable(results), indent=2, allow_nan=False))

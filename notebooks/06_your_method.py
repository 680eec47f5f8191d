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
# # Evaluate your own method
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/klom-tutorial/klom-tutorial/blob/main/notebooks/06_your_method.ipynb)
#
# **What you will learn.** How to evaluate an unlearning method of your own with KLOM by
# writing a single function. This page is a template: replace the example method below with
# yours (same signature as the built-in methods), run the notebook, and get the whole
# evaluation: a quick check on one model, the method applied to all $N$ original models for
# every forget set, KLOM per group with intervals and the noise floor at the same N, and a
# comparison with two reference points, doing nothing (the baseline to beat) and oracle
# matching (near the floor on the forget set, though not on every group: chapter 5 explains
# why). The example takes about ten lines: "shrink and
# perturb" the weights, then fine-tune on the retain set. The default run uses the DIGITS store of the
# previous chapters and runs on a CPU (the times are printed below).
#
# > **Embedded run.** The numbers on this page come from the default run (DIGITS, CPU). Your
# > method on CIFAR-10 ResNet-9s (`params/paper.yaml`) runs the same code on a GPU; status:
# > not yet run on a GPU by this project (no GPU measurement exists; the code paths are
# > tested on CPU with tiny inputs). [Paper scale](../book/paper_scale.md) keeps the
# > measured status.

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
dataset = "digits"  # "digits" (embedded, CPU) or "cifar10" (ResNet-9, GPU)
forget_sets = [1, 2, 3]  # forget sets to evaluate (oracles in the store)
n_models = 100  # unlearn the full models 0 .. n_models - 1
n_oracles = None  # per forget set (None: 2 * n_models, for a floor at N)
n_held_out_oracles = 10  # held-out oracles per forget set, for oracle matching
n_splits = 25  # random half-splits of the models behind each interval
device = "auto"  # "auto": CUDA when present, else CPU
progress = True  # progress bars (the book's build turns them off)
data_root = None  # CIFAR-10 download cache (None: $KLOM_CACHE or ~/.cache)
seed = 0
store_dir = "klom_run/store"  # the model store (KLOM-models layout)
results_dir = "klom_run/results"  # writes <results_dir>/06_your_method.json

# %%
# %matplotlib inline
import copy
import json
import shutil
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from IPython.display import display

from klom_utils.data import load_dataset
from klom_utils.devices import resolve_device
from klom_utils.evaluate import jsonable, results_table, score
from klom_utils.layout import full_models_folder, unlearned_folder
from klom_utils.models import load_model
from klom_utils.plots import FigureLog, p95_bars, use_style
from klom_utils.prepare import StoreNeeds, prepare_store
from klom_utils.tables import glue
from klom_utils.unlearning import UnlearnData, predict_logits, unlearn_store

warnings.filterwarnings("ignore", "IProgress not found")  # no ipywidgets
use_style()  # the book's figure style
shown = FigureLog()  # shows each figure and keeps what the style check reads

# The store of chapters 3 and 4 (run alone: the DIGITS store, built here).
store = prepare_store(store_dir,
                      StoreNeeds(dataset, n_models, forget_sets, n_oracles,
                                 n_held_out_oracles,
                                 ["do_nothing", "oracle_matching"]),
                      device=device, root=data_root, seed=seed,
                      progress=progress)
data = load_dataset(dataset, root=data_root)
D = data.name
dev = resolve_device(device)
model_ids = list(range(n_models))
results = {"parameters": {"dataset": dataset, "forget_sets": forget_sets,
                          "n_models": n_models, "n_splits": n_splits,
                          "device": str(dev), "seed": seed}}

# %% [markdown]
# ## 1. Your method
#
# A method is a function `method(model, data, config, *, generator) -> model`:
#
# - `model`: one trained original model (a `torch.nn.Module`, on the device). Do not modify
#   it: work on a copy and return the copy.
# - `data`: the forget and retain examples as tensors on the same device, ready to feed to
#   the model: `data.forget_x`, `data.forget_y`, `data.retain_x`, `data.retain_y`.
# - `config`: a plain dict of your settings (below).
# - `generator`: a `torch.Generator` (on the CPU). Draw *every* random number from it
#   (shuffling, noise), so that each of the $N$ unlearned models is reproducible.
#
# The example: **shrink and perturb** {cite:p}`ash2020warmstart` scales every weight towards zero
# and adds a little noise, which weakens whatever the model memorised, then fine-tunes on the
# retain set to recover. It never looks at the forget set; replace it with yours.

# %%
def shrink_perturb(model, data, config, *, generator):
    """Shrink and perturb the weights, then fine-tune on the retain set."""
    model = copy.deepcopy(model).train()  # never modify the original
    with torch.no_grad():
        for p in model.parameters():
            noise = torch.randn(p.shape, generator=generator).to(p.device)
            p.mul_(config["shrink"]).add_(config["noise"] * noise)
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=0.9)
    for _ in range(config["epochs"]):
        order = torch.randperm(len(data.retain_y), generator=generator)
        for idx in order.to(data.device).split(64):
            out = model(data.retain_x[idx])
            loss = F.cross_entropy(out, data.retain_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


my_method = shrink_perturb  # <- your function
my_name = "shrink_perturb"  # <- its folder name in the store
my_config = {"shrink": 0.95, "noise": 0.005, "lr": 0.01, "epochs": 3}

# %% [markdown]
# ## 2. A quick check on one model
#
# Before spending minutes on $N$ models, run the method once and check the basics: it
# returns a model, it did not touch the original, it changed the weights (a method whose
# optimiser points at the wrong parameters changes nothing, a bug found in a public SCRUB),
# and the model still works.

# %%
full = full_models_folder(D)
forget = {k: store.forget_set(D, k) for k in forget_sets}
udata = UnlearnData.from_dataset(data, forget[forget_sets[0]], device=dev)
original = load_model(store.state_dict(full, model_ids[0]), arch="auto",
                      device=dev)
before = copy.deepcopy(original.state_dict())
model = my_method(original, udata, dict(my_config),
                  generator=torch.Generator().manual_seed(seed))
if not isinstance(model, torch.nn.Module):
    raise TypeError(f"the method returned {type(model).__name__}, not a model")
untouched = all(torch.equal(v, original.state_dict()[k])
                for k, v in before.items())
changed = sum(not torch.equal(v, model.state_dict()[k])
              for k, v in before.items())


def accuracy(m, x, y):
    return float((predict_logits(m, x).argmax(1) == y.cpu()).float().mean())


check = {
    "original_untouched": untouched,
    "tensors_changed": f"{changed} of {len(before)}",
    "forget_accuracy": accuracy(model, udata.forget_x, udata.forget_y),
    "retain_accuracy": accuracy(model, udata.retain_x, udata.retain_y),
    "test_accuracy": accuracy(model, data.normalize(data.val_x, device=dev),
                              data.val_y),
}
for key, value in check.items():
    print(f"{key:<20s} {value:.3f}" if isinstance(value, float)
          else f"{key:<20s} {value}")
if not untouched or changed == 0:
    raise ValueError("the method must change a copy of the model, not the "
                     "original (see the checks above)")
results["one_model_check"] = check

# %% [markdown]
# ## 3. Unlearn all $N$ models
#
# `unlearn_store` accepts your function directly; `name` is the folder it writes to,
# `unlearned/<DATASET>/<name>/forget_set_<k>/`. It skips models already in the folder, and it
# cannot tell that you edited your function, so this cell first removes the folder: every run
# of this notebook recomputes your method from scratch. The two reference methods come from
# the "Unlearning" chapter (the first cell made them if the store lacked them).

# %%
runs = {}
for k in forget_sets:
    shutil.rmtree(store.path(unlearned_folder(D, my_name, k)),
                  ignore_errors=True)
    run = unlearn_store(store, data, k, my_method, model_ids, name=my_name,
                        config=my_config, seed=seed, device=dev,
                        progress=progress)
    runs[str(k)] = {"written": len(run["written"]), "seconds": run["seconds"]}
    print(f"forget set {k}: {len(run['written'])} models in "
          f"{run['seconds']:.1f} s")
results["runs"] = runs

# %% [markdown]
# ## 4. Scores
#
# The same scoring as in "Computing KLOM": per group the 95th percentile of per-example
# KLOM with its interval (for the expected 95th percentile at this $N$), the noise floor at
# the same $N$, diagnostics, and accuracies.

# %%
compared = [my_name, "do_nothing", "oracle_matching"]
records = [score(store, data, k, name, model_ids=model_ids, n_splits=n_splits,
                 seed=seed)
           for k in forget_sets for name in compared]
results_table(records)  # a text table (print it); shown here as HTML

# %%
for k in forget_sets:
    display(shown(p95_bars([r for r in records if r["forget_set"] == k])))

# %% [markdown]
# ## 5. The verdict
#
# Where your method lands between the two reference points, per forget set: the share of
# the gap between doing nothing and oracle matching that it closes on the forget set (100%:
# as good as oracle matching, 0%: no better than doing nothing, negative: worse), and what it
# costs on the retain and validation groups compared with doing nothing.

# %%
groups = ("forget", "retain", "validation")
verdict = {}
for k in forget_sets:
    r = {rec["method"]: rec for rec in records if rec["forget_set"] == k}
    mine, nothing = r[my_name], r["do_nothing"]
    best = r["oracle_matching"]
    gap = nothing["forget"]["p95"] - best["forget"]["p95"]
    closed = ((nothing["forget"]["p95"] - mine["forget"]["p95"]) / gap
              if gap > 0 else None)
    verdict[str(k)] = {
        "forget_gap_closed": closed,
        **{f"{g}_p95": {m: r[m][g]["p95"] for m in compared} for g in groups},
        "accuracy": mine["accuracy"]}
    print(f"forget set {k} ({len(forget[k])} images):")
    if closed is not None:
        print(f"  forget: {mine['forget']['p95']:.2f} "
              f"closes {closed:.0%} of the gap "
              f"between doing nothing ({nothing['forget']['p95']:.2f})\n"
              f"          and oracle matching ({best['forget']['p95']:.2f})")
    floor = nothing.get("noise_floor")
    if floor is None:
        at = "no noise floor: too few oracles"
    elif floor["n_per_side"] == mine["n_unlearned"]:
        at = f"N={mine['n_unlearned']}"
    else:
        at = (f"measured at N={floor['n_per_side']}, not at the methods' "
              f"N={mine['n_unlearned']}")
    for g in ("retain", "validation"):
        level = f"{floor[g]['p95']:.2f}, " if floor else ""
        print(f"  {g}: {mine[g]['p95']:.2f} against "
              f"{nothing[g]['p95']:.2f} for doing nothing "
              f"(noise floor {level}{at})")
results["verdict"] = verdict
closed = [v["forget_gap_closed"] for v in verdict.values()
          if v["forget_gap_closed"] is not None]
worse = sum(verdict[str(k)][f"{g}_p95"][my_name]
            > verdict[str(k)][f"{g}_p95"]["do_nothing"]
            for k in forget_sets for g in ("retain", "validation"))
acc_change = max(abs(r[my_name]["accuracy"]["test"]
                     - r["do_nothing"]["accuracy"]["test"])
                 for r in [{rec["method"]: rec for rec in records
                            if rec["forget_set"] == k}
                           for k in forget_sets])
display(*glue(results,
              closed_min=f"{100 * min(closed):.0f}%" if closed else "n/a",
              closed_max=f"{100 * max(closed):.0f}%" if closed else "n/a",
              n_worse=worse, n_pairs=2 * len(forget_sets),
              acc_change=f"{100 * acc_change:.1f}"))

# %% [markdown]
# For the example, a mixed picture: shrinking and perturbing the weights moves the
# forget-set margins somewhat towards the oracles' (it closes {glue}`closed_min` to
# {glue}`closed_max` of the gap on the forget sets of this run), but it moves *every*
# margin: on {glue}`n_worse` of the {glue}`n_pairs` retain and validation groups its score is
# above that of doing nothing, while the test accuracy changes by at most
# {glue}`acc_change` points. This is the kind of damage that accuracy does not show and KLOM does: the
# unlearned models classify as well as before, but they are no longer distributed like
# models that were trained without the forget set.
#
# **To make your method available by name** (to the "Unlearning" and "Computing KLOM"
# chapters through their `methods` parameter, and to `unlearn_store(..., "my_method", ...)`),
# register it with its default settings per dataset, in a module you import before running
# them:
#
# ```python
# from klom_utils.unlearn import register_method
#
# DEFAULTS = {"DIGITS": {"shrink": 0.95, "noise": 0.005,
#                        "lr": 0.01, "epochs": 3}}
#
# @register_method("shrink_perturb", DEFAULTS)
# def shrink_perturb(model, data, config, *, generator):
#     ...
# ```
#
# ## Summary
#
# - Write one function `(model, data, config, *, generator) -> model`; `unlearn_store`
#   applies it to every original model and `score` evaluates it, exactly as the built-in
#   methods.
# - Check one model first: the original untouched, the weights changed, the accuracies sane.
# - Judge a method on all three groups, against doing nothing and oracle matching, with the
#   noise floor at the same N and the intervals in view; the numbers of this run are above and in
#   `06_your_method.json`.
#
# ## What you learned
#
# - The interface of a method, and the checks to run on one model before unlearning $N$.
# - How to score your method exactly like the built-in ones, and how to read the verdict:
#   the share of the gap it closes on the forget set, and what it costs elsewhere.
#
# ## Exercises
#
# 1. Set `"noise": 0.0` and `"shrink": 1.0` in `my_config` (plain fine-tuning on the retain
#    set): how much of the gap does it close now?
# 2. Replace the method by gradient ascent on the forget set for one epoch followed by one
#    epoch on the retain set. Which group does it damage?
# 3. Register your method with `register_method` and score it in chapter 5 through its
#    `methods` parameter.

# %% tags=["hide-input"] mystnb={"code_prompt_show": "Show the cell that saves this page's key numbers", "code_prompt_hide": "Hide the cell that saves this page's key numbers"}
# The key numbers of this page, for the tests: <results_dir>/06_your_method.json
keep = ("method", "forget_set", "forget_size", "n_unlearned", "n_oracles",
        "n_per_side", "forget", "retain", "validation", "noise_floor", "matched",
        "diagnostics", "accuracy")
results["records"] = [{key: r[key] for key in keep if key in r} for r in records]
results["figures"] = shown.records
out = Path(results_dir) / "06_your_method.json"
out.parent.mkdir(parents=True, exist_ok=True)
_ = out.write_text(json.dumps(jsonable(results), indent=2, allow_nan=False))

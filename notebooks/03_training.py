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
# # Training the models
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/klom-tutorial/klom-tutorial/blob/main/notebooks/03_training.ipynb)
#
# **What you will learn.** How the models behind a KLOM evaluation are trained: the recipe
# (the authors' CIFAR-10 ResNet-9 recipe, and the small DIGITS recipe this book runs by
# default); why we train many models *at once* (their parameters stacked into one network) and
# how many models per second that gives on your machine; how to train the three groups that
# KLOM needs (original "full" models, oracles retrained without each forget set, and a few
# held-out oracles for the oracle-matching method) into a **model store** laid out like the
# Hub dataset `royrin/KLOM-models`; and how to check the models (per-model test accuracy,
# accuracy on the forget set). The default run trains 100 small models per group on the
# embedded DIGITS dataset on a CPU (the times are printed below); with `params/paper.yaml` the same notebook
# trains ResNet-9s on CIFAR-10 on a GPU. Every later chapter reads the store written here.
#
# > **Embedded run.** The numbers on this page come from the default run: one-hidden-layer
# > MLPs on the 8×8 DIGITS images, trained on the CPU of the machine that built this book.
# > **What runs on a GPU:** with `params/paper.yaml` (`dataset="cifar10"`, `device="cuda"`)
# > the same cells train ResNet-9s on CIFAR-10 with the authors' recipe, several at once, in
# > mixed precision. Status of that path: not yet run on a GPU by this project (no GPU
# > measurement exists; the code paths are tested on CPU with tiny inputs). [Paper
# > scale](../book/paper_scale.md) keeps the measured status.

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
n_models = 100  # full models per group (and the N that methods are scored at)
n_oracles = None  # per forget set (None: 2 * n_models, for a noise floor at N)
forget_sets = [1, 2, 3]  # train oracles without each of these forget sets
n_held_out_oracles = 10  # extra oracles per forget set, for oracle matching
stack_sizes = [1, 10, 100]  # models trained at once, for the throughput test
device = "auto"  # "auto": CUDA when present, else CPU
progress = True  # progress bars (the book's build turns them off)
data_root = None  # CIFAR-10 download cache (None: $KLOM_CACHE or ~/.cache)
hub_cache_dir = None  # Hugging Face cache for the CIFAR-10 forget sets
seed = 0
store_dir = "klom_run/store"  # the model store (KLOM-models layout)
results_dir = "klom_run/results"  # writes <results_dir>/03_training.json

# %%
# %matplotlib inline
import dataclasses
import json
import re
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from klom_utils import open_store
from klom_utils.data import load_dataset
from klom_utils.devices import resolve_device
from klom_utils.layout import (
    HELD_OUT_ORACLE_START,
    full_models_folder,
    oracle_folder,
)
from klom_utils.plots import COLORS, OTHER_COLORS, FigureLog, figure, use_style
from klom_utils.stack import init_state_dict
from klom_utils.train import default_config, fit, lr_at, train_models

warnings.filterwarnings("ignore", "IProgress not found")  # no ipywidgets
use_style()  # the book's figure style
shown = FigureLog()  # shows each figure and keeps what the style check reads

dev = resolve_device(device)
data = load_dataset(dataset, root=data_root)
D = data.name  # store name: "DIGITS" or "CIFAR10"
config = default_config(dataset, seed=seed)
store = open_store(store_dir, create=True)
print(f"{D}: {data.n_train} train and {data.n_val} test images of shape "
      f"{tuple(data.train_x.shape[1:])}, {data.num_classes} classes")
print(f"device: {dev}")
results = {"parameters": {
    "dataset": dataset, "n_models": n_models, "n_oracles": n_oracles,
    "forget_sets": forget_sets,
    "n_held_out_oracles": n_held_out_oracles, "stack_sizes": stack_sizes,
    "device": str(dev), "seed": seed}}

# %% [markdown]
# ## 1. The recipe
#
# The models of `royrin/KLOM-models` are ResNet-9s trained on the 50,000 CIFAR-10 training
# images: SGD with momentum 0.9 and weight decay $5\cdot10^{-4}$, batch size 512, 24 epochs,
# a triangular learning rate that rises linearly from 0 to 0.4 at epoch 5 and falls back to 0
# at epoch 24 (stepped every iteration), mixed precision, no data augmentation. The DIGITS
# default is the same kind of recipe, scaled down: the UCI 8×8 handwritten digits (shipped with the package)
# (1,442 training images), a one-hidden-layer MLP, 20 epochs. Both recipes live in
# `klom_utils.train.DEFAULT_CONFIGS`; every field that changes the models is recorded in the
# store (`klom_train.json`), so a store is never silently extended with models trained
# differently.

# %%
recipes = {"CIFAR10": default_config("cifar10"),
           "DIGITS": default_config("digits")}
fields = [f.name for f in dataclasses.fields(config)]
print(f"{'':<16s}{'CIFAR10':>12s}{'DIGITS':>12s}")
for name in fields:
    row = [str(getattr(recipes[d], name)) for d in recipes]
    print(f"{name:<16s}{row[0]:>12s}{row[1]:>12s}")
results["config"] = {k: v for k, v in dataclasses.asdict(config).items()
                     if isinstance(v, (int, float, str, bool)) or v is None}

# %%
fig, axes = figure(2, height=2.8)
for ax, (name, cfg) in zip(axes, recipes.items()):
    steps = 100 * cfg.epochs  # 100 points per epoch
    lrs = [lr_at(s, 100, cfg) for s in range(steps + 1)]
    ax.plot(np.arange(steps + 1) / 100, lrs, color=OTHER_COLORS[0])
    ax.set(title=f"{name} ({cfg.arch})", xlabel="epoch",
           ylabel="learning rate")
shown(fig)

# %% [markdown]
# ## 2. Many models at once
#
# KLOM compares *distributions* over training runs, so it needs about 100 models per group
# (the noise floor of the previous chapter). Small models leave a GPU (or a CPU) mostly idle, so
# `klom_utils.train` trains $M$ models at once: their parameters are stacked along a new
# leading dimension and one batched forward and backward pass updates all of them. Each model
# still has its own initialisation and its own data order, drawn from seeds derived from
# (dataset, group, model id), so model 7 is the same model whether it was trained alone or
# beside 99 others, on this machine or in another process of a job array.
#
# How much does stacking pay? We time one epoch for several stack sizes $M$ on this machine
# and divide by the epochs of the recipe.

# %%
def epoch_rate(m):
    """Models per second of the full recipe, timed on one epoch of m models."""
    cfg = dataclasses.replace(config, epochs=1, peak_epoch=0.5)
    inits = [init_state_dict(cfg.arch, i, data.num_classes, cfg.hidden)
             for i in range(m)]
    start = time.perf_counter()
    fit(data.to(dev), np.arange(data.n_train), inits, list(range(m)), cfg,
        dev, progress=False)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return m / ((time.perf_counter() - start) * config.epochs)


epoch_rate(min(stack_sizes))  # warm-up (first calls are slower)
rates = {m: epoch_rate(m) for m in stack_sizes}
for m, r in rates.items():
    print(f"{m:4d} models at once: {r:8.2f} models per second "
          f"({r / rates[min(stack_sizes)]:5.1f}x one at a time)")
results["throughput_models_per_s"] = {str(m): r for m, r in rates.items()}

# %%
fig, (ax,) = figure(1, panel_width=5.0, height=3.0)
ax.plot(list(rates), list(rates.values()), "o-", color=OTHER_COLORS[0])
ax.set(xscale="log", yscale="log", xlabel="models trained at once (M)",
       ylabel="models per second", title=f"{D} recipe on {dev.type}")
ax.set_xticks(list(rates), [str(m) for m in rates])
ax.minorticks_off()
ax.yaxis.set_major_formatter("{x:g}")
shown(fig)

# %% [markdown]
# The recipe's own stack size is `config.stack` (for DIGITS up to 500 models at once, which
# trains many models faster than stacks of 100 on a CPU, bit for bit the same models; for
# CIFAR-10 `"auto"`: measured on the GPU among 1, 2 and 4 ResNet-9s at once). Timings include
# evaluating the models on both splits.
#
# ## 3. Full models
#
# `train_models` trains the models with the given ids into `full_models/<DATASET>/` of the
# store and writes, per model, what the Hub dataset holds: the state dict
# (`sd_<id>____epoch_<e>.pt`), the logits on the train and test splits
# (`train_logits_<id>.pt`, `val_logits_<id>.pt`) and the margins
# (`<id>__train_margins_<e>.npy`, `<id>__val_margins_<e>.npy`). Models already in the store are
# skipped, so an interrupted run resumes, and several processes can fill one store with
# disjoint id ranges (`klom train --models 0-49` and `--models 50-99`).

# %%
timings = {}


def train_group(ids, forget_set=None):
    """Train the models `ids` of one group into the store, timed."""
    start = time.perf_counter()
    done = train_models(data, store, ids, forget_set=forget_set, device=dev,
                        config=config, progress=progress, root=data_root)
    seconds = time.perf_counter() - start
    name = "full" if forget_set is None else f"forget_set_{forget_set}"
    if min(ids) >= HELD_OUT_ORACLE_START:
        name += "_held_out"
    timings[name] = {"trained": len(done), "seconds": seconds}
    rate = f"{len(done) / seconds:.1f} models/s" if done else "nothing to do"
    print(f"{name}: trained {len(done)} of {len(ids)} models in "
          f"{seconds:.1f} s ({rate})")


full_ids = list(range(n_models))
train_group(full_ids)

# %% [markdown]
# ## 4. Oracles, and held-out oracles
#
# An oracle for forget set $k$ is trained exactly like a full model, on the training set
# without the forget set. The forget sets live in the store (`forget_set_indices/<DATASET>/`):
# for CIFAR-10 they are the paper's ten sets, copied from the Hub; for DIGITS the package
# writes three, of the same kinds as the paper's: a small random set (10 images), a larger one
# (50), and a sub-population (the 50 images of one digit nearest to one image). The random
# sets are drawn by ranking the training indices with a hash of a tag. How set 1 was chosen
# matters for what the later chapters show: only a small share of the DIGITS training images
# is *memorised* by these models (most are predicted as well from their neighbours, by
# oracles too), so most random sets of 10 would score about as low for doing nothing as for a perfect
# method, and no method could be told apart on them. Set 1 is therefore the first of the tags
# tried (0 to 5) whose set the models memorise (tag 2). That is a choice in favour of a
# visible signal; the paper's CIFAR-10 random sets were not selected this way (numpy seeds 0,
# 1 and 2).
#
# We train **twice as many oracles as full models** ($2N$, ids 0 to $2N-1$). A method's $N$
# unlearned models are scored against $N$ oracles; the noise floor (what a perfect method
# would score) compares $N$ oracles with $N$ *other* oracles, so it needs $2N$ of them to be
# measured at the same $N$. KLOM depends strongly on $N$ (chapter 1), so a floor at another $N$
# would be no reference at all.
#
# Oracle matching, one of the unlearning methods of the next chapters, fine-tunes towards the
# outputs of oracles. Scoring it against the same oracles would be circular, so it uses extra
# **held-out** oracles: by the package's convention, oracle ids from
# `HELD_OUT_ORACLE_START` (1000) up are never used for scoring.

# %%
if D == "CIFAR10":  # copy the paper's forget sets from the Hub into the store
    from klom_utils import download

    hub = download([f"forget_set_indices/{D}"], cache_dir=hub_cache_dir)
    for k in forget_sets:
        store.write_forget_set(D, k, hub.forget_set(D, k))
held_out_ids = list(range(HELD_OUT_ORACLE_START,
                          HELD_OUT_ORACLE_START + n_held_out_oracles))
oracle_ids = list(range(2 * n_models if n_oracles is None else n_oracles))
for k in forget_sets:
    train_group(oracle_ids, forget_set=k)
    if held_out_ids:
        train_group(held_out_ids, forget_set=k)
for k in store.forget_set_ids(D):
    size = len(store.forget_set(D, k))
    about = store.forget_set_description(D, k) or ""
    print(textwrap.fill(f"forget set {k} ({size} images): {about}", 78,
                        subsequent_indent="    "))
results["timings"] = timings
results["forget_set_sizes"] = {str(k): int(len(store.forget_set(D, k)))
                               for k in forget_sets}

# %% [markdown]
# ## 5. Checking the models
#
# Before any unlearning, look at the models: every full model should fit its training set and
# reach a similar test accuracy; a model that failed (a diverged run, a bad seed) would distort
# every KLOM score computed from it. We read the logits back from the store and compute each
# model's accuracy on the test split, on the retain set and on the forget set. Oracles never
# saw the forget set, so their forget-set accuracy is that of unseen images; for the full
# models it is training accuracy.

# %%
def model_accuracies(folder, ids, forget):
    """Per-model accuracy on test, forget and retain images: (n_models, 3)."""
    keep = np.ones(data.n_train, bool)
    keep[forget] = False
    rows = []
    for i in ids:
        train_ok = (store.logits(folder, "train", i).argmax(1)
                    == data.train_y).numpy()
        val_ok = (store.logits(folder, "val", i).argmax(1)
                  == data.val_y).numpy()
        rows.append([val_ok.mean(), train_ok[forget].mean(),
                     train_ok[keep].mean()])
    return np.array(rows)


accuracy = {}
k0 = forget_sets[0]
forget0 = store.forget_set(D, k0)
full_folder = full_models_folder(D)
accuracy["full models"] = model_accuracies(full_folder, full_ids, forget0)
for k in forget_sets:
    accuracy[f"oracles, set {k}"] = model_accuracies(
        oracle_folder(D, k), full_ids, store.forget_set(D, k))
print(f"{'group':<18s}{'test':>16s}{'forget set':>12s}{'retain':>9s}")
for name, acc in accuracy.items():
    print(f"{name:<18s}{acc[:, 0].mean():8.3f} ± {acc[:, 0].std():.3f}"
          f"{acc[:, 1].mean():12.3f}{acc[:, 2].mean():9.3f}")
results["accuracy"] = {
    name: {"test_mean": float(a[:, 0].mean()),
           "test_min": float(a[:, 0].min()),
           "test_max": float(a[:, 0].max()),
           "forget_mean": float(a[:, 1].mean()),
           "retain_mean": float(a[:, 2].mean()), "n_models": int(len(a))}
    for name, a in accuracy.items()}

# %%
fig, (ax,) = figure(1, panel_width=6.0)
test_acc = np.concatenate([a[:, 0] for a in accuracy.values()])
width = max(1 / data.n_val, np.ptp(test_acc) / 25)  # test accuracy is discrete
edges = np.arange(test_acc.min() - width / 2, test_acc.max() + width, width)
oracle_styles = iter(["-", "--", ":", "-."] * len(accuracy))
for name, acc in accuracy.items():
    original = name == "full models"
    ax.hist(acc[:, 0], edges, histtype="step", linewidth=1.5, label=name,
            color=COLORS["original" if original else "oracle"],
            linestyle="-" if original else next(oracle_styles))
ax.set(xlabel="test accuracy of one model", ylabel="models",
       title=f"{D}: per-model test accuracy")
ax.legend()
shown(fig)

# %% [markdown]
# The test accuracies of independently trained models spread over a point or two: this
# spread between training runs is exactly what KLOM has to see past, and why it needs many
# models. Full models fit their training set (retain accuracy near 1), forget set included.
# For the oracles the forget images are unseen: they classify them about as well as test
# images, so accuracy alone says little about whether a model was trained on them. Margins,
# and their distribution over many models, say more (next chapters).
#
# ## 6. What the store holds

# %%
for folder in store.folders():
    ids = store.model_ids(folder)
    # ids from 1000: held-out oracles
    held = (sum(i >= HELD_OUT_ORACLE_START for i in ids)
            if folder.startswith("oracles/") else 0)
    print(f"{folder:<32s}{len(ids) - held:5d} models"
          + (f" + {held} held out" if held else ""))
files = sorted(p.name for p in store.path(full_folder).iterdir()
               if re.match(r"(0__|sd_0_|(train|val)_logits_0\.)", p.name))
print("\nfiles of model 0 in", full_folder + ":", *files, sep="\n  ")
size = sum(p.stat().st_size for p in store.root.rglob("*") if p.is_file())
print(f"\nstore size: {size / 2**20:.1f} MiB")
results["store_folders"] = {f: len(store.model_ids(f))
                            for f in store.folders()}
results["store_mib"] = size / 2**20

# %% [markdown]
# ## Summary
#
# - The recipe is fixed per dataset and recorded in the store; the CIFAR-10 one is the
#   authors' (ResNet-9, 24 epochs, triangular learning rate peaking at 0.4).
# - Training many small models at once is much faster than one at a time: the table of
#   section 2 gives the measured models per second on this machine.
# - The store now holds `n_models` full models, `2 * n_models` oracles for each forget set
#   (half to score methods against, half for a noise floor at the same N), and held-out
#   oracles (ids from 1000) for oracle matching, in the Hub's layout.
# - Full models fit the forget set; oracles treat it as unseen data. The next chapters measure
#   how unlearning methods move the full models towards the oracles.
#
# ## What you learned
#
# - The training recipe is part of the experiment: it is recorded in the store, and
#   originals and oracles share it.
# - Why a KLOM evaluation trains $2N$ oracles per forget set, plus held-out ones for oracle
#   matching.
# - How to check models before scoring them: per-model accuracies, and what they cannot show.
#
# ## Exercises
#
# 1. Add a stack size of 30 to `stack_sizes`: where does the throughput stop growing on your
#    machine?
# 2. Train 20 full models with `epochs` halved (`dataclasses.replace(config, epochs=10)`) into
#    a new store: how do their test accuracies and their training-set margins compare?
# 3. Count the forget examples of set 1 that the full models classify correctly but most
#    oracles do not: these are the memorised examples.
#
# To train at paper scale on a GPU (CIFAR-10, ResNet-9, 100 models per group), run this
# notebook with `params/paper.yaml` (see [Paper scale](../book/paper_scale.md) for the cost and
# the commands), or train from the command
# line: `klom train --dataset cifar10 --store STORE --models 0-99 [--forget-set K]`.

# %% tags=["hide-input"] mystnb={"code_prompt_show": "Show the cell that saves this page's key numbers", "code_prompt_hide": "Hide the cell that saves this page's key numbers"}
# The key numbers of this page, for the tests: <results_dir>/03_training.json
results["figures"] = shown.records
out = Path(results_dir) / "03_training.json"
out.parent.mkdir(parents=True, exist_ok=True)
_ = out.write_text(json.dumps(results, indent=2))

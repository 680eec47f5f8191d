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
# # Downloading precomputed models
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/klom-tutorial/klom-tutorial/blob/main/notebooks/02_download.ipynb)
#
# **What you will learn.** What the Hugging Face dataset `royrin/KLOM-models` holds (the
# precomputed models of the KLOM paper: CIFAR-10 original models, with and without data
# augmentation, oracles retrained without each of ten forget sets, LIVING-17 ResNet-18s, and
# the forget sets themselves), what each file contains, what each folder lets you do here
# (margins only, or the whole pipeline), and how
# to download only the folders you need with `klom_utils.download`; the sanity checks to run
# after a download (is the row order of the logits the dataset's order? are the forget sets
# the published ones?); how the margins of original models and of oracles differ on a forget
# set; what data augmentation does to margins; and how to compute the KLOM of "doing nothing"
# from precomputed margins alone, with no training at all.
#
# > **Embedded run: these are not the Hub's models.** The Hub is not reachable from the
# > machine that builds this book, so the published page runs the *same code* on a local
# > store: DIGITS models trained on a CPU (no GPU needed) by the next chapter ("Training the models") in
# > the same build (run alone, this page trains them itself). A store is a store, whether
# > downloaded or trained (both have the Hub's layout), and every line after the first code
# > cell is identical in the two cases. Set `source = "hub"` and `dataset = "cifar10"` (as
# > `params/paper.yaml` does) to run this page on the real thing; figures that need the Hub
# > say so. Status: the download code is tested offline, through the real `huggingface_hub`
# > calls, against a local stand-in of the Hub in its layout; this project has not yet run it
# > against the Hub itself. [Paper scale](../book/paper_scale.md) keeps the measured status.

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
source = "local"  # "local": notebook 04's store; "hub": royrin/KLOM-models
dataset = "digits"  # "digits" (local), or "cifar10" (local or hub)
forget_sets = [1, 2, 3]  # forget sets whose oracles are read (Hub: 1 to 10)
n_models = 100  # models per group to read (at most)
n_oracles = None  # per forget set in a local store (None: 2 * n_models)
hub_kinds = ["margins", "logits"]  # files to download; "checkpoints": large
hub_cache_dir = None  # Hugging Face cache (None: ~/.cache/huggingface)
data_root = None  # CIFAR-10 download cache (None: $KLOM_CACHE or ~/.cache)
device = "auto"  # to train a missing local DIGITS store ("auto": CUDA if any)
progress = True  # progress bars (the book's build turns them off)
seed = 0
store_dir = "klom_run/store"  # the local store (read when source is local)
results_dir = "klom_run/results"  # writes <results_dir>/02_download.json

# %%
# %matplotlib inline
import json
import re
import time
import warnings
from pathlib import Path

import numpy as np
from IPython.display import display

from klom_utils import download, klom, noise_floor, open_store, summarize
from klom_utils.data import dataset_name, load_dataset
from klom_utils.easydub import export
from klom_utils.hub import (
    CARD_FOLDERS,
    EASYDUB_REPO_ID,
    REPO_ID,
    download_plan,
    local_plan,
)
from klom_utils.layout import (
    forget_set_folder,
    full_models_folder,
    oracle_folder,
)
from klom_utils.oracles import scoring_oracle_ids
from klom_utils.plots import (
    COLORS,
    FigureLog,
    figure,
    klom_distributions,
    margin_histograms,
    use_style,
)
from klom_utils.prepare import StoreNeeds, prepare_store
from klom_utils.store import folder_margins
from klom_utils.tables import glue
from klom_utils.train import default_config, train_models

warnings.filterwarnings("ignore", "IProgress not found")  # no ipywidgets
use_style()  # the book's figure style
shown = FigureLog()  # shows each figure and keeps what the style check reads

D = dataset_name(dataset)  # store name: "DIGITS" or "CIFAR10"
if source == "hub":
    if D != "CIFAR10":
        raise ValueError("the Hub holds CIFAR-10 models: set "
                         f"dataset='cifar10', not {dataset!r}")
    folders = [full_models_folder(D), "full_models/CIFAR10_augmented",
               *(oracle_folder(D, k) for k in forget_sets),
               f"forget_set_indices/{D}"]
    store = download(folders, kinds=hub_kinds, cache_dir=hub_cache_dir)
    print(f"downloaded {len(folders)} folders of royrin/KLOM-models")
elif source == "local":
    # chapter 3's store; run alone, the DIGITS store is built here
    store = prepare_store(
        store_dir, StoreNeeds(dataset, n_models, forget_sets, n_oracles),
        device=device, root=data_root, seed=seed, progress=progress)
else:
    raise ValueError(f"source must be 'local' or 'hub', got {source!r}")
results = {"parameters": {"source": source, "dataset": dataset,
                          "forget_sets": forget_sets, "n_models": n_models,
                          "hub_kinds": hub_kinds, "seed": seed}}

# %% [markdown]
# ## 1. What the Hub dataset holds
#
# `royrin/KLOM-models` is a dataset repository of about 10 GB. Its card names these folders
# (`klom_utils.hub.CARD_FOLDERS`):

# %%
for folder in CARD_FOLDERS:
    print(folder)

# %% [markdown]
# | folder | what |
# |---|---|
# | `full_models/CIFAR10` | original ResNet-9s trained on all 50,000 CIFAR-10 training images |
# | `full_models/CIFAR10_augmented` | the same, trained with flips and translations |
# | `full_models/LIVING17` | ResNet-18s on LIVING-17, a 17-class subset of ImageNet |
# | `oracles/CIFAR10/forget_set_k` | ResNet-9s retrained without forget set $k$ ($k$ = 1 … 10) |
# | `forget_set_indices/CIFAR10`, `…/LIVING17` | the forget sets: int64 indices into the training split |
#
# What each folder lets you do with `klom_utils`:
#
# - `full_models/CIFAR10` + `oracles/CIFAR10/…`: the whole pipeline (margins, KLOM of doing
#   nothing, unlearning from the checkpoints, scoring), with `klom unlearn --dataset cifar10`
#   and `klom score`; CIFAR-10 downloads itself.
# - `full_models/CIFAR10_augmented`: margins and KLOM; more models, and oracles, with the same
#   recipe: `klom train --dataset cifar10 --augment` writes `full_models/CIFAR10_augmented`
#   and `oracles/CIFAR10_augmented/…` (the Hub has no augmented oracles).
# - `full_models/LIVING17`: margins only from the files (test margins from
#   `##__val_margins_#.npy`, training margins from the logits with the LIVING-17 labels), and
#   KLOM of doing nothing against the stacked oracle margins
#   `oracle_models/LIVING17/only_margins/forget_set_k`, with
#   `klom_utils.evaluate.do_nothing_klom(store, "living17", k, labels=...)` (the labels from
#   `read_living17_labels(root)`).
# - `full_models/LIVING17` + your LIVING-17 files: the whole pipeline with ResNet-18s (the
#   checkpoints load with `load_model(path, arch="resnet18", num_classes=17)`), with
#   `klom train` / `klom unlearn --dataset living17 --data-root DIR`, DIR holding
#   `living17_{train,val}_{images,labels}.pt` (the authors' format: uint8 images, int64
#   labels; not on the Hub).
# - `forget_set_indices/…`: the forget sets every step reads, fetched whole by `download`.
#
# Inside a model folder, for model `##` (an integer id) and epoch index `#`:
#
# | file | content |
# |---|---|
# | `train_logits_##.pt` | float32 tensor (50000, 10): logits on the **training** split, in CIFAR-10's canonical order, evaluation mode, no augmentation |
# | `val_logits_##.pt` | float32 tensor (10000, 10): logits on the **test** split |
# | `##__val_margins_#.npy` | float32 (10000,): margins on the test split |
# | `sd_##____epoch_#.pt` | the model's state dict (large; the ResNet-9 of `klom_utils.models` loads it) |
#
# The dataset card swaps the descriptions of the two logits files; the shapes above are the
# truth, and the loader checks the number of rows against the split. There are no
# training-split margin files, so margins on the training split are computed from the logits
# and the labels: that is why this page needs the CIFAR-10 labels.
#
# `klom_utils.download(folders, kinds=...)` fetches only the folders asked for, and only some
# kinds of files: `"margins"` and `"logits"` (the default, a few hundred MB per folder of 100
# models) or also `"checkpoints"` (needed only to unlearn the Hub's models yourself). It goes
# through `huggingface_hub`, which caches and resumes, and works offline once cached
# (`HF_HUB_OFFLINE=1`). The call this page makes with `source = "hub"`:
#
# ```python
# store = download(["full_models/CIFAR10", "full_models/CIFAR10_augmented",
#                   "oracles/CIFAR10/forget_set_1", ...,
#                   "forget_set_indices/CIFAR10"],
#                  kinds=["margins", "logits"])
# ```
#
# Here is one model's files in the store this page reads, and what they hold:

# %%
full = full_models_folder(D)
data = load_dataset(dataset, root=data_root)
labels = {"train": data.train_y.numpy(), "val": data.val_y.numpy()}
full_ids = store.model_ids(full)[:n_models]
m0 = full_ids[0]
pattern = re.compile(rf"({m0}__|sd_{m0}_|(train|val)_logits_{m0}\.)")
for path in sorted(store.path(full).iterdir()):
    if not pattern.match(path.name):
        continue
    if path.suffix == ".npy":
        a = np.load(path)
        what = f"margins, {a.dtype} array of shape {a.shape}"
    elif "logits" in path.name:
        t = store.logits(full, "train" if "train" in path.name else "val", m0)
        rows, classes = t.shape
        what = (f"logits, {str(t.dtype).removeprefix('torch.')}: "
                f"{rows} images x {classes} classes")
    else:
        what = f"state dict, {len(store.state_dict(full, m0))} tensors"
    print(f"{path.name:<28s} {what}")
print(f"\n{D}: {data.n_train} training and {data.n_val} test images")

# %% [markdown]
# ## 2. Sanity checks after a download
#
# **Row order.** Every index (forget sets, rows of the logits) refers to the training split
# in its canonical order. If the order of your copy of the dataset differs, every margin is
# computed against the wrong label, and KLOM quietly compares noise. The check is cheap: the
# original models fit their training set almost perfectly, so the arg-max of their training
# logits equals the label for nearly every row when the order is right, and for about one
# row in ten (chance) when it is not. We run it on a few models, and on shuffled labels for
# contrast.

# %%
rng = np.random.default_rng(seed)
shuffled = rng.permutation(labels["train"])
agree, agree_shuffled = [], []
for i in full_ids[:5]:
    pred = store.logits(full, "train", i).argmax(1).numpy()
    agree.append(float((pred == labels["train"]).mean()))
    agree_shuffled.append(float((pred == shuffled).mean()))
    print(f"model {i}: argmax == label on {agree[-1]:.2%} of training rows "
          f"(shuffled labels: {agree_shuffled[-1]:.2%})")
if min(agree) < 0.9:
    raise ValueError("the training logits do not match the labels' order: "
                     "check the dataset's order before going further")
results["label_order_agreement"] = {"min": min(agree),
                                    "shuffled_max": max(agree_shuffled)}

# %% [markdown]
# **Forget sets.** Each is a sorted array of distinct indices into the training split. The
# CIFAR-10 sets have sizes 10, 100, 1000 (random, sets 1 to 3), 10, 100, 500 (built from the
# first principal component of a datamodel matrix, sets 4 to 6), the same from the second
# component (sets 7 to 9), and 100 images nearest in CLIP space to one image (set 10). The
# published contents of sets 1, 4 and 7 are known, so a download can be checked against
# them; for the local DIGITS store we check the structure only.

# %%
KNOWN_CIFAR10 = {  # from the dataset's documentation
    1: [11841, 12363, 19602, 25747, 26128, 30346, 31902, 32490, 42642, 45519],
    4: [3799, 9235, 22321, 22908, 23898, 28510, 29795, 33079, 45477, 46715],
    7: [10231, 11157, 14072, 21786, 23868, 33784, 33982, 36910, 44380, 47614],
}
forget = {}
checks = {}
for k in store.forget_set_ids(D):
    f = store.forget_set(D, k)
    ok = bool(len(np.unique(f)) == len(f) and f.min() >= 0
              and f.max() < data.n_train)
    line = f"forget set {k}: {len(f):5d} indices, distinct and in range: {ok}"
    if D == "CIFAR10" and source == "hub" and k in KNOWN_CIFAR10:
        same = bool(np.array_equal(np.sort(f), KNOWN_CIFAR10[k]))
        line += f", matches the published set: {same}"
        ok = ok and same
    checks[str(k)] = ok
    print(line)
    if k in forget_sets:
        forget[k] = f
missing = sorted(set(forget_sets) - set(forget))
if missing or not all(checks.values()):
    raise ValueError(f"forget sets missing {missing} or failing {checks}")
results["forget_set_checks"] = checks
results["forget_set_sizes"] = {str(k): int(len(f)) for k, f in forget.items()}

# %% [markdown]
# **Models.** How many models each folder holds. In a store that our own training wrote,
# oracle ids from 1000 up are *held out* for the oracle-matching method and never used for
# scoring (`klom_utils.oracles.scoring_oracle_ids` leaves them out); the Hub has none.

# %%
spare_ids = {k: scoring_oracle_ids(store, D, k) for k in forget_sets}
oracle_ids = {k: ids[:n_models] for k, ids in spare_ids.items()}
print(f"{full}: {len(full_ids)} models used")
for k, ids in oracle_ids.items():
    print(f"{oracle_folder(D, k)}: {len(ids)} oracles used")
results["n_full_models"] = len(full_ids)
results["n_oracles"] = {str(k): len(ids) for k, ids in oracle_ids.items()}

# %% [markdown]
# ## 3. Margins of full models and of oracles
#
# For each model we turn logits into margins (log-odds of the true class; see the previous
# chapter) on the training split followed by the test split: one array of shape
# (models, training + test examples) per folder. `folder_margins` reads margin files where
# the folder has them and computes margins from logits and labels where it does not, so it
# reads a Hub folder and one of ours alike.

# %%
k0 = forget_sets[0]
full_m = folder_margins(store, full, data, full_ids)
oracle_m = {k: folder_margins(store, oracle_folder(D, k), data, ids)
            for k, ids in oracle_ids.items()}
val = np.arange(data.n_train, data.n_train + data.n_val)
print(f"margins: full models {full_m.shape}, oracles of set {k0} "
      f"{oracle_m[k0].shape}")

# %%
fig, axes = figure(2)
for ax, (name, cols) in zip(axes, [(f"forget set {k0}", forget[k0]),
                                   ("test examples", val)]):
    a, b = full_m[:, cols].ravel(), oracle_m[k0][:, cols].ravel()
    edges = np.histogram_bin_edges(np.concatenate([a, b]), bins=40)
    ax.hist(b, edges, alpha=0.55, density=True, label="oracles",
            color=COLORS["oracle"])
    ax.hist(a, edges, alpha=0.55, density=True, label="full models",
            color=COLORS["original"])
    ax.set(title=name, xlabel="margin", ylabel="density")
axes[0].legend()
shown(fig)

# %% [markdown]
# On the test examples the two groups agree: neither saw them. On the forget set they agree
# on the typical images, which every model classifies confidently whether it trained on
# them or not, and differ on the atypical ones, where only a model that trained on the image
# is confident: that is memorisation, and it is what unlearning must undo. KLOM looks at the
# difference one example at a time, over the models. Here are the margins of three forget
# examples, one histogram per group on shared bins:

# %%
cols = forget[k0][:3]
fig = margin_histograms(oracle_m[k0][:, cols], full_m[:, cols],
                        examples=range(len(cols)),
                        titles=[f"train example {i}" for i in cols],
                        labels=("oracles", "full models"),
                        unlearned_colors=[COLORS["original"]] * len(cols))
shown(fig)

# %% [markdown]
# ## 4. What augmentation does to margins
#
# `full_models/CIFAR10_augmented` holds ResNet-9s trained with random horizontal flips and
# translations. Augmentation is a regulariser: the models see a slightly different image at
# every epoch, so they memorise their training images less, and their margins on training
# images are lower. KLOM's oracles must be trained with the same recipe as the originals:
# comparing augmented with non-augmented models would measure augmentation, not unlearning.
# So the recipe is recorded beside the models (`klom_train.json`, `"augment": true`),
# augmented models go to their own `…_augmented` folders, and a store refuses to add models
# of another recipe to a folder.
#
# **Embedded run.** Without the Hub (`source = "local"`), this section trains DIGITS models
# here with the same two kinds of augmentation (flips, and translations by up to one of the
# 8 pixels; `default_config("digits", augment=True)`, as `klom train --augment` does) and
# compares them with as many plain DIGITS models of the store. These are not the Hub's
# CIFAR-10 models. Margins are always computed on the un-augmented images, in evaluation
# mode.

# %%
if source == "hub":
    augmented = "full_models/CIFAR10_augmented"
    aug_ids = store.model_ids(augmented)[:n_models]
    plain_ids, label = full_ids[:len(aug_ids)], "CIFAR-10 (Hub)"
else:  # the embedded default: a few augmented DIGITS models, trained here
    plain_ids = full_ids[:min(n_models, 20)]
    augmented, label = f"full_models/{D}_augmented", f"{D} (embedded run)"
    config = default_config(dataset, augment=True)
    start = time.perf_counter()
    done = train_models(dataset, store, plain_ids, config=config,
                        device=device, progress=progress, root=data_root)
    recipe = store.read_json(f"{augmented}/klom_train.json")
    print(f"trained {len(done)} augmented {D} models in "
          f"{time.perf_counter() - start:.0f} s\ninto the store's {augmented} "
          f"(recorded: augment={recipe['augment']})")
    aug_ids = plain_ids
aug_m = folder_margins(store, augmented, data, aug_ids)
plain_m = full_m[:len(plain_ids)]
train = np.arange(data.n_train)
fig, axes = figure(2)
for ax, (name, cols) in zip(axes, [("training examples", train),
                                   ("test examples", val)]):
    for (name_m, m), color in zip([("no augmentation", plain_m),
                                   ("augmented", aug_m)],
                                  (COLORS["original"], "#17BECF")):
        ax.hist(np.median(m[:, cols], axis=0), bins=60, alpha=0.55,
                density=True, label=name_m, color=color)
    ax.set(title=f"{label}: {name}", xlabel="median margin over models",
           ylabel="density")
axes[0].legend()
display(shown(fig))
results["augmentation"] = {"source": label, "n_models": len(aug_ids)}
for name_m, folder, m in [("plain", full, plain_m),
                          ("augmented", augmented, aug_m)]:
    ids = aug_ids if name_m == "augmented" else plain_ids
    acc = store.logits_of(folder, "val", ids).argmax(-1) == labels["val"]
    results["augmentation"][name_m] = {
        "train_median": float(np.median(m[:, train])),
        "test_median": float(np.median(m[:, val])),
        "test_accuracy": float(acc.mean())}
    med = results["augmentation"][name_m]
    print(f"{name_m:>9s}: median margin, training {med['train_median']:5.2f}, "
          f"test {med['test_median']:5.2f}; "
          f"test accuracy {float(acc.mean()):.3f}")

# %% [markdown]
# The augmented models are less confident on the images they trained on. On DIGITS the
# flips also cost accuracy (a mirrored digit is often another digit's shape), so their test
# margins fall too; on CIFAR-10 a mirrored truck is still a truck. Either way, the margins
# of the two recipes differ on every example: scoring augmented models against plain
# oracles would report that difference as "not unlearned".

# %% [markdown]
# ## 5. KLOM of "doing nothing", from precomputed margins alone
#
# The simplest unlearning method returns the original model unchanged. Its KLOM needs no
# unlearning and no training: the "unlearned" models are the full models themselves, so the
# score compares full-model margins with oracle margins, example by example. This baseline
# belongs in every table: on the forget set it shows how far from the oracles a method starts
# (a method should do much better); on the retain and test examples doing nothing is
# *correct*, and its score there should be near the noise floor: $N$ oracles scored
# against $N$ *other* oracles, the score of a perfect method at the same $N$.
#
# KLOM depends on $N$, so the floor must be measured at the method's $N$. That needs $2N$
# oracles; the Hub has 100 per forget set, as many as full models. Then the floor is measured
# at the largest size the oracles allow ($N/2$ per side) and doing nothing is rescored at that
# size too, so that every comparison below is between numbers at one $N$, labelled with it.

# %%
do_nothing, floor, floor_scores = {}, {}, {}
for k in forget_sets:
    n = min(len(full_ids), len(oracle_ids[k]))
    pool = folder_margins(store, oracle_folder(D, k), data, spare_ids[k])
    n_floor = min(n, len(pool) // 2)
    scores = klom(unlearned=full_m[:n], oracle=oracle_m[k][:n])
    floor_scores[k] = noise_floor(pool, n_per_side=n_floor, seed=seed)
    do_nothing[k] = scores
    rows = {f"do nothing, N={n}": summarize(scores, forget=forget[k],
                                            n_train=data.n_train)}
    if n_floor < n:
        # too few oracles for a floor at N: rescore at the floor's N
        rescored = klom(unlearned=full_m[:n_floor],
                        oracle=oracle_m[k][:n_floor])
        rows[f"do nothing, N={n_floor}"] = summarize(
            rescored, forget=forget[k], n_train=data.n_train)
    floor[k] = summarize(floor_scores[k], forget=forget[k],
                         n_train=data.n_train)
    rows[f"noise floor, N={n_floor}"] = floor[k]
    results.setdefault("do_nothing", {})[str(k)] = rows[f"do nothing, N={n}"]
    results.setdefault("noise_floor", {})[str(k)] = {"n_per_side": n_floor,
                                                     **floor[k]}
    print(f"forget set {k} ({len(forget[k])} images): "
          f"95th percentile per group (N = models per side)")
    for name, summary in rows.items():
        print(f"  {name:<22s}" + "".join(f"  {g} {s['p95']:6.2f}"
                                         for g, s in summary.items()))
first = str(forget_sets[0])
nothing_retain = results["do_nothing"][first]["retain"]["p95"]
floor_retain = results["noise_floor"][first]["retain"]["p95"]
display(*glue(results, do_nothing_retain=nothing_retain,
              floor_retain=floor_retain,
              floor_n=results["noise_floor"][first]["n_per_side"],
              retain_ratio=nothing_retain / floor_retain, digits=2))

# %%
n0 = min(len(full_ids), len(oracle_ids[k0]))
fig = klom_distributions(
    {f"do nothing (N={n0})": do_nothing[k0],
     f"noise floor (N={results['noise_floor'][str(k0)]['n_per_side']})":
     floor_scores[k0]},
    forget[k0], data.n_train)
fig.suptitle(f"{D}, forget set {k0}: per-example KLOM")
shown(fig)

# %% [markdown]
# On the retain examples of the first forget set, doing nothing scores
# {glue}`do_nothing_retain` against a noise floor of {glue}`floor_retain` at
# {glue}`floor_n` models per side: {glue}`retain_ratio` times the floor. Removing a few
# training images changes the models a little everywhere, and KLOM sees it; on the forget set
# the gap is far larger, and that gap is what unlearning must close.

# %% [markdown]
# ## 6. Two populations of models
#
# A second public population of CIFAR-10 ResNet-9s exists for KLOM: EasyDUB's dataset
# `easydub/EasyDUB-dataset` {cite:p}`rinberg2026easydub` (200 models trained on everything,
# 200 oracles for each of 10 forget sets), which holds *margins only*, in its own layout:
# `margins/cifar10/pretrain/{retain,val}/resnet9/id_<k>_epoch_23.npy` for the full models and
# `margins/cifar10/oracle/forget_<k>/{retain,forget,val}/…` for the oracles, whose `retain`
# arrays leave the forget set's columns out. `open_store` recognises that layout and reads it
# through the same folder names as every other store (`full_models/CIFAR10`,
# `oracles/CIFAR10/forget_set_<k>`; doing nothing is the full models themselves), putting
# the oracles' retain and forget columns back at their training indices, so that `klom
# score` and everything after it work unchanged, with no CIFAR-10 images.
#
# Before fetching anything, `download_plan` (`klom download --dry-run`) lists the files a
# download would fetch, with their sizes from the Hub's file metadata, and fetches nothing;
# `download(..., revision=...)` pins a revision and records the commit it resolves to in the
# store (`klom status` shows it). **Embedded run:** without the Hub the listings below are
# the same listings of local copies (`local_plan`): this page's store, and a stand-in of
# EasyDUB's dataset in its exact layout written here from this store's margins (so the two
# "populations" below are the same models: the check is that both layouts read the same
# numbers). With `source = "hub"` they are the two real datasets.

# %%
klom_folders = [full, *(oracle_folder(D, k) for k in forget_sets),
                forget_set_folder(D)]
e_dir = D.lower()
easydub_folders = [
    f"margins/{e_dir}/pretrain/retain", f"margins/{e_dir}/pretrain/val",
    *(f"margins/{e_dir}/oracle/forget_{k}" for k in forget_sets),
    f"forget_sets/{e_dir}"]
if source == "hub":
    plans = {REPO_ID: download_plan(klom_folders, kinds=hub_kinds),
             EASYDUB_REPO_ID: download_plan(easydub_folders,
                                            repo=EASYDUB_REPO_ID)}
    e_store = download(easydub_folders, repo=EASYDUB_REPO_ID,
                       cache_dir=hub_cache_dir)
else:  # a stand-in in EasyDUB's layout, from this store's margins
    e_root = Path(store_dir).parent / "easydub_standin"
    export(e_root, D, default_config(dataset).arch, full_m, oracle_m, forget,
           data.n_train)
    plans = {f"{REPO_ID} layout (this page's store)":
                 local_plan(store.root, klom_folders, kinds=hub_kinds),
             f"{EASYDUB_REPO_ID} layout (stand-in)":
                 local_plan(e_root, easydub_folders, repo=EASYDUB_REPO_ID)}
    e_store = open_store(e_root)
for name, plan in plans.items():
    print(f"{name}: would fetch\n{plan.listing(max_files=4)}\n")
print("read as a store:", *e_store.folders(), sep="\n  ")

# %% [markdown]
# Doing nothing on this page's first forget set, read through each layout, at the same $N$
# per side (EasyDUB's estimator: `variant="easydub"`, KL(unlearned ‖ oracle); 95th
# percentile per group, lower is better):

# %%
rows = {}
for name, st in [("KLOM-models layout", store), ("EasyDUB layout", e_store)]:
    n = min(len(full_ids), len(oracle_ids[k0]))
    u = folder_margins(st, full, None if st is e_store else data, full_ids[:n])
    o = folder_margins(st, oracle_folder(D, k0),
                       None if st is e_store else data, oracle_ids[k0][:n])
    rows[name] = summarize(klom(unlearned=u, oracle=o, variant="easydub"),
                           forget=st.forget_set(D, k0), n_train=data.n_train)
    print(f"{name} (N={n} per side)\n  "
          + "  ".join(f"{g} p95 {s['p95']:.4f}"
                      for g, s in rows[name].items()))
results["populations"] = {
    "source": source, "forget_set": k0, "n_per_side": n,
    **{name: {g: s["p95"] for g, s in r.items()} for name, r in rows.items()},
    "listed_bytes": {name: plan.total for name, plan in plans.items()}}

# %% [markdown]
# On the embedded run the two lines are the same models read through two layouts, and agree
# exactly. On the Hub they are two populations, and their published "do nothing" values
# (forget set 2, $N$ = 100 per side) differ about twofold on retain and validation:
#
# | population | estimator | retain p95 | val. p95 | forget p95 |
# |---|---|---|---|---|
# | `royrin/KLOM-models` | `bench2025`, KL(oracle ‖ unlearned) | 0.639 | 0.651 | 9.287 |
# | `easydub/EasyDUB-dataset` | `easydub`, KL(unlearned ‖ oracle) | 0.3191 | 0.2639 | 9.2647 |
#
# Sources: the data-unlearning-bench results table {cite:p}`rinberg2025dub` for the first
# row, EasyDUB's README {cite:p}`rinberg2026easydub` for the second.
#
# The two rows also use different estimators, but on the same margins those differ by about
# 15% (chapter 1), far less than the gap: the models differ. **Scores compare only within a
# population**: a method scored on EasyDUB's dataset is compared with other methods scored
# there, never with numbers from `royrin/KLOM-models`. A store refuses to score one
# population's models against the other's oracles (`--allow-mixed-recipes` scores them
# anyway, with a warning naming both).
#
# ## Summary
#
# - `klom_utils.download([...folders...], kinds=[...])` fetches only what you need from
#   `royrin/KLOM-models` (or, with `repo="easydub/EasyDUB-dataset"`, EasyDUB's dataset) and
#   returns a store; a store trained locally has the same layout and is read by the same code.
#   `download_plan` (`klom download --dry-run`) lists the files and sizes first; `revision=`
#   pins a download, and the store records the commit.
# - Two populations of CIFAR-10 models exist (`royrin/KLOM-models`, EasyDUB's dataset); their
#   "do nothing" scores differ about twofold on retain and validation, so scores compare only
#   within one population.
# - Check the row order (arg-max of training logits against the labels: nearly 100% when
#   right, about 10% when wrong) and the forget sets (CIFAR-10 sets 1, 4 and 7 have known
#   contents) before trusting any score.
# - Full models are far more confident than oracles on the forget set and agree with them on
#   test examples; augmentation lowers training margins, so originals and oracles must share
#   one recipe (recorded beside the models; augmented ones live in `…_augmented` folders).
# - CIFAR-10 folders run the whole pipeline here; LIVING-17's give margins and the KLOM of
#   doing nothing from the files alone, and the whole pipeline with your LIVING-17 files.
# - Doing nothing scores high on the forget set and {glue}`retain_ratio` times the noise
#   floor (at the same $N$) on the retain examples: the baseline any unlearning method must
#   beat.
#
# ## What you learned
#
# - What `royrin/KLOM-models` holds and how to fetch only the folders and kinds you need.
# - Two checks to run before trusting any score: the row order and the forget sets.
# - How to compute KLOM of doing nothing from precomputed margins, and why the noise floor
#   must be measured at the same $N$.
#
# ## Exercises
#
# 1. Shuffle the labels before computing the margins (section 3) and rerun section 5: what
#    happens to the forget, retain and validation 95th percentiles of doing nothing?
# 2. Compute the noise floor of the first forget set at $N = 50$ and at $N = 25$ per side
#    (`noise_floor(pool, n_per_side=...)`): does it halve when $N$ doubles?
# 3. With `source = "hub"` (CIFAR-10, network needed), compare the do-nothing retain 95th
#    percentile with the published 0.64 to 0.68 of chapter 1: which direction does that table
#    use, and which does this page?

# %% tags=["hide-input"] mystnb={"code_prompt_show": "Show the cell that saves this page's key numbers", "code_prompt_hide": "Hide the cell that saves this page's key numbers"}
# The key numbers of this page, for the tests: <results_dir>/02_download.json
results["figures"] = shown.records
out = Path(results_dir) / "02_download.json"
out.parent.mkdir(parents=True, exist_ok=True)
_ = out.write_text(json.dumps(results, indent=2))

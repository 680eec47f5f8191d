"""The ``klom`` command line: one subcommand per step, each a thin layer over the package.

``klom train --dataset digits --store runs/store --models 0-99 [--forget-set K]``
``klom unlearn --dataset digits --store runs/store --forget-set K --method M --models 0-99``
``klom score --dataset digits --store runs/store --forget-set K --method M [--json OUT]``
``klom datamodels --dataset digits --store runs/store [--models 0-1999] [--fraction 0.5]``

To add a subcommand: write ``add_<name>_parser(subparsers)`` that registers its arguments and
``set_defaults(func=cmd_<name>)``, and list it in :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import __version__
from .claims import held_claims
from .cli_compare import add_compare_parser
from .cli_options import add_device_option, add_metrics_option, add_progress_options, writable_json
from .datamodels import DEFAULT_RIDGE, build_datamodel, datamodel_quality
from .evaluate import jsonable, results_table, score, score_arrays
from .files import load_npy
from .hub import CARD_FOLDERS, DEFAULT_KINDS, REPO_ID, REPOS, download, download_plan
from .ids import id_ranges, parse_ids, parse_model_range
from .launch import ArrayOptions, import_plugins, parse_slurm_options, run_models
from .lens_tables import lens_table
from .lenses import parse_metrics
from .status import store_status
from .store import open_store
from .train import default_config
from .unlearning import METHODS

#: Errors a subcommand reports as one line (exit status 1) instead of a traceback.
USER_ERRORS = (ValueError, KeyError, OSError, ImportError, RuntimeError, MemoryError)


# ------------------------------------------------------------------------ shared options

def add_array_options(p: argparse.ArgumentParser) -> None:
    """Job-array options: run the model ids as J jobs (submitit), or one slice of them."""
    g = p.add_argument_group("job arrays (submitit; pip install submitit)")
    g.add_argument("--executor", default="none", choices=["none", "local", "slurm"],
                   help="none: in this process (default); local: J processes on this machine; "
                        "slurm: one SLURM job array of J jobs")
    g.add_argument("--jobs", type=int, default=1, metavar="J",
                   help="jobs the model ids are split into (default 1)")
    g.add_argument("--partition", default=None, help="SLURM partition")
    g.add_argument("--gpus-per-job", type=int, default=0, metavar="G", help="default 0")
    g.add_argument("--cpus-per-job", type=int, default=None, metavar="C")
    g.add_argument("--mem-gb", type=float, default=None, metavar="GB")
    g.add_argument("--timeout-min", type=int, default=60, metavar="MIN",
                   help="time limit of each job in minutes (default 60)")
    g.add_argument("--array-parallelism", type=int, default=None, metavar="P",
                   help="SLURM jobs running at once (default: all)")
    g.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any other sbatch option, e.g. account=abc (repeatable)")
    g.add_argument("--no-wait", action="store_true",
                   help="print the job ids and return instead of waiting for the jobs")
    g.add_argument("--shard", default=None, metavar="I/N|auto",
                   help="take only slice I of N of the model ids; auto: this SLURM array "
                        "task's (SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT), for a job "
                        "array started by your own sbatch script")


def _array_options(args):
    if args.shard is not None and args.executor != "none":
        raise ValueError("--shard takes a slice inside a job that is already running; "
                         "it cannot be combined with --executor")
    return ArrayOptions(executor=args.executor, jobs=args.jobs, partition=args.partition,
                        gpus_per_job=args.gpus_per_job, cpus_per_job=args.cpus_per_job,
                        mem_gb=args.mem_gb, timeout_min=args.timeout_min,
                        array_parallelism=args.array_parallelism,
                        slurm_options=parse_slurm_options(args.slurm_option),
                        wait=not args.no_wait)


def run_step(args, step: str, ids: list, **kwargs):
    """``launch.run_models`` with the command line's array options; prints the job ids when
    not waiting. Returns the ids done (None: not waited for)."""
    options = _array_options(args)  # checked before anything runs
    done = run_models(step, ids, options, shard=args.shard, **kwargs)
    if not options.wait:
        print(f"submitted {len(done)} jobs ({options.executor}): {', '.join(done)}; logs in "
              f"{args.store}/logs/{step}/")
        return None
    return done


# ------------------------------------------------------------------------------------- train

def add_train_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train", help="train full models or oracles into a store",
        description="Train models [I, J] of a group into a store in the KLOM-models layout: full "
                    "models, or with --forget-set K oracles trained without forget set K. "
                    "Models already in the store are skipped, so a run can be resumed and "
                    "several processes (e.g. a job array) can fill one store with disjoint ranges.")
    p.add_argument("--dataset", required=True, choices=["digits", "cifar10", "living17"],
                   help="digits: the embedded default (CPU, seconds); cifar10: ResNet-9 (GPU); "
                        "living17: ResNet-18 (GPU) on your own LIVING-17 files (--data-root)")
    p.add_argument("--store", required=True, metavar="DIR", help="store folder (created if needed)")
    p.add_argument("--models", required=True, metavar="I-J",
                   help="model ids, inclusive: '0-99', or one id: '7'")
    p.add_argument("--forget-set", type=int, metavar="K", default=None,
                   help="train oracles without forget set K (default: full models)")
    add_device_option(p)
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--stack", default=None, metavar="M|auto",
                   help="models trained at once (default: the dataset's recipe)")
    p.add_argument("--seed", type=int, default=None, help="base seed (default 0)")
    p.add_argument("--augment", action="store_true",
                   help="train with random flips and translations (per model, deterministic), "
                        "into <D>_augmented folders (e.g. full_models/CIFAR10_augmented)")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="download cache for cifar10 (default $KLOM_CACHE or ~/.cache/klom_utils); "
                        "for living17 the folder of living17_{train,val}_{images,labels}.pt")
    add_progress_options(p)
    add_array_options(p)
    p.set_defaults(func=cmd_train)
    return p


def cmd_train(args) -> int:
    overrides = {}
    if args.epochs is not None:
        base = default_config(args.dataset)
        # Keep the schedule's shape: the peak stays at the same fraction of training.
        overrides["epochs"] = args.epochs
        overrides["peak_epoch"] = base.peak_epoch * args.epochs / base.epochs
    if args.stack is not None:
        overrides["stack"] = args.stack if args.stack == "auto" else _positive_int(args.stack)
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.augment:
        overrides["augment"] = True
    config = default_config(args.dataset, **overrides)
    ids = list(parse_model_range(args.models))
    trained = run_step(args, "train", ids, dataset=args.dataset, store=args.store,
                       forget_set=args.forget_set, device=args.device, config=config,
                       progress=args.progress, root=args.data_root)
    if trained is not None:
        group = ("full models" if args.forget_set is None
                 else f"oracles of forget set {args.forget_set}")
        print(f"{args.dataset} {group}: trained {len(trained)}, "
              f"{len(ids) - len(trained)} already in {args.store}")
    return 0



def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"--stack must be a positive integer or 'auto', got {text!r}")
    return value


# ------------------------------------------------------------------------------ unlearn, score

def add_unlearn_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "unlearn", help="apply an unlearning method to the full models of a store",
        description="Unlearn forget set K from the full models [I, J] of a store with a method, "
                    "writing the unlearned models' logits and margins to "
                    "unlearned/<D>/<name>/forget_set_<K>/. Models already there are skipped. "
                    "Oracle matching uses the held-out oracles (ids >= 1000) unless "
                    "--oracle-ids is given; scoring never uses them.")
    p.add_argument("--dataset", required=True, choices=["digits", "cifar10", "living17"])
    p.add_argument("--store", required=True, metavar="DIR", help="store folder")
    p.add_argument("--forget-set", type=int, required=True, metavar="K")
    p.add_argument("--method", required=True, metavar="M",
                   help=f"a built-in method ({', '.join(sorted(METHODS))}) or one registered "
                        "by a --plugin module")
    p.add_argument("--models", required=True, metavar="I-J", help="full model ids: '0-99' or '7'")
    p.add_argument("--config", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override the method's defaults for the dataset (e.g. lr=0.01 epochs=3)")
    p.add_argument("--name", default=None,
                   help="folder name for the results (default: the method's name)")
    p.add_argument("--oracle-ids", default=None, metavar="IDS",
                   help="held-out oracles for oracle matching, e.g. '1000-1009' "
                        "(default: every oracle with id >= 1000)")
    p.add_argument("--datamodel", default=None, metavar="FILE",
                   help="datamodel (.npy) for datamodel_matching / datamodel_direct (default: "
                        "the store's datamodels/<D>/datamodel.npy, from `klom datamodels`)")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it may register methods with register_method)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    add_device_option(p)
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads (default: 2 for digits, torch's setting otherwise)")
    p.add_argument("--save-checkpoints", action="store_true",
                   help="also save the unlearned models' state dicts")
    p.add_argument("--augment", action="store_true",
                   help="unlearn the augmented recipe's models (full_models/<D>_augmented, from "
                        "`klom train --augment`) into unlearned/<D>_augmented/")
    p.add_argument("--data-root", default=None, metavar="DIR", help="cifar10 download cache")
    add_progress_options(p)
    add_array_options(p)
    p.set_defaults(func=cmd_unlearn)
    return p


def cmd_unlearn(args) -> int:
    import_plugins(args.plugin)  # here too: an unknown method fails before any job starts
    ids = list(parse_model_range(args.models))
    start = time.perf_counter()
    written = run_step(
        args, "unlearn", ids, plugins=args.plugin, store=args.store, dataset=args.dataset,
        forget_set=args.forget_set, method=args.method, config=args.config, name=args.name,
        oracle_ids=None if args.oracle_ids is None else parse_ids(args.oracle_ids),
        seed=args.seed, device=args.device, threads=args.threads,
        save_checkpoints=args.save_checkpoints, progress=args.progress, root=args.data_root,
        datamodel=args.datamodel, augment=args.augment)
    if written is not None:
        print(f"{args.dataset} {args.method} forget set {args.forget_set}: unlearned "
              f"{len(written)}, {len(ids) - len(written)} already in {args.store} "
              f"({time.perf_counter() - start:.1f} s)")
    return 0


def add_score_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "score", help="KLOM of unlearned models against the oracles",
        description="Score the models of unlearned/<D>/<M>/forget_set_<K> against the oracles of "
                    "forget set K (ids < 1000, without any the method used): per group "
                    "(forget, retain, validation) the 95th and 99th percentiles and mean of "
                    "per-example KLOM with an interval for the expected 95th percentile at the "
                    "scored N per side, the noise floor at the same N, diagnostics (outlier "
                    "models, small or unequal N, small forget sets; also printed as warnings) "
                    "and the accuracies. The method is scored against as many oracles as it has "
                    "unlearned models. Prints a table; --json writes the full record.")
    p.add_argument("--dataset", choices=["digits", "cifar10", "living17"])
    p.add_argument("--store", metavar="DIR", help="store folder")
    p.add_argument("--forget-set", type=int, metavar="K")
    p.add_argument("--method", metavar="M",
                   help="method (the folder name under unlearned/<D>/)")
    a = p.add_argument_group(
        "margins as arrays, without a store (instead of --dataset/--store/--forget-set/--method)")
    a.add_argument("--unlearned", metavar="U.npy",
                   help="unlearned models' margins (n_models, n_examples): train examples, "
                        "then validation ones")
    a.add_argument("--oracle", metavar="O.npy",
                   help="oracles' margins, same columns; rows beyond the unlearned models' "
                        "number serve the noise floor")
    a.add_argument("--forget", metavar="F.npy", help="forget-set indices into the train columns")
    a.add_argument("--n-train", type=int, metavar="N", help="number of train columns")
    p.add_argument("--json", default=None, metavar="OUT",
                   help="write the record to OUT ('-': to stdout, the table to stderr)")
    p.add_argument("--models", default=None, metavar="IDS",
                   help="unlearned model ids (default: all in the folder)")
    p.add_argument("--oracle-ids", default=None, metavar="IDS",
                   help="oracles to score against (default: the N lowest ids below 1000, N = "
                        "the number of unlearned models)")
    p.add_argument("--level", type=float, default=0.95,
                   help="confidence level of the intervals (default 0.95)")
    p.add_argument("--n-splits", type=int, default=25,
                   help="random half-splits of the models for the intervals (default 25)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the interval's splits and the noise floor's draw (default 0)")
    p.add_argument("--bins", type=int, default=20, help="histogram bins (default 20)")
    p.add_argument("--direction", default="unlearned||oracle",
                   choices=["unlearned||oracle", "oracle||unlearned"])
    p.add_argument("--variant", default="canonical",
                   choices=["canonical", "paper2024", "bench2025", "easydub"])
    p.add_argument("--allow-mixed-recipes", action="store_true",
                   help="score full models and oracles trained with different recipes (a "
                        "warning names the differences; refused by default)")
    add_metrics_option(p, "to compute (a second table shows those besides KLOM)")
    p.add_argument("--data-root", default=None, metavar="DIR", help="cifar10 download cache")
    p.add_argument("--augment", action="store_true",
                   help="score unlearned/<D>_augmented/<M> against oracles of the augmented "
                        "recipe (`klom train --augment --forget-set K`); never the plain ones")
    p.set_defaults(func=cmd_score)
    return p


def cmd_score(args) -> int:
    settings = dict(level=args.level, n_splits=args.n_splits, seed=args.seed, bins=args.bins,
                    direction=args.direction, variant=args.variant,
                    metrics=parse_metrics(args.metrics))
    arrays = [args.unlearned, args.oracle, args.forget, args.n_train]
    store_form = [args.dataset, args.store, args.forget_set, args.method]
    if any(x is not None for x in arrays):
        if any(x is None for x in arrays) or any(x is not None for x in store_form):
            raise ValueError("scoring arrays takes --unlearned, --oracle, --forget and "
                             "--n-train, and none of --dataset/--store/--forget-set/--method")
        out = None if args.json in (None, "-") else writable_json(args.json)
        record = score_arrays(_load_npy(args.unlearned, "--unlearned"),
                              _load_npy(args.oracle, "--oracle"),
                              _load_npy(args.forget, "--forget"), args.n_train, **settings)
        record.update(method=Path(args.unlearned).stem, dataset="arrays", forget_set="-",
                      accuracy=None)
    else:
        if any(x is None for x in store_form):
            raise ValueError("klom score needs --dataset, --store, --forget-set and --method "
                             "(or margins as arrays: --unlearned, --oracle, --forget, --n-train)")
        out = None if args.json in (None, "-") else writable_json(args.json)
        record = score(args.store, args.dataset, args.forget_set, args.method,
                       model_ids=None if args.models is None else parse_ids(args.models),
                       oracle_ids=None if args.oracle_ids is None else parse_ids(args.oracle_ids),
                       root=args.data_root, allow_mixed_recipes=args.allow_mixed_recipes,
                       augment=args.augment, **settings)
    table_to = sys.stderr if args.json == "-" else sys.stdout
    print(results_table([record]), file=table_to)
    if record.get("metrics"):
        print("\n" + lens_table([record]), file=table_to)
    for warning in record["diagnostics"]["warnings"]:
        print(f"klom score: warning: {warning['message']}", file=sys.stderr)
    text = json.dumps(jsonable(record), indent=2, allow_nan=False) + "\n"
    if args.json == "-":
        sys.stdout.write(text)
    elif out is not None:
        out.write_text(text)
        print(f"wrote {out}", file=table_to)
    return 0


def _load_npy(path: str, option: str):
    """The array of ``option``'s file (a damaged one is named by the store's reader)."""
    try:
        return load_npy(Path(path))
    except FileNotFoundError:
        raise FileNotFoundError(f"{option} {path}: no such file") from None


# ------------------------------------------------------------------------- status, download

def add_status_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "status", help="what a store holds: models per folder, recipes, forget sets",
        description="Per folder of the store: complete, partial (files of an interrupted run) "
                    "and missing model ids (gaps below the highest id; from 1000 up counted "
                    "apart, the held-out oracles), ids a running process has claimed, and the "
                    "recorded recipe; then the forget sets of each dataset. Reads only.")
    p.add_argument("--store", required=True, metavar="DIR", help="store folder")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=cmd_status)
    return p


def cmd_status(args) -> int:
    store = open_store(args.store)
    status = store_status(store)
    for folder, info in status["folders"].items():
        info["claimed"] = held_claims(store.root, folder)
    status["downloads"] = store.downloads()
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"store {status['store']}")
    for folder, info in status["folders"].items():
        line = f"  {folder}: {len(info['complete'])} complete ({id_ranges(info['complete'])})"
        for key in ("partial", "missing", "claimed"):
            if info[key]:
                line += f"; {key} {id_ranges(info[key])}"
        print(line)
        record = info["record"] or {}
        recipe = {k: record[k] for k in ("method", "arch", "epochs", "lr", "augment", "group",
                                         "config")
                  if k in record}
        if recipe:
            print(f"      recorded: {json.dumps(recipe)[:150]}")
    for dataset, ks in status["forget_sets"].items():
        print(f"  forget sets of {dataset}: {', '.join(map(str, ks)) or '-'}")
    for folder, entry in store.downloads().items():
        print(f"  downloaded {folder}: {entry.get('repo')} revision {entry.get('revision')} = commit "
              f"{entry.get('commit')} ({entry.get('files')} files, {entry.get('bytes')} bytes)")
    return 0


def add_download_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "download", help="download folders of royrin/KLOM-models or easydub/EasyDUB-dataset",
        description="Download folders of a Hub dataset (cached and resumable, through "
                    "huggingface_hub) and print the local store that holds them, with the commit "
                    "they came from (recorded in the store; `klom status` shows it). Folders of "
                    f"royrin/KLOM-models' card: {', '.join(CARD_FOLDERS)}; of easydub/EasyDUB-dataset: "
                    "margins/cifar10/pretrain, margins/cifar10/oracle/forget_<K>, forget_sets/cifar10. "
                    "A download larger than the free disk space is refused before it starts.")
    p.add_argument("folders", nargs="+", metavar="FOLDER",
                   help="e.g. full_models/CIFAR10 oracles/CIFAR10/forget_set_1")
    p.add_argument("--repo", default=REPO_ID, choices=list(REPOS),
                   help=f"the dataset (default {REPO_ID})")
    p.add_argument("--dry-run", action="store_true",
                   help="list the files that would be fetched with their sizes and the total; "
                        "fetch nothing")
    p.add_argument("--local-dir", default=None, metavar="DIR",
                   help="download into DIR (a plain store folder) instead of the cache")
    p.add_argument("--kinds", nargs="+", default=None, metavar="KIND",
                   choices=["margins", "logits", "checkpoints"],
                   help="files to fetch (default: margins logits; checkpoints are large)")
    p.add_argument("--revision", default=None, help="a branch, tag or commit of the dataset")
    p.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="Hugging Face cache (default: ~/.cache/huggingface)")
    p.add_argument("--offline", action="store_true",
                   help="read the cache only (also HF_HUB_OFFLINE=1)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--endpoint", default=None, metavar="URL",
                   help="the Hub's address (default: huggingface_hub's, HF_ENDPOINT)")
    p.set_defaults(func=cmd_download)
    return p


def cmd_download(args) -> int:
    kinds = args.kinds or DEFAULT_KINDS
    if args.dry_run:
        if args.offline:
            raise ValueError("--dry-run reads the Hub's file list: it cannot run --offline")
        plan = download_plan(args.folders, kinds=kinds, revision=args.revision, repo=args.repo,
                             endpoint=args.endpoint)
        print(f"would fetch (nothing fetched; sizes from the Hub's file metadata):\n{plan.listing()}")
        return 0
    store = download(args.folders, kinds=kinds, revision=args.revision, repo=args.repo,
                     cache_dir=args.cache_dir, local_dir=args.local_dir,
                     offline=True if args.offline else None, progress=not args.quiet,
                     endpoint=args.endpoint)
    print(f"store: {store.root}")
    for folder in store.folders():
        print(f"  {folder}: {len(store.model_ids(folder))} models")
    for folder, entry in store.downloads().items():
        if folder in args.folders or folder.strip("/") in args.folders:
            print(f"  downloaded {folder} at {entry['revision']} = commit {entry['commit']}")
    return 0


# ------------------------------------------------------------------------------- datamodels

def add_datamodels_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "datamodels", help="estimate a datamodel from subset models (for datamodel matching)",
        description="Train subset models [I, J] (each on its own random fraction of the train "
                    "split; ids already in the store are skipped) into datamodels/<D>/, "
                    "estimate the datamodel (how each training example moves each output) and "
                    "save it as datamodels/<D>/datamodel.npy, then print how well it predicts "
                    "the oracles of each forget set that has some.")
    p.add_argument("--dataset", required=True, choices=["digits", "cifar10"])
    p.add_argument("--store", required=True, metavar="DIR", help="store folder")
    p.add_argument("--models", default="0-1999", metavar="I-J",
                   help="subset model ids (default 0-1999)")
    p.add_argument("--fraction", type=float, default=0.5,
                   help="share of the train split each subset model sees (default 0.5)")
    p.add_argument("--estimator", default="regression", choices=["regression", "difference"],
                   help="ridge regression on the inclusion masks (default) or the difference "
                        "of mean logits")
    p.add_argument("--ridge", type=float, default=None,
                   help="ridge penalty per model of the regression (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="base seed of the subsets (default 0)")
    add_device_option(p)
    p.add_argument("--data-root", default=None, metavar="DIR", help="cifar10 download cache")
    add_progress_options(p)
    add_array_options(p)
    p.set_defaults(func=cmd_datamodels)
    return p


def cmd_datamodels(args) -> int:
    if args.ridge is not None and args.estimator != "regression":
        raise ValueError(f"--ridge {args.ridge} applies to --estimator regression only, not "
                         f"{args.estimator!r}")
    ids = list(parse_model_range(args.models))
    if args.executor != "none" or args.shard is not None:  # the subset models as jobs first
        done = run_step(args, "datamodels", ids, dataset=args.dataset, store=args.store,
                        fraction=args.fraction, seed=args.seed, device=args.device,
                        progress=args.progress, root=args.data_root)
        if done is None or args.shard is not None:
            if done is not None:
                print(f"{args.dataset} subset models: trained {len(done)} of this shard; run "
                      "again without --shard to estimate the datamodel")
            return 0
    run = build_datamodel(args.dataset, args.store, ids,
                          fraction=args.fraction, seed=args.seed, estimator=args.estimator,
                          ridge=DEFAULT_RIDGE if args.ridge is None else args.ridge,
                          device=args.device, progress=args.progress, root=args.data_root)
    print(f"{args.dataset} datamodel from {run['n_models']} subset models (trained "
          f"{len(run['trained'])} now; fraction {run['fraction']}, {run['estimator']}"
          + (f", ridge {run['ridge']}" if run["ridge"] is not None else "")
          + ("; predictions shrunk by their noise" if run["noise"] else "; too few models "
             "to estimate its noise, so its predictions are used unshrunk")
          + f") in {run['seconds']:.1f} s: {run['path']}")
    for k, q in datamodel_quality(args.store, args.dataset, root=args.data_root).items():
        print(f"  forget set {k}, predicted vs actual change of the oracles' mean logits "
              f"({q['n_models']} full models, {q['n_oracles']} oracles): "
              + "; ".join(f"{g} corr {v['corr']:.2f}, RMSE {v['rmse']:.3f} (no shift "
                          f"{v['rmse_no_shift']:.3f})" for g, v in q["groups"].items()))
    return 0


# ----------------------------------------------------------------------------------- the parser

#: Functions that register one subcommand each.


SUBCOMMANDS = [add_train_parser, add_unlearn_parser, add_score_parser, add_compare_parser,
               add_datamodels_parser, add_status_parser, add_download_parser]


def build_parser() -> argparse.ArgumentParser:
    """The ``klom`` parser with every subcommand of :data:`SUBCOMMANDS`."""

    parser = argparse.ArgumentParser(
        prog="klom", description="Evaluate machine unlearning with KLOM: train, unlearn, score.")
    parser.add_argument("--version", action="version", version=f"klom_utils {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv=None) -> int:
    """Run ``klom`` with ``argv`` (default: the process arguments); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        if isinstance(err, MemoryError):
            message = "out of memory (a setting too large for this machine?)"
        elif isinstance(err, RuntimeError) and not isinstance(err, NotImplementedError):
            message = f"{type(err).__name__}: {err}"
        text = str(message).strip().splitlines()
        print(f"klom {args.command}: error: {text[0] if text else type(err).__name__}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"klom {args.command}: interrupted", file=sys.stderr)
        return 130

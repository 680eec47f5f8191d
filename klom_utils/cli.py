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
import sys

#: Errors a subcommand reports as one line (exit status 1) instead of a traceback.
USER_ERRORS = (ValueError, KeyError, FileNotFoundError, PermissionError, ConnectionError)


# ------------------------------------------------------------------------------------- train

def add_train_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train", help="train full models or oracles into a store",
        description="Train models [I, J] of a group into a store in the KLOM-models layout: full "
                    "models, or with --forget-set K oracles trained without forget set K. "
                    "Models already in the store are skipped, so a run can be resumed and "
                    "several processes (e.g. a job array) can fill one store with disjoint ranges.")
    p.add_argument("--dataset", required=True, choices=["digits", "cifar10"],
                   help="digits: the embedded default (CPU, seconds); cifar10: ResNet-9 (GPU)")
    p.add_argument("--store", required=True, metavar="DIR", help="store folder (created if needed)")
    p.add_argument("--models", required=True, metavar="I-J",
                   help="model ids, inclusive: '0-99', or one id: '7'")
    p.add_argument("--forget-set", type=int, metavar="K", default=None,
                   help="train oracles without forget set K (default: full models)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="default: cuda when available")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--stack", default=None, metavar="M|auto",
                   help="models trained at once (default: the dataset's recipe)")
    p.add_argument("--seed", type=int, default=None, help="base seed (default 0)")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="download cache for cifar10 (default $KLOM_CACHE or ~/.cache/klom_utils)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)
    return p


def cmd_train(args) -> int:
    from .train import default_config, parse_model_range, train_models

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
    config = default_config(args.dataset, **overrides)
    ids = parse_model_range(args.models)
    trained = train_models(args.dataset, args.store, ids, forget_set=args.forget_set,
                           device=args.device, config=config, progress=not args.quiet,
                           root=args.data_root)
    group = "full models" if args.forget_set is None else f"oracles of forget set {args.forget_set}"
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

def _ids(text: str) -> list:
    """``"0-99"``, ``"7"`` or comma-separated ones (``"1000-1004,1007"``) -> sorted ids."""
    from .train import parse_model_range

    return sorted({i for part in str(text).split(",") if part.strip()
                   for i in parse_model_range(part)})


def add_unlearn_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "unlearn", help="apply an unlearning method to the full models of a store",
        description="Unlearn forget set K from the full models [I, J] of a store with a method, "
                    "writing the unlearned models' logits and margins to "
                    "unlearned/<D>/<name>/forget_set_<K>/. Models already there are skipped. "
                    "Oracle matching uses the held-out oracles (ids >= 1000) unless "
                    "--oracle-ids is given; scoring never uses them.")
    p.add_argument("--dataset", required=True, choices=["digits", "cifar10"])
    p.add_argument("--store", required=True, metavar="DIR", help="store folder")
    p.add_argument("--forget-set", type=int, required=True, metavar="K")
    p.add_argument("--method", required=True, metavar="M",
                   help="do_nothing, gradient_ascent, gradient_descent, neggrad_plus, scrub, "
                        "oracle_matching, or one registered by a --plugin module")
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
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads (default: 1 for digits, torch's setting otherwise)")
    p.add_argument("--save-checkpoints", action="store_true",
                   help="also save the unlearned models' state dicts")
    p.add_argument("--data-root", default=None, metavar="DIR", help="cifar10 download cache")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_unlearn)
    return p


def cmd_unlearn(args) -> int:
    import importlib

    from .train import parse_model_range
    from .unlearn import unlearn_store

    for module in args.plugin:
        importlib.import_module(module)
    run = unlearn_store(args.store, args.dataset, args.forget_set, args.method,
                        parse_model_range(args.models), config=args.config, name=args.name,
                        oracle_ids=None if args.oracle_ids is None else _ids(args.oracle_ids),
                        seed=args.seed, device=args.device, threads=args.threads,
                        save_checkpoints=args.save_checkpoints, progress=not args.quiet,
                        root=args.data_root, datamodel=args.datamodel)
    print(f"{args.dataset} {args.method} forget set {args.forget_set}: unlearned "
          f"{len(run['written'])}, {len(run['skipped'])} already in {run['folder']} "
          f"({run['seconds']:.1f} s)")
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
    p.add_argument("--dataset", required=True, choices=["digits", "cifar10"])
    p.add_argument("--store", required=True, metavar="DIR", help="store folder")
    p.add_argument("--forget-set", type=int, required=True, metavar="K")
    p.add_argument("--method", required=True, metavar="M",
                   help="method (the folder name under unlearned/<D>/)")
    p.add_argument("--json", default=None, metavar="OUT", help="write the record to OUT")
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
    p.add_argument("--data-root", default=None, metavar="DIR", help="cifar10 download cache")
    p.set_defaults(func=cmd_score)
    return p


def cmd_score(args) -> int:
    import json
    from pathlib import Path

    from .evaluate import jsonable, results_table, score

    record = score(args.store, args.dataset, args.forget_set, args.method,
                   model_ids=None if args.models is None else _ids(args.models),
                   oracle_ids=None if args.oracle_ids is None else _ids(args.oracle_ids),
                   level=args.level, n_splits=args.n_splits, seed=args.seed,
                   root=args.data_root, bins=args.bins, direction=args.direction,
                   variant=args.variant)
    print(results_table([record]))
    for warning in record["diagnostics"]["warnings"]:
        print(f"klom score: warning: {warning['message']}", file=sys.stderr)
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(jsonable(record), indent=2, allow_nan=False) + "\n")
        print(f"wrote {out}")
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
                   help="ridge penalty per model of the regression (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="base seed of the subsets (default 0)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--data-root", default=None, metavar="DIR", help="cifar10 download cache")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_datamodels)
    return p


def cmd_datamodels(args) -> int:
    from .datamodels import DEFAULT_RIDGE, build_datamodel, datamodel_quality
    from .train import parse_model_range

    run = build_datamodel(args.dataset, args.store, parse_model_range(args.models),
                          fraction=args.fraction, seed=args.seed, estimator=args.estimator,
                          ridge=DEFAULT_RIDGE if args.ridge is None else args.ridge,
                          device=args.device, progress=not args.quiet, root=args.data_root)
    print(f"{args.dataset} datamodel from {run['n_models']} subset models (trained "
          f"{len(run['trained'])} now; fraction {run['fraction']}, {run['estimator']}"
          + (f", ridge {run['ridge']}" if run["ridge"] is not None else "")
          + f") in {run['seconds']:.1f} s: {run['path']}")
    for k, q in datamodel_quality(args.store, args.dataset, root=args.data_root).items():
        print(f"  forget set {k}, predicted vs actual change of the oracles' mean logits "
              f"({q['n_models']} full models, {q['n_oracles']} oracles): "
              + "; ".join(f"{g} corr {v['corr']:.2f}, RMSE {v['rmse']:.3f} (no shift "
                          f"{v['rmse_no_shift']:.3f})" for g, v in q["groups"].items()))
    return 0


# ----------------------------------------------------------------------------------- the parser

#: Functions that register one subcommand each.
SUBCOMMANDS = [add_train_parser, add_unlearn_parser, add_score_parser, add_datamodels_parser]


def build_parser() -> argparse.ArgumentParser:
    """The ``klom`` parser with every subcommand of :data:`SUBCOMMANDS`."""
    from . import __version__

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
        print(f"klom {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"klom {args.command}: interrupted", file=sys.stderr)
        return 130

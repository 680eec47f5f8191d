"""The ``klom`` command line: one subcommand per step, each a thin layer over the package.

``klom train --dataset digits --store runs/store --models 0-99 [--forget-set K]``

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


# ----------------------------------------------------------------------------------- the parser

#: Functions that register one subcommand each.
SUBCOMMANDS = [add_train_parser]


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

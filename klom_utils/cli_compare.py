"""``klom compare``: the comparison of methods (:func:`klom_utils.comparison.compare`) from the
command line."""

from __future__ import annotations

import argparse
import json
import sys

from .cli_options import add_device_option, add_metrics_option, add_progress_options, writable_json
from .comparison import ACCURACY_TOLERANCE, PROTOCOLS, compare
from .data import dataset_name
from .ids import parse_ids
from .launch import import_plugins
from .report import summary_markdown
from .store import open_store
from .tables import jsonable
from .unlearning import METHODS


def _names(text: str) -> list:
    return [part.strip() for part in str(text).split(",") if part.strip()]


def _search_items(items) -> dict:
    """``["scrub.lr=0.01,0.05", ...]`` -> ``{"scrub": {"lr": ["0.01", "0.05"]}}``."""
    out: dict = {}
    for item in items or ():
        key, sep, values = str(item).partition("=")
        method, dot, name = key.strip().partition(".")
        if not (sep and dot and method and name and values.strip()):
            raise ValueError(f"--search {item!r}: expected METHOD.KEY=V1,V2,... "
                             "(e.g. scrub.lr=0.01,0.05)")
        out.setdefault(method, {})[name] = _names(values)
    return out


def add_compare_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compare", help="compare unlearning methods fairly: settings chosen without the "
                        "scoring oracles, one table",
        description="For each method, try up to --budget settings (its defaults, then draws "
                    "from its declared search space) on every forget set, unlearning what the "
                    "store lacks (resumable; a rerun does no work), and report each forget set "
                    "with the settings its protocol chose: leave-one-out (default: chosen on "
                    "the other forget sets' oracles, never the reported set's), fixed (the "
                    "defaults) or oracle-tuned (on the reported set's own scoring oracles, "
                    "labelled optimistic). Writes results.csv/.json, summary.md/.html and the "
                    "figures p95.png, cost.png, protocols.png to --out.")
    p.add_argument("--dataset", required=True, choices=["digits", "cifar10", "living17"])
    p.add_argument("--store", required=True, metavar="DIR", help="store folder")
    p.add_argument("--forget-sets", required=True, metavar="K,K,...",
                   help="forget sets to report, e.g. 1,2,3")
    p.add_argument("--methods", required=True, metavar="M,M,...",
                   help=f"methods to compare: built-in ({', '.join(sorted(METHODS))}) or "
                        "registered by a --plugin module")
    p.add_argument("--protocol", default="leave-one-out", choices=list(PROTOCOLS),
                   help="how settings are chosen (default leave-one-out)")
    p.add_argument("--budget", type=int, default=4,
                   help="settings tried per method, its defaults among them (default 4)")
    p.add_argument("--search", action="append", default=[], metavar="M.KEY=V,V",
                   help="replace a key of a method's search space, e.g. scrub.lr=0.01,0.05 "
                        "(repeatable)")
    p.add_argument("--models", default=None, metavar="IDS",
                   help="full model ids to unlearn (default: every complete one below 1000)")
    p.add_argument("--accuracy-tolerance", type=float, default=ACCURACY_TOLERANCE,
                   help="settings must keep test accuracy within this of the oracles' "
                        f"(default {ACCURACY_TOLERANCE})")
    p.add_argument("--cost-models", type=int, default=None, metavar="N",
                   help="models trained at once to measure the cost of training (default: "
                        "100 for digits, else 1; 0: no relative cost): the full models' own "
                        "record when that many were trained at once on this device, else "
                        "trained once in a temporary store")
    add_metrics_option(p, "in the table (settings are still chosen by KLOM)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="folder of the table, summary and figures (default: "
                        "<store>/comparisons/<D>-<protocol>)")
    p.add_argument("--json", default=None, metavar="OUT",
                   help="also write the full result to OUT ('-': to stdout)")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it may register methods)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    add_device_option(p)
    p.add_argument("--data-root", default=None, metavar="DIR", help="cifar10 download cache")
    add_progress_options(p)
    p.set_defaults(func=cmd_compare)
    return p


def cmd_compare(args) -> int:
    import_plugins(args.plugin)
    out_json = None if args.json in (None, "-") else writable_json(args.json)
    store = open_store(args.store)
    forget_sets = [int(k) for k in _names(args.forget_sets)] if all(
        k.isdigit() for k in _names(args.forget_sets)) else None
    if not forget_sets:
        raise ValueError(f"--forget-sets {args.forget_sets!r}: expected forget set numbers "
                         "separated by commas, e.g. 1,2,3")
    out = args.out or store.path(f"comparisons/{dataset_name(args.dataset)}-{args.protocol}")
    result = compare(args.dataset, store, forget_sets, _names(args.methods),
                     protocol=args.protocol, budget=args.budget,
                     search=_search_items(args.search),
                     model_ids=None if args.models is None else parse_ids(args.models),
                     accuracy_tolerance=args.accuracy_tolerance, seed=args.seed,
                     device=args.device, cost_models=args.cost_models, metrics=args.metrics,
                     out=out,
                     progress=args.progress, root=args.data_root)
    text = json.dumps(jsonable(result), indent=2, allow_nan=False) + "\n"
    if args.json == "-":
        sys.stdout.write(text)
    else:
        if out_json is not None:
            out_json.write_text(text)
        print(summary_markdown(result))
        print(f"table, summary and figures in {out}" + (f"; result in {out_json}"
                                                      if out_json else ""))
    return 0



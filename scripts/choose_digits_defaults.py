#!/usr/bin/env python
"""Choose the DIGITS defaults of the built-in methods by the leave-one-out protocol.

    .venv/bin/python scripts/choose_digits_defaults.py --store _build/run/store --budget 8

Runs ``klom compare`` (leave-one-out) on a DIGITS store that has the embedded default's
models (100 full models, 200 oracles and 10 held-out oracles per forget set 1-3, and the
datamodel of chapter 7) with ``--budget`` settings per method, then prints, per method, the
setting chosen for each reported forget set (on the other two sets' scoring oracles) and the
default it implies: the setting chosen for most forget sets (a tie: the one with the lowest
mean leave-one-out selection score). The defaults in ``klom_utils/unlearning/`` are set to
what this prints; no forget set's default was chosen with that set's oracles alone, and the
printed table says for which sets a default is also the leave-one-out choice.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from klom_utils.comparison import compare  # noqa: E402
from klom_utils.data import load_dataset  # noqa: E402
from klom_utils.unlearning import METHODS  # noqa: E402
from klom_utils.unlearning.configs import config_id, default_config, search_space  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="_build/run/store")
    parser.add_argument("--budget", type=int, default=8)
    parser.add_argument("--methods", default=",".join(sorted(METHODS)))
    parser.add_argument("--forget-sets", default="1,2,3")
    args = parser.parse_args()
    data = load_dataset("digits")
    methods = args.methods.split(",")
    sets = [int(k) for k in args.forget_sets.split(",")]
    start = time.perf_counter()
    result = compare(data, args.store, sets, methods, budget=args.budget, model_ids=range(100),
                     progress=True)
    print(f"compare: {time.perf_counter() - start:.0f} s, budget {args.budget}, "
          f"selection: {result['selection']}")
    chosen = {}
    for m in methods:
        keys = sorted(search_space(m, "digits"))
        choices = result["choices"][m]
        votes = Counter(config_id(m, choices[k]["config"]) for k in sets)
        by_id = {config_id(m, choices[k]["config"]): choices[k] for k in sets}
        best = min(votes, key=lambda c: (-votes[c], by_id[c]["selection_score"]))
        config = by_id[best]["config"]
        chosen[m] = {k: config[k] for k in keys}
        was = default_config(m, "digits")
        print(f"\n{m}: searched {keys}")
        for k in sets:
            c = choices[k]
            print(f"  set {k}: chosen on sets {[o['forget_set'] for o in c['chosen_on']]}: "
                  f"{ {key: c['config'][key] for key in keys} } (selection score "
                  f"{c['selection_score']:.3f}; on set {k}: {c['reported']['score']:.3f})")
        print(f"  default: {chosen[m]} (chosen for {votes[best]} of {len(sets)} sets; "
              f"was {({key: was[key] for key in keys})})")
    print("\n" + json.dumps(chosen, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

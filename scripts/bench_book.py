"""Time the book against a baseline commit, back to back on the same machine.

    .venv/bin/python scripts/bench_book.py         # baseline: where this branch left main
    .venv/bin/python scripts/bench_book.py --baseline 3fa2334 --only chapter07

For the baseline commit (extracted with ``git archive`` into a temporary folder) and then for
this checkout, one after the other:

- ``chapter07``: chapter 07 run alone in an empty folder with its own defaults (as in Colab;
  only ``progress=False``, as the book runs it), the building of its store included: papermill
  seconds for the whole notebook and per step (the store, the datamodel, the comparison);
- ``book``: a fresh ``scripts/build_book.py`` (an empty run folder), its printed time per
  notebook.

Each run starts as a fresh clone does: the tree's compiled kernels (numba's cache,
``klom_utils/__pycache__/*.nbi`` and ``*.nbc``) are deleted first, so both sides compile
them once, in whichever chapter uses them first (this checkout's cache is rebuilt on its
next use). Prints a table of seconds, the ratio new / baseline and the load average (1, 5,
15 min) before and after each run. The machine may be shared: compare only runs made in one
call.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "07_datamodel_matching"
#: Where the key numbers of each chapter 07 run are kept (runs/ is not committed).
KEPT = ROOT / "runs" / "bench_book"
#: The steps of chapter 07 timed on their own: (label, text that starts the cell's code).
STEPS = (("store", "%matplotlib inline"), ("datamodel", "start = time.perf_counter()"),
         ("compare", "shown = {"))


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def extract(ref: str, into: Path) -> Path:
    """The tree of commit ``ref`` under ``into``."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def cold(tree: Path) -> None:
    """Delete the compiled kernels that numba cached in ``tree`` (a fresh clone has none)."""
    for pattern in ("*.nbi", "*.nbc"):
        for path in (tree / "klom_utils" / "__pycache__").glob(pattern):
            path.unlink()


def run_chapter07(tree: Path, work: Path) -> dict:
    """Chapter 07 of ``tree`` alone in the empty folder ``work``: total and per-step seconds."""
    cold(tree)
    work.mkdir(parents=True)
    shutil.copy(tree / "notebooks" / f"{NOTEBOOK}.ipynb", work / "in.ipynb")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    before, start = load(), time.perf_counter()
    subprocess.run([sys.executable, "-m", "papermill", "in.ipynb", "out.ipynb", "-p",
                    "progress", "False", "--cwd", str(work), "-k", "python3",
                    "--no-progress-bar"], cwd=work, env=env, check=True,
                   capture_output=True)
    seconds = time.perf_counter() - start
    KEPT.mkdir(parents=True, exist_ok=True)  # its key numbers, for the comparison of results
    shutil.copy(work / "klom_run" / "results" / f"{NOTEBOOK}.json",
                KEPT / f"{NOTEBOOK}_{work.name}.json")
    cells = json.loads((work / "out.ipynb").read_text())["cells"]
    steps = {}
    for label, head in STEPS:
        for cell in cells:
            if cell["cell_type"] == "code" and "".join(cell["source"]).lstrip().startswith(head):
                steps[label] = cell["metadata"]["papermill"]["duration"]
    return {"total": seconds, **steps, "load before": before, "load after": load()}


def run_book(tree: Path, work: Path) -> dict:
    """A fresh build of the book of ``tree`` (run folder ``work``): seconds per notebook."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cold(tree)
    before = load()
    proc = subprocess.run([sys.executable, "scripts/build_book.py", "--run-dir", str(work)],
                          cwd=tree, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"the book of {tree} failed to build:\n{proc.stdout[-3000:]}"
                         f"{proc.stderr[-3000:]}")
    times = dict(re.findall(r"^  (\S[^\n]*?)\s+([\d.]+) s$", proc.stdout.split("time per step")[-1],
                            re.M))
    return {k: float(v) for k, v in times.items()} | {"load before": before,
                                                       "load after": load()}


def results(label: str) -> None:
    """Chapter 07's datamodel quality and verdict of the run ``label``: forget-set correlation
    and RMSE of the predicted change, and datamodel matching's forget p95 (100 vs 100)."""
    r = json.loads((KEPT / f"{NOTEBOOK}_chapter07_{label}.json").read_text())
    quality = "  ".join(f"set {k}: corr {q['groups']['forget']['corr']:.3f} RMSE "
                        f"{q['groups']['forget']['rmse']:.4f}" for k, q in r["quality"].items())
    verdict = "  ".join(f"set {k}: {v['forget_p95']['datamodel_matching']:.3f}"
                        for k, v in r["verdict"].items())
    print(f"{label:>9s} datamodel on the forget set: {quality}")
    print(f"{label:>9s} DM matching forget p95 (KLOM vs scoring oracles): {verdict}")


def table(name: str, base: dict, new: dict) -> None:
    print(f"\n{name}: seconds, baseline then this checkout, back to back")
    print(f"{'step':<30s}{'baseline':>10s}{'new':>10s}{'new/base':>10s}")
    for key in base:
        if key.startswith("load"):
            continue
        b, n = base[key], new.get(key, float("nan"))
        print(f"{key:<30s}{b:10.1f}{n:10.1f}{n / b:10.2f}")
    for key in ("load before", "load after"):
        print(f"{key + ' (1, 5, 15 min)':<30s}{base[key]:>16s}  |  {new[key]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", help="commit to compare with (default: git merge-base "
                        "HEAD main)")
    parser.add_argument("--only", nargs="+", choices=("chapter07", "book"),
                        default=["chapter07", "book"])
    args = parser.parse_args(argv)
    args.baseline = args.baseline or subprocess.run(
        ["git", "merge-base", "HEAD", "main"], cwd=ROOT, check=True, capture_output=True,
        text=True).stdout.strip()
    print(f"baseline {args.baseline}; machine: {os.cpu_count()} cores; load {load()}")
    with tempfile.TemporaryDirectory(prefix="bench_book_") as tmp:
        base = extract(args.baseline, Path(tmp) / "baseline")
        runs = {"chapter07": run_chapter07, "book": run_book}
        for what in args.only:
            out = {}
            for label, tree in (("baseline", base), ("new", ROOT)):
                out[label] = runs[what](tree, Path(tmp) / f"{what}_{label}")
                print(f"{what} {label}: {json.dumps(out[label])}", flush=True)
            table({"chapter07": "chapter 07 alone (empty folder, its defaults)",
                   "book": "fresh build of the book"}[what], out["baseline"], out["new"])
            if what == "chapter07":
                for label in ("baseline", "new"):
                    results(label)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python
"""Build the book: check the notebooks, execute them with papermill, render with Jupyter Book.

    .venv/bin/python scripts/build_book.py                       # default run (CPU, minutes)
    .venv/bin/python scripts/build_book.py --params params/paper.yaml --run-dir /data/klom
    .venv/bin/python scripts/build_book.py --params params/paper.yaml --run-dir /data/klom \
        --only 03_training                                      # one chapter, no render
    .venv/bin/python scripts/build_book.py --only 05_computing_klom --render
        # after a full build: rerun one chapter into the staged book and render the site again

Steps (any failure stops the build with a non-zero exit status):

1. Check the table of contents against the files: every toc entry exists, except notebooks
   listed in RUN_ORDER that are not written yet (they are left out of the staged toc, loudly);
   every notebook in notebooks/ is in the toc and in RUN_ORDER; every notebook is a
   py:percent ``.py`` + ``.ipynb`` pair in sync (jupytext), the ``.ipynb`` has no outputs, and it
   has exactly one cell tagged ``parameters``; its Colab install cell pins this repository
   (``_config.yml``) at the tag ``v<klom_utils.__version__>``.
2. Stage the book sources under ``_build/src`` with the same relative paths as in the
   repository (``_config.yml``, ``_toc.yml``, ``book/``), then execute each notebook with papermill
   in RUN_ORDER, writing the executed copy to ``_build/src/notebooks/<stem>.ipynb``. Each notebook
   runs with ``notebooks/`` as its working directory and receives only the parameters that its
   ``parameters`` cell declares, taken from the ``--params`` file, plus ``results_dir`` and
   ``store_dir`` under ``--run-dir`` (papermill is never passed a name a notebook does not
   declare). A notebook must write ``<results_dir>/<stem>.json``. With ``progress: false`` in
   the parameter file (the published build) a page that wrote anything to stderr fails it.
   Each executed page is then held to its results file (``scripts/book_checks.py``): every
   glued number its text uses exists, the numbers listed there (method counts, verdict
   ratios, the floor comparison) are glued and agree with the results file, and every figure
   on the page went through the chapter's ``FigureLog`` and keeps the book's style.
3. ``jupyter-book build _build/src --path-output . --all -W`` (full rebuild, warnings are
   errors, execution off): the site lands in ``_build/html``. Because page paths stay
   ``notebooks/<stem>``, the Colab launch buttons point at ``notebooks/<stem>.ipynb`` on GitHub.

Prints the time each notebook took and the total.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BUILD = ROOT / "_build"
STAGE = BUILD / "src"
HTML = BUILD / "html"

# The order in which notebooks are EXECUTED. It may differ from the reading order in _toc.yml:
# a notebook that reads the model store must run after the one that writes it. 04 trains the
# small default models and writes the store; 03 (download) falls back to / inspects that store
# offline; 05 unlearns from it; 06 scores; 07 plugs in a new method; 08 estimates a datamodel
# and unlearns with it.
# A stem listed here whose files do not exist yet is skipped (and left out of the staged toc).
RUN_ORDER = [
    "01_klom_explained",
    "03_training",
    "02_download",
    "04_unlearning",
    "05_computing_klom",
    "06_your_method",
    "07_datamodel_matching",
]

# Parameters the build always sets (to folders under --run-dir) when a notebook declares them.
RUN_DIR_PARAMETERS = {"results_dir": "results", "store_dir": "store"}


class BuildError(Exception):
    """A problem that stops the build; the message says what to fix."""


# --------------------------------------------------------------------------------------------
# Table of contents
# --------------------------------------------------------------------------------------------


def load_yaml(path: Path):
    import yaml

    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def toc_files(toc) -> list[str]:
    """All ``file`` entries of a jb-book toc (root first), in reading order."""
    files = [toc["root"]]

    def walk(items):
        for item in items or []:
            if "file" in item:
                files.append(item["file"])
            walk(item.get("sections"))
            walk(item.get("chapters"))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    return files


def is_notebook_entry(entry: str) -> bool:
    return entry.startswith("notebooks/")


def notebook_stem(entry: str) -> str:
    return entry.split("/", 1)[1]


def entry_exists(entry: str) -> bool:
    if is_notebook_entry(entry):
        return (ROOT / f"{entry}.py").exists() or (ROOT / f"{entry}.ipynb").exists()
    return any((ROOT / f"{entry}{ext}").exists() for ext in (".md", ".ipynb", ".rst"))


def notebooks_on_disk() -> list[str]:
    stems = {p.stem for p in NOTEBOOKS.glob("*.py")} | {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    return sorted(stems)


def plan(toc) -> tuple[list[str], list[str]]:
    """Check the toc against the files. Returns (notebooks to run in order, planned but missing)."""
    entries = toc_files(toc)
    problems = []
    dup = {e for e in entries if entries.count(e) > 1}
    if dup:
        problems.append(f"_toc.yml lists these entries more than once: {sorted(dup)}")
    toc_stems = [notebook_stem(e) for e in entries if is_notebook_entry(e)]
    missing_planned = []
    for entry in entries:
        if entry_exists(entry):
            continue
        if is_notebook_entry(entry) and notebook_stem(entry) in RUN_ORDER:
            missing_planned.append(notebook_stem(entry))
        else:
            problems.append(
                f"_toc.yml lists {entry!r} but no such file exists "
                f"(expected {entry}.md, or {entry}.py + .ipynb for a notebook)"
            )
    for stem in toc_stems:
        if stem not in RUN_ORDER:
            problems.append(
                f"notebooks/{stem} is in _toc.yml but not in RUN_ORDER in scripts/build_book.py"
            )
    for stem in notebooks_on_disk():
        if stem not in toc_stems:
            problems.append(f"notebooks/{stem} exists but _toc.yml does not list it")
        if stem not in RUN_ORDER:
            problems.append(
                f"notebooks/{stem} exists but is not in RUN_ORDER in scripts/build_book.py"
            )
    for stem in RUN_ORDER:
        if stem not in toc_stems:
            problems.append(f"RUN_ORDER lists {stem} but _toc.yml does not")
    if problems:
        raise BuildError("\n".join(problems))
    to_run = [s for s in RUN_ORDER if s not in missing_planned]
    return to_run, missing_planned


def prune_toc(toc, drop: set[str]):
    """A copy of the toc without the given notebook stems (and without parts left empty)."""
    import copy

    toc = copy.deepcopy(toc)

    def keep(items):
        out = []
        for item in items or []:
            if "file" in item and is_notebook_entry(item["file"]) and notebook_stem(item["file"]) in drop:
                continue
            for key in ("sections", "chapters"):
                if key in item:
                    item[key] = keep(item[key])
                    if not item[key]:
                        del item[key]
            if "file" in item or item.get("chapters") or item.get("sections") or "url" in item:
                out.append(item)
        return out

    for key in ("parts", "chapters"):
        if key in toc:
            toc[key] = keep(toc[key])
            if not toc[key]:
                del toc[key]
    return toc


# --------------------------------------------------------------------------------------------
# Notebook checks (also used by tests/test_book_config.py)
# --------------------------------------------------------------------------------------------


COLAB_PIN = re.compile(r"git\+(?P<url>https://github\.com/[^@\s\"']+)@(?P<ref>[^\s\"']+)")


def colab_pin() -> str:
    """The git ref every Colab install cell pins: the tag of this package version."""
    sys.path.insert(0, str(ROOT))
    from klom_utils import __version__

    return f"v{__version__}"


def check_colab_install(stem: str, repo_url: str) -> None:
    """The Colab install cell installs this repository at the tag of the package version."""
    source = (NOTEBOOKS / f"{stem}.py").read_text(encoding="utf-8")
    pins = [(m["url"], m["ref"]) for m in COLAB_PIN.finditer(source)]
    want = (repo_url, colab_pin())
    if pins != [want]:
        raise BuildError(
            f"notebooks/{stem}.py: the Colab install cell must install git+{want[0]}@{want[1]} "
            f"(repository of _config.yml, tag of klom_utils.__version__); found {pins or 'none'}"
        )


def check_pair(stem: str) -> None:
    """The .py and .ipynb of a notebook exist, agree (jupytext), and the .ipynb has no outputs."""
    import jupytext
    from jupytext.compare import NotebookDifference, compare_notebooks

    py, ipynb = NOTEBOOKS / f"{stem}.py", NOTEBOOKS / f"{stem}.ipynb"
    for path in (py, ipynb):
        if not path.exists():
            raise BuildError(
                f"{path.relative_to(ROOT)} is missing: every notebook is a .py + .ipynb pair; "
                f"create it with `.venv/bin/jupytext --sync notebooks/{stem}.py`"
            )
    nb_py = jupytext.read(py)
    nb_ipynb = jupytext.read(ipynb)
    try:
        compare_notebooks(nb_ipynb, nb_py, fmt="py:percent")
    except NotebookDifference as err:
        raise BuildError(
            f"notebooks/{stem}.py and notebooks/{stem}.ipynb differ; the .py is the source: run "
            f"`.venv/bin/jupytext --sync notebooks/{stem}.py` (or `--to ipynb`).\n{err}"
        ) from None
    with_outputs = [
        i for i, c in enumerate(nb_ipynb.cells)
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]
    if with_outputs:
        raise BuildError(
            f"notebooks/{stem}.ipynb has outputs in cells {with_outputs}; commit it without "
            f"outputs (`.venv/bin/jupytext --to ipynb notebooks/{stem}.py` rewrites it clean)"
        )
    tagged = [i for i, c in enumerate(nb_ipynb.cells) if "parameters" in c.metadata.get("tags", [])]
    if len(tagged) != 1:
        raise BuildError(
            f"notebooks/{stem} needs exactly one cell tagged 'parameters' (found {len(tagged)}: "
            f"cells {tagged})"
        )


# --------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------


def declared_parameters(ipynb: Path) -> dict:
    import papermill

    return papermill.inspect_notebook(str(ipynb))


def parameters_for(stem: str, params: dict, run_dir: Path) -> dict:
    declared = declared_parameters(NOTEBOOKS / f"{stem}.ipynb")
    chosen = {k: v for k, v in params.items() if k in declared}
    for name, sub in RUN_DIR_PARAMETERS.items():
        if name in declared:
            # Inside the repository: relative to the notebook's working directory (notebooks/),
            # so that the rendered "injected parameters" cell shows no build-machine paths.
            target = (run_dir / sub).resolve()
            inside = target.is_relative_to(ROOT)
            chosen[name] = os.path.relpath(target, NOTEBOOKS) if inside else str(target)
    return chosen


def _final_text(text: str) -> str:
    """What a terminal shows for ``text``: on each line, only what follows the last ``\\r``."""
    lines = []
    for line in text.split("\n"):
        parts = [part for part in line.split("\r") if part]
        lines.append(parts[-1] if parts else "")
    return "\n".join(lines)


def tidy_for_render(nb) -> None:
    """Make an executed notebook read well as a static page (outputs stay what the code printed).

    - Consecutive stream outputs of the same stream are merged and carriage returns applied, so a
      text progress bar (tqdm) shows as its final state instead of one block per update.
    - Papermill's "injected parameters" cell is collapsed (``hide-input``), one click away.
    """
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "hide-input" not in tags:
            cell.metadata["tags"] = tags + ["hide-input"]
        if cell.cell_type != "code":
            continue
        merged = []
        for output in cell.get("outputs", []):
            prev = merged[-1] if merged else None
            if (output.output_type == "stream" and prev is not None
                    and prev.output_type == "stream" and prev.name == output.name):
                prev.text += output.text
            else:
                merged.append(output)
        for output in merged:
            if output.output_type == "stream":
                output.text = _final_text(output.text)
        cell.outputs = [o for o in merged if o.output_type != "stream" or o.text.strip()]


def execute(stem: str, parameters: dict, results_dir: Path, out_dir: Path) -> float:
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    src, out = NOTEBOOKS / f"{stem}.ipynb", out_dir / f"{stem}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    result_json = results_dir / f"{stem}.json"
    if result_json.exists():
        result_json.unlink()
    shown = ", ".join(f"{k}={v!r}" for k, v in parameters.items())
    print(f"\n--> executing notebooks/{stem}.ipynb  ({shown})", flush=True)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(src),
            str(out),
            parameters=parameters,
            cwd=str(NOTEBOOKS),
            kernel_name="python3",
            progress_bar=False,
            log_output=False,
        )
    except PapermillExecutionError as err:
        raise BuildError(
            f"notebooks/{stem} failed in cell {err.exec_count}: {err.ename}: {err.evalue}\n"
            f"The partially executed notebook is {out}."
        ) from None
    seconds = time.perf_counter() - start
    if not result_json.exists():
        raise BuildError(
            f"notebooks/{stem} ran but did not write {result_json}: every notebook writes its "
            f"key numbers to <results_dir>/{stem}.json"
        )
    results = json.loads(result_json.read_text())  # must be valid JSON
    nb = nbformat.read(out, as_version=4)
    check_against_results(stem, nb, results)
    tidy_for_render(nb)
    nbformat.write(nb, out)
    if not parameters.get("progress", True):
        check_no_stderr(stem, nb)
    print(f"    done in {seconds:.1f} s", flush=True)
    return seconds


def check_against_results(stem: str, nb, results: dict) -> None:
    """The page's glued numbers agree with its results file; its figures keep the style."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from book_checks import figure_problems, glue_problems

    problems = glue_problems(stem, nb, results) + figure_problems(nb, results)
    if problems:
        raise BuildError(f"notebooks/{stem}: the page contradicts its results file or the "
                         "book's figure style:\n  " + "\n  ".join(problems))


def check_no_stderr(stem: str, nb) -> None:
    """A published page shows no stderr (warnings, progress bars, log lines)."""
    found = [(i, o.text.strip().splitlines()[0]) for i, cell in enumerate(nb.cells)
             if cell.cell_type == "code" for o in cell.get("outputs", [])
             if o.output_type == "stream" and o.name == "stderr"]
    if found:
        where = "; ".join(f"cell {i}: {line[:100]}" for i, line in found[:5])
        raise BuildError(
            f"notebooks/{stem} wrote to stderr with progress bars off ({where}): a published "
            "page shows no warnings or progress bars; fix the cause or silence it in the notebook"
        )


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def stage_sources(toc, missing: list[str]) -> None:
    for path in (STAGE, HTML):
        if path.exists():
            shutil.rmtree(path)
    STAGE.mkdir(parents=True)
    restage_sources(toc, missing)


def restage_sources(toc, missing: list[str]) -> None:
    """Refresh the staged prose pages and configuration, keeping the executed notebooks."""
    import yaml

    shutil.copy2(ROOT / "_config.yml", STAGE / "_config.yml")
    shutil.rmtree(STAGE / "book", ignore_errors=True)
    shutil.copytree(ROOT / "book", STAGE / "book")
    header = "# Staged by scripts/build_book.py from ../../_toc.yml; edit that file, not this one.\n"
    (STAGE / "_toc.yml").write_text(header + yaml.safe_dump(prune_toc(toc, set(missing)),
                                                            sort_keys=False))


def render() -> float:
    start = time.perf_counter()
    cmd = [
        sys.executable, "-c",
        "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
        "build", str(STAGE.relative_to(ROOT)), "--path-output", ".", "--all", "-W",
        "--builder", "html",
    ]
    print("\n--> jupyter-book build " + " ".join(cmd[4:]), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT)
    if proc.returncode != 0:
        raise BuildError(
            f"jupyter-book build failed (exit status {proc.returncode}); see above (files under "
            f"{STAGE.relative_to(ROOT)}/ are copies: fix the file at the same path in the repository)"
        )
    if not (HTML / "index.html").exists():
        raise BuildError(f"jupyter-book finished but {HTML.relative_to(ROOT)}/index.html is missing")
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--params", default="params/default.yaml",
        help="papermill parameter file (flat YAML; default: params/default.yaml, the embedded CPU "
        "run; params/paper.yaml is the GPU paper-scale run)",
    )
    parser.add_argument(
        "--run-dir", default="_build/run",
        help="folder for what the notebooks write: <run-dir>/store (the model store) and "
        "<run-dir>/results (one JSON per notebook); default: _build/run",
    )
    parser.add_argument(
        "--render", action="store_true",
        help="with --only: execute the chapters into the staged book of the last full build "
        "(_build/src), refresh its prose pages and configuration, and render the site again",
    )
    parser.add_argument(
        "--only", nargs="+", metavar="STEM",
        help="execute only these notebooks (e.g. 03_training), each with the parameters it "
        "declares, into <run-dir>/notebooks/, and render nothing: how to rerun one chapter at "
        "another scale",
    )
    args = parser.parse_args(argv)

    total_start = time.perf_counter()
    params_path = (ROOT / args.params) if not Path(args.params).is_absolute() else Path(args.params)
    run_dir = (ROOT / args.run_dir) if not Path(args.run_dir).is_absolute() else Path(args.run_dir)
    try:
        if not params_path.exists():
            raise BuildError(f"parameter file {args.params} does not exist (see params/)")
        params = load_yaml(params_path) or {}
        if not isinstance(params, dict):
            raise BuildError(f"{args.params} must be a flat YAML mapping of parameter names to values")
        toc = load_yaml(ROOT / "_toc.yml")
        to_run, missing = plan(toc)
        if missing:
            print(
                "NOTE: planned chapters not written yet, left out of this build: "
                + ", ".join(f"notebooks/{s}" for s in missing)
            )
        repo_url = load_yaml(ROOT / "_config.yml")["repository"]["url"]
        for stem in to_run:
            check_pair(stem)
            check_colab_install(stem, repo_url)
        print(f"checked {len(to_run)} notebook pair(s): in sync, no outputs, one parameters "
              f"cell, Colab installs {repo_url}@{colab_pin()}")
        if args.only:
            unknown = sorted(set(args.only) - set(to_run))
            if unknown:
                raise BuildError(f"--only {' '.join(unknown)}: not a notebook of this book "
                                 f"(expected some of {', '.join(to_run)})")
            to_run = [stem for stem in to_run if stem in args.only]

        per_notebook = {stem: parameters_for(stem, params, run_dir) for stem in to_run}
        used = {k for p in per_notebook.values() for k in p}
        unused = sorted(set(params) - used)
        if unused:
            print(f"NOTE: keys of {args.params} that no current notebook declares: {unused}")

        results_dir = run_dir / RUN_DIR_PARAMETERS["results_dir"]
        store_dir = run_dir / RUN_DIR_PARAMETERS["store_dir"]
        if store_dir.is_dir() and any(store_dir.iterdir()):
            print(f"NOTE: reusing the models in {store_dir} (resumable steps skip what is "
                  "there; after changing training or unlearning code, `make clean-book` or "
                  "delete that folder to rebuild from scratch)")
        results_dir.mkdir(parents=True, exist_ok=True)
        rerender = bool(args.only and args.render)
        if args.render and not args.only:
            raise BuildError("--render goes with --only (a full build always renders)")
        if rerender and not (STAGE / "notebooks").is_dir():
            raise BuildError(f"--only ... --render needs the staged book of a full build "
                             f"({STAGE.relative_to(ROOT)}/notebooks); run a full build first")
        out_dir = run_dir / "notebooks" if args.only and not rerender else STAGE / "notebooks"
        if not args.only:
            stage_sources(toc, missing)
        elif rerender:
            restage_sources(toc, missing)
        timings = {stem: execute(stem, per_notebook[stem], results_dir, out_dir)
                   for stem in to_run}
        if not args.only or rerender:
            timings["jupyter-book build"] = render()
    except BuildError as err:
        print(f"\nBUILD FAILED: {err}", file=sys.stderr)
        return 1

    total = time.perf_counter() - total_start
    print("\ntime per step")
    for step, seconds in timings.items():
        print(f"  {step:<28s} {seconds:7.1f} s")
    print(f"  {'total':<28s} {total:7.1f} s")
    site = (f"site: {HTML.relative_to(ROOT)}/index.html   " if not args.only or args.render
            else f"notebooks: {out_dir}   ")
    print(f"\n{site}results: {results_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

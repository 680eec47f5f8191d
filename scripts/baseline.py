"""The package's modules as they were at an earlier commit, importable beside the current ones:
the baselines of the benchmark scripts (``bench_klom.py``, ``bench_intervals.py``)."""

import importlib
import os
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
#: The commit before the compiled fast paths of KLOM and of the intervals.
BASELINE_REV = "05af379"


def baseline_module(name, rev=BASELINE_REV, needs=("metric", "binning", "_typing")):
    """``klom_utils.<name>`` at commit ``rev`` (with the modules it ``needs``), imported from a
    temporary package ``klom_baseline``; None (and a line saying why) outside a git clone."""
    folder = tempfile.mkdtemp(prefix="klom_baseline_")
    package = os.path.join(folder, "klom_baseline")
    os.mkdir(package)
    open(os.path.join(package, "__init__.py"), "w").close()
    for module in {name, *needs}:
        found = subprocess.run(["git", "show", f"{rev}:klom_utils/{module}.py"], cwd=ROOT,
                               capture_output=True, text=True)
        if found.returncode:
            print(f"no baseline: git show {rev}:klom_utils/{module}.py failed "
                  f"({found.stderr.strip()[:80]})")
            return None
        text = found.stdout
        with open(os.path.join(package, f"{module}.py"), "w") as f:
            f.write(text)
    sys.path.insert(0, folder)
    return importlib.import_module(f"klom_baseline.{name}")

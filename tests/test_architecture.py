"""The package's shape, checked: layers that import only downwards (import-linter), no private
names across modules, small modules, deferred imports only for heavy libraries, ruff and mypy."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "klom_utils"
MODULES = sorted(PACKAGE.rglob("*.py"))
#: Libraries a module may import inside a function (heavy to import), each in one place.
HEAVY = {"torch", "numba", "matplotlib", "submitit", "huggingface_hub",
         "tqdm"}  # tqdm.auto: its import probes for Jupyter widgets and warns
#: Modules of numba-compiled loops, imported on first use like numba itself.
COMPILED = {"binning", "ks_kernels", "membership_kernels", "accuracy_kernels"}
MAX_LINES = 600


def _tool(name):
    path = Path(sys.executable).with_name(name)
    return str(path) if path.exists() else shutil.which(name)


def _run(args):
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True)


def _type_checking_nodes(tree):
    return {id(n) for stmt in tree.body if isinstance(stmt, ast.If)
            and "TYPE_CHECKING" in ast.unparse(stmt.test) for n in ast.walk(stmt)}


def test_import_contracts_kept():
    """pyproject.toml's import-linter contracts: layers, independence, a metric without I/O."""
    result = _run([_tool("lint-imports"), "--no-cache"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_ruff_clean():
    result = _run([_tool("ruff"), "check", "--no-cache", "klom_utils", "tests", "scripts"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_clean():
    result = _run([sys.executable, "-m", "mypy", "--no-incremental", "klom_utils"])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_shape(path):
    """At most 600 lines; no private name taken from another module; deferred imports only of
    heavy libraries (or the numba module binning), one function per library."""
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_LINES, f"{path.name}: over {MAX_LINES} lines"
    tree = ast.parse(text)
    top, checking = {id(n) for n in tree.body}, _type_checking_nodes(tree)
    places: dict = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            private = [a.name for a in node.names if a.name.startswith("_")
                       and a.name != "__version__"]
            assert not private, f"{path.name}:{node.lineno} imports private {private}"
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in top:
            continue
        if id(node) in checking:
            continue
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or a.name for a in node.names])
        for name in names:
            root = name.split(".")[0]
            assert root in HEAVY or name in COMPILED, (
                f"{path.name}:{node.lineno}: 'import {name}' inside a function; only heavy "
                f"libraries ({sorted(HEAVY)}) are imported on first use")
            places.setdefault(root, set()).add(_enclosing_function(tree, node))
    for root, where in places.items():
        assert len(where) == 1, f"{path.name}: {root} imported in {len(where)} places {where}"


def _enclosing_function(tree, target):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if any(child is target for child in ast.walk(node)):
                return node.name
    return "<module>"


def test_unlearn_help_lists_every_registered_method(capsys):
    from klom_utils.cli import main
    from klom_utils.unlearning import METHODS

    with pytest.raises(SystemExit):
        main(["unlearn", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert len(METHODS) >= 8
    for name in METHODS:
        assert name in text, name


def test_public_names_import_from_the_package():
    import klom_utils

    for name in klom_utils.__all__:
        assert getattr(klom_utils, name) is not None, name

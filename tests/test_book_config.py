"""The book's configuration, table of contents and notebook conventions (fast, no execution).

What is checked here is what `make book` relies on; see notebooks/README.md for the conventions.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
jupytext = pytest.importorskip("jupytext")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def _load_build_book():
    spec = importlib.util.spec_from_file_location("build_book", ROOT / "scripts" / "build_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_book = _load_build_book()
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
STEMS = build_book.notebooks_on_disk()
REPO_URL = CONFIG["repository"]["url"].rstrip("/")


def colab_url(stem: str) -> str:
    owner_repo = re.fullmatch(r"https://github\.com/([^/]+/[^/]+)", REPO_URL).group(1)
    branch = CONFIG["repository"].get("branch", "main")
    return f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/notebooks/{stem}.ipynb"


def read_ipynb(stem: str):
    return jupytext.read(NOTEBOOKS / f"{stem}.ipynb")


# ---------------------------------------------------------------------------------------------
# _config.yml


def test_config_settings():
    assert CONFIG["only_build_toc_files"] is True
    assert CONFIG["execute"]["execute_notebooks"] == "off"
    assert re.fullmatch(r"https://github\.com/[^/]+/[^/]+", REPO_URL), REPO_URL
    assert CONFIG["repository"]["path_to_book"] == ""  # the repository root is the book root
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    for bib in CONFIG["bibtex_bibfiles"]:
        assert (ROOT / bib).is_file(), bib


def test_citations_exist_in_bibliography():
    bib = (ROOT / CONFIG["bibtex_bibfiles"][0]).read_text()
    keys = set(re.findall(r"^@\w+\{([^,\s]+),", bib, flags=re.M))
    assert keys, "no entries in the bibliography"
    cited = set()
    for md in (ROOT / "book").rglob("*.md"):
        for group in re.findall(r"\{cite(?::[a-z]+)?\}`([^`]+)`", md.read_text()):
            cited |= {k.strip() for k in group.split(",")}
    assert cited, "the book cites nothing"
    assert cited <= keys, f"cited but not in the bibliography: {sorted(cited - keys)}"


# ---------------------------------------------------------------------------------------------
# _toc.yml and the run order


def test_toc_agrees_with_files_and_run_order():
    assert TOC["format"] == "jb-book"
    to_run, missing = build_book.plan(TOC)  # raises BuildError naming each problem
    assert to_run, "no notebook to run"
    assert set(to_run) == set(STEMS)
    assert [s for s in build_book.RUN_ORDER if s in to_run] == to_run


def test_every_toc_entry_exists():
    entries = build_book.toc_files(TOC)
    assert entries[0] == TOC["root"]
    for entry in entries:
        if build_book.is_notebook_entry(entry):
            continue  # checked by the pair tests, and planned ones by the next test
        assert build_book.entry_exists(entry), entry
    _, missing = build_book.plan(TOC)
    if missing:
        pytest.skip(f"planned notebooks not written yet (left out of the build): {missing}")


def test_prune_toc_drops_missing_notebooks_and_empty_parts():
    toc = {
        "format": "jb-book",
        "root": "book/intro",
        "parts": [
            {"caption": "a", "chapters": [{"file": "notebooks/02_x"}, {"file": "notebooks/03_y"}]},
            {"caption": "b", "chapters": [{"file": "notebooks/04_z"}]},
            {"caption": "c", "chapters": [{"file": "book/references"}]},
        ],
    }
    pruned = build_book.prune_toc(toc, {"03_y", "04_z"})
    assert build_book.toc_files(pruned) == ["book/intro", "notebooks/02_x", "book/references"]
    assert [p["caption"] for p in pruned["parts"]] == ["a", "c"]
    assert len(toc["parts"]) == 3  # the original is untouched


def test_progress_bars_render_as_final_state():
    text = "\rbar:   0%|  | 0/4\rbar:  50%|# | 2/4\rbar: 100%|##| 4/4\n"
    assert build_book._final_text(text) == "bar: 100%|##| 4/4\n"
    assert build_book._final_text("a\nb\n") == "a\nb\n"


# ---------------------------------------------------------------------------------------------
# Notebooks


def test_there_are_notebooks():
    assert "01_klom_explained" in STEMS


@pytest.mark.parametrize("stem", STEMS)
def test_pair_in_sync_without_outputs_one_parameters_cell(stem):
    build_book.check_pair(stem)  # raises BuildError saying what to run


@pytest.mark.parametrize("stem", STEMS)
def test_notebook_opening_title_and_colab_link(stem):
    nb = read_ipynb(stem)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), (
        f"{stem}: the first cell is a markdown cell starting with the title ('# ...')"
    )
    links = set(re.findall(r"https://colab\.research\.google\.com/github/[^)\s\"']+", first.source))
    assert links == {colab_url(stem)}, (
        f"{stem}: the first cell links to Colab with exactly {colab_url(stem)} "
        f"(derived from repository.url in _config.yml); found {sorted(links)}"
    )
    assert "What you will learn" in first.source, f"{stem}: say what the reader will learn"


@pytest.mark.parametrize("stem", STEMS)
def test_colab_install_cell_is_hidden_and_before_parameters(stem):
    nb = read_ipynb(stem)
    install = [i for i, c in enumerate(nb.cells)
               if c.cell_type == "code" and "google.colab" in c.source]
    params = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(install) == 1, f"{stem}: one code cell installs the package in Colab"
    cell = nb.cells[install[0]]
    assert set(cell.metadata.get("tags", [])) & {"remove-cell", "hide-input", "hide-cell"}, (
        f"{stem}: tag the Colab install cell 'hide-input' (or 'remove-cell')"
    )
    assert f"git+{REPO_URL}" in cell.source, f"{stem}: install with git+{REPO_URL}"
    assert install[0] < params[0], f"{stem}: the install cell comes before the parameters cell"
    assert cell.metadata.get("mystnb", {}).get("code_prompt_show"), (
        f"{stem}: label the hidden install cell (mystnb.code_prompt_show)")
    assert "torch=={torch.__version__}" in cell.source, f"{stem}: keep Colab's own torch"


@pytest.mark.parametrize("stem", STEMS)
def test_colab_install_pins_the_release_tag(stem):
    build_book.check_colab_install(stem, REPO_URL)  # raises BuildError otherwise


def test_colab_pin_check_rejects_an_unpinned_install(tmp_path, monkeypatch):
    (tmp_path / "x.py").write_text('pip install "klom_utils @ git+' + REPO_URL + '"\n')
    monkeypatch.setattr(build_book, "NOTEBOOKS", tmp_path)
    with pytest.raises(build_book.BuildError, match="must install"):
        build_book.check_colab_install("x", REPO_URL)


@pytest.mark.parametrize("stem", STEMS)
def test_hidden_cells_are_labelled(stem):
    for i, cell in enumerate(read_ipynb(stem).cells):
        if cell.cell_type == "code" and "hide-input" in cell.metadata.get("tags", []):
            assert cell.metadata.get("mystnb", {}).get("code_prompt_show"), (
                f"{stem}: hidden cell {i} needs a label (mystnb.code_prompt_show)")


CODE_WIDTH = 79  # characters of code the page shows (1280 px) before cutting a line off


@pytest.mark.parametrize("stem", STEMS)
def test_shown_code_lines_fit_the_page(stem):
    too_long = [(len(line), line.strip()[:50]) for cell in read_ipynb(stem).cells
                if cell.cell_type == "code" and "hide-input" not in cell.metadata.get("tags", [])
                for line in cell.source.splitlines() if len(line) > CODE_WIDTH]
    assert not too_long, (
        f"{stem}: {len(too_long)} line(s) of shown code cells longer than {CODE_WIDTH} characters "
        "(break the call or the string, or shorten the comment): "
        + "; ".join(f"{n} characters: {start!r}..." for n, start in too_long))


@pytest.mark.parametrize("stem", [s for s in STEMS if not s.startswith("01_")])
def test_pipeline_pages_say_where_their_numbers_come_from(stem):
    first = read_ipynb(stem).cells[0].source
    assert "**Embedded run" in first, f"{stem}: add the embedded-run note to the first cell"
    assert "paper_scale.md" in first and "GPU" in first, (
        f"{stem}: the note says what has run on a GPU and links the paper-scale page")


@pytest.mark.parametrize("stem", STEMS)
def test_no_results_json_line_on_the_page(stem):
    source = "\n".join(c.source for c in read_ipynb(stem).cells if c.cell_type == "code")
    assert "wrote {out}" not in source, f"{stem}: do not print the results file's path"


def test_toc_numbers_chapters_like_the_files_and_intro():
    chapters = [build_book.notebook_stem(e) for e in build_book.toc_files(TOC)
                if build_book.is_notebook_entry(e)]
    assert [int(s[:2]) for s in chapters] == list(range(1, len(chapters) + 1))
    assert all(part.get("numbered") for part in TOC["parts"]
               if any(build_book.is_notebook_entry(c["file"]) for c in part["chapters"]))
    intro = (ROOT / "book" / "intro.md").read_text()
    for stem in chapters:
        title = read_ipynb(stem).cells[0].source.splitlines()[0].lstrip("# ").strip()
        number = int(stem[:2])
        row = re.search(rf"^\| {number}\. ([^|]+)\|", intro, re.M)
        assert row, f"the intro's table lists chapter {number} ({title})"
        assert row.group(1).strip().lower() in title.lower() or title.lower() in row.group(1).lower()


@pytest.mark.parametrize("stem", STEMS)
def test_parameters_and_results_json(stem):
    declared = build_book.declared_parameters(NOTEBOOKS / f"{stem}.ipynb")
    assert "results_dir" in declared, f"{stem}: declare results_dir in the parameters cell"
    source = "\n".join(c.source for c in read_ipynb(stem).cells if c.cell_type == "code")
    assert f"{stem}.json" in source, f"{stem}: write <results_dir>/{stem}.json"


# ---------------------------------------------------------------------------------------------
# Parameter files


def test_build_passes_only_declared_parameters():
    params = yaml.safe_load((ROOT / "params" / "paper.yaml").read_text())
    for stem in STEMS:
        declared = build_book.declared_parameters(NOTEBOOKS / f"{stem}.ipynb")
        given = build_book.parameters_for(stem, params, ROOT / "_build" / "run")
        assert set(given) <= set(declared), (stem, sorted(set(given) - set(declared)))


def test_progress_bars_are_a_parameter_off_in_the_book():
    default = yaml.safe_load((ROOT / "params" / "default.yaml").read_text())
    assert default["progress"] is False
    for stem in STEMS:
        source = (NOTEBOOKS / f"{stem}.py").read_text()
        if "progress=" in source:
            assert "progress" in build_book.declared_parameters(NOTEBOOKS / f"{stem}.ipynb"), stem
            assert "progress=True" not in source, f"{stem}: pass progress=progress"


def test_build_fails_on_stderr_in_a_page():
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text="UserWarning: x\n")]
    nb.cells = [cell]
    with pytest.raises(build_book.BuildError, match="stderr"):
        build_book.check_no_stderr("x", nb)


def test_parameter_files_share_keys_that_notebooks_declare():
    default = yaml.safe_load((ROOT / "params" / "default.yaml").read_text())
    paper = yaml.safe_load((ROOT / "params" / "paper.yaml").read_text())
    assert isinstance(default, dict) and isinstance(paper, dict)
    assert set(default) == set(paper), set(default) ^ set(paper)
    declared = set()
    for stem in STEMS:
        declared |= set(build_book.declared_parameters(NOTEBOOKS / f"{stem}.ipynb"))
    assert set(default) <= declared, (
        f"keys no notebook declares (typo?): {sorted(set(default) - declared)}"
    )
    reserved = set(build_book.RUN_DIR_PARAMETERS)
    assert not (set(default) & reserved), f"{sorted(reserved)} are set by the build, not here"


# ---------------------------------------------------------------------------------------------
# Publishing


def test_pages_workflow():
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert "main" in on["push"]["branches"]
    text = (ROOT / ".github" / "workflows" / "book.yml").read_text()
    for action in ("actions/configure-pages", "actions/upload-pages-artifact", "actions/deploy-pages"):
        assert action in text, action
    assert "make book" in text and "_build/html" in text


def _load_book_checks():
    spec = importlib.util.spec_from_file_location("book_checks", ROOT / "scripts" / "book_checks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


book_checks = _load_book_checks()


def _page(markdown: str, glued: dict, images: int = 0):
    """An executed notebook as nbformat holds it: one markdown cell, one code cell whose
    outputs glue ``glued`` (as klom_utils.tables.glue displays them) and show ``images``."""
    from klom_utils.tables import GLUE_PREFIX, glue

    outputs = []
    for g in glue({}, **glued) if glued else []:
        data, meta = g.bundle()
        outputs.append({"output_type": "display_data", "data": data, "metadata": meta})
    outputs += [{"output_type": "display_data", "data": {"image/png": "AA=="}, "metadata": {}}
                for _ in range(images)]
    assert all(GLUE_PREFIX + "text/plain" in o["data"] for o in outputs[:len(glued)])
    return {"cells": [{"cell_type": "markdown", "source": markdown},
                      {"cell_type": "code", "source": "", "outputs": outputs}]}


def _verdict_results(shares, multiples):
    return {"verdict": {str(k): {"dmm_over_do_nothing": s, "dmm_over_oracle_matching": m}
                        for k, (s, m) in enumerate(zip(shares, multiples), 1)}}


def test_glue_check_passes_a_page_that_agrees_with_its_results():
    results = _verdict_results([0.2, 0.45], [1.5, 3.0])
    text = ("{glue}`dmm_share_min` to {glue}`dmm_share_max`, {glue}`dmm_multiple_min` to "
            "{glue}`dmm_multiple_max` times")
    nb = _page(text, {"dmm_share_min": 0.2, "dmm_share_max": 0.45, "dmm_multiple_min": 1.5,
                      "dmm_multiple_max": 3.0})
    assert book_checks.glue_problems("07_datamodel_matching", nb, results) == []


def test_glue_check_fails_on_contradiction_missing_glue_and_unused_number():
    results = _verdict_results([0.2, 0.45], [1.5, 3.0])
    nb = _page("{glue}`dmm_share_min` to {glue}`dmm_share_max` and {glue}`typo`",
               {"dmm_share_min": 0.25, "dmm_share_max": 0.45, "dmm_multiple_min": 1.5})
    problems = "\n".join(book_checks.glue_problems("07_datamodel_matching", nb, results))
    assert "no cell glues 'typo'" in problems
    assert "dmm_share_min = '0.25', the results file says 0.2" in problems
    assert "'dmm_multiple_max' is not glued" in problems
    assert "'dmm_multiple_min' is glued but the text does not use it" in problems


def test_glue_check_reads_percentages_and_words():
    assert book_checks._agrees("45%", 0.449)
    assert not book_checks._agrees("45%", 0.46)
    assert book_checks._agrees("above", "above") and not book_checks._agrees("above", "not above")
    results = {"noise_floor": {"n_per_side": 100, "retain": {"p95": 0.65},
                               "validation": {"p95": 0.66}},
               "do_nothing_at_n": {"100": {"retain": {"p95": 0.79}, "validation": {"p95": 0.6}}},
               "parameters": {"methods": ["a", "b"]}}
    nb = _page("{glue}`n_methods` {glue}`floor_retain_word` {glue}`floor_validation_word`",
               {"n_methods": 2, "floor_retain_word": "above",
                "floor_validation_word": "above"})
    assert book_checks.glue_problems("05_computing_klom", nb, results) == [
        "the text shows floor_validation_word = 'above', the results file says 'not above'"]


def test_figure_check_counts_images_and_reads_the_style():
    good = {"dpi": 150.0, "width": 7.0, "min_font": 8.0, "legend": [["scrub", "#8172b3"]]}
    bad = {"dpi": 100.0, "width": 8.0, "min_font": 5.0, "legend": [["scrub", "#ff0000"]]}
    assert book_checks.figure_problems(_page("", {}, images=1), {"figures": [good]}) == []
    problems = book_checks.figure_problems(_page("", {}, images=2), {"figures": [bad]})
    assert problems[0].startswith("2 images on the page but 1 figures recorded")
    assert any("100 dpi" in p for p in problems) and any("5 pt" in p for p in problems)
    assert any("'scrub' drawn in #ff0000" in p for p in problems)


def test_every_chapter_uses_the_figure_style_and_saves_its_figures():
    for stem in STEMS:
        source = (NOTEBOOKS / f"{stem}.py").read_text()
        assert "use_style()" in source and "FigureLog()" in source, stem
        assert 'results["figures"] = shown.records' in source, stem
        assert "plt.subplots" not in source and "plt.show" not in source, (
            f"{stem}: make figures with klom_utils.plots.figure and show them with the log")


def test_glued_names_of_the_checks_are_used_by_their_chapters():
    for stem, names in book_checks.GLUED.items():
        text = (NOTEBOOKS / f"{stem}.py").read_text()
        for name in names:
            assert f"{{glue}}`{name}`" in text, f"{stem}: the text does not show {name}"


def test_api_page_documents_every_name_the_chapters_import():
    import ast
    import importlib

    api = (ROOT / "book" / "api.md").read_text()
    missing = []
    for stem in STEMS:
        tree = ast.parse((NOTEBOOKS / f"{stem}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("klom_utils"):
                for alias in node.names:  # where a name is defined, or re-exported
                    home = getattr(getattr(importlib.import_module(node.module), alias.name),
                                   "__module__", node.module)
                    documented = any(re.search(rf"{re.escape(m)}(\.\w+)*\.{alias.name}\b", api)
                                     for m in (node.module, home))
                    if not documented:
                        missing.append(f"{stem}: {node.module}.{alias.name}")
    assert not missing, "book/api.md does not document: " + ", ".join(missing)


def test_book_renders_math_and_references_offline():
    sphinx = CONFIG["sphinx"]
    assert sphinx["config"]["html_math_renderer"] == "klom_mathsvg"
    assert sphinx["config"]["bibtex_default_style"] == "authoryear"
    for name, folder in sphinx["local_extensions"].items():
        assert (ROOT / folder / f"{name}.py").is_file(), name


def test_bibliography_labels_name_the_authors():
    spec = importlib.util.spec_from_file_location("klom_bibstyle",
                                                  ROOT / "book" / "_ext" / "klom_bibstyle.py")
    style = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(style)
    from pybtex.database import parse_file

    entries = parse_file(str(ROOT / CONFIG["bibtex_bibfiles"][0])).entries
    labels = dict(zip(entries, style.AuthorYearLabels().format_labels(list(entries.values()))))
    assert labels["jupyterbook2020"] == "Executable Books Community 2020"
    assert labels["georgiev2025attribute"] == "Georgiev et al. 2025"
    assert labels["kullback1951information"] == "Kullback and Leibler 1951"
    twice = list(style.AuthorYearLabels().format_labels([entries["krizhevsky2009cifar"]] * 2))
    assert twice == ["Krizhevsky 2009a", "Krizhevsky 2009b"]


def test_math_renders_to_svg_without_a_network():
    spec = importlib.util.spec_from_file_location("klom_mathsvg",
                                                  ROOT / "book" / "_ext" / "klom_mathsvg.py")
    mathsvg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mathsvg)
    import base64

    data, width, height, depth = mathsvg.render(r"\alpha_t \lVert\theta\rVert_1 \approx 11.5")
    assert base64.b64decode(data).startswith(b"<?xml") and width > height > 0 and depth >= 0
    img = mathsvg._img(r"p_b > 0", block=False)
    assert img.startswith('<img class="klom-math" src="data:image/svg+xml;base64,')
    assert 'alt="p_b &gt; 0"' in img and "vertical-align:-" in img

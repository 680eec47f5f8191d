"""Checks of an executed chapter against its results file (used by scripts/build_book.py and
tests/test_book_config.py):

- **glued numbers**: every ``{glue}`name``` in the chapter's text has a glued output in the
  notebook; the numbers listed in :data:`GLUED` (method counts, verdict ratios, the noise
  floor comparison, ...) are glued, used in the text, and equal what the results file says
  (to the precision the page shows);
- **figures**: every image the chapter shows went through its ``FigureLog`` (as many records
  in ``results["figures"]`` as images on the page) and keeps the book's style
  (``klom_utils.plots.style_problems``).
"""

from __future__ import annotations

import re

GLUE_ROLE = re.compile(r"\{glue(?::text)?\}`([^`:]+)(?::[^`]*)?`")
GLUE_PREFIX = "application/papermill.record/"


def _first(results, key):
    sets = results["parameters"]["forget_sets"]
    return results[key][str(sets[0])]


def _floor_word(results, group):
    at = str(results["noise_floor"]["n_per_side"])
    nothing = results["do_nothing_at_n"][at][group]["p95"]
    return "above" if nothing > results["noise_floor"][group]["p95"] else "not above"


def _verdict_values(results, key):
    return [v[key] for v in results["verdict"].values() if v[key] is not None]


# Per chapter: glue name -> how the results file gives its value (a number, compared at the
# precision shown, a percentage where the text ends in %, or a word, compared exactly).
GLUED = {
    "01_klom_explained": {
        "direction_u_o": lambda r: r["direction"]["point_mass_vs_spread"],
        "direction_o_u": lambda r: r["direction"]["spread_vs_point_mass"],
        "separated_score": lambda r: r["separated_score"],
    },
    "02_download": {
        "do_nothing_retain": lambda r: _first(r, "do_nothing")["retain"]["p95"],
        "floor_retain": lambda r: _first(r, "noise_floor")["retain"]["p95"],
    },
    "04_unlearning": {
        "n_methods": lambda r: len(r["parameters"]["methods"]),
        "n_registered": lambda r: len(r["registered"]),
        "n_baselines": lambda r: len(r["baselines"]),
    },
    "05_computing_klom": {
        "n_methods": lambda r: len(r["parameters"]["methods"]),
        "floor_retain_word": lambda r: _floor_word(r, "retain"),
        "floor_validation_word": lambda r: _floor_word(r, "validation"),
    },
    "06_your_method": {
        "closed_min": lambda r: min(_verdict_values(r, "forget_gap_closed"), default="n/a"),
        "closed_max": lambda r: max(_verdict_values(r, "forget_gap_closed"), default="n/a"),
    },
    "07_datamodel_matching": {
        "dmm_share_min": lambda r: min(_verdict_values(r, "dmm_over_do_nothing"), default="nan"),
        "dmm_share_max": lambda r: max(_verdict_values(r, "dmm_over_do_nothing"), default="nan"),
        "dmm_multiple_min": lambda r: min(_verdict_values(r, "dmm_over_oracle_matching"),
                                          default="nan"),
        "dmm_multiple_max": lambda r: max(_verdict_values(r, "dmm_over_oracle_matching"),
                                          default="nan"),
    },
}


def _text(source) -> str:
    return "".join(source) if isinstance(source, list) else source


def glued_outputs(nb) -> dict[str, str]:
    """``{name: text}`` of every glued output of an executed notebook."""
    found = {}
    for cell in nb["cells"]:
        for output in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            meta = output.get("metadata", {}).get("scrapbook")
            if meta:
                data = output.get("data", {})
                text = data.get(meta.get("mime_prefix", "") + "text/plain", "")
                found[meta["name"]] = _text(text).strip().strip("'")
    return found


def glue_references(nb) -> set[str]:
    """Names that the notebook's text shows with ``{glue}`` or ``{glue:text}``."""
    return {m.group(1) for cell in nb["cells"] if cell["cell_type"] == "markdown"
            for m in GLUE_ROLE.finditer(_text(cell["source"]))}


def _agrees(text: str, value) -> bool:
    if isinstance(value, str):
        return text == value
    percent = text.endswith("%")
    number = text.rstrip("%")
    try:
        shown = float(number)
    except ValueError:
        return False
    decimals = len(number.split(".")[1]) if "." in number else 0
    expected = 100 * value if percent else value
    return abs(shown - expected) <= 0.5 * 10 ** -decimals + 1e-9


def glue_problems(stem: str, nb, results: dict) -> list[str]:
    """What contradicts: a glue reference without a value, a listed number not glued or not
    in the text, or a glued number that differs from the results file."""
    shown, used = glued_outputs(nb), glue_references(nb)
    problems = [f"the text uses {{glue}}`{n}` but no cell glues {n!r}"
                for n in sorted(used - set(shown))]
    for name, expect in GLUED.get(stem, {}).items():
        if name not in shown:
            problems.append(f"{name!r} is not glued (the text must show it from a cell)")
            continue
        if name not in used:
            problems.append(f"{name!r} is glued but the text does not use it")
        value = expect(results)
        if not _agrees(shown[name], value):
            problems.append(f"the text shows {name} = {shown[name]!r}, the results file "
                            f"says {value!r}")
    return problems


def image_count(nb) -> int:
    return sum(1 for cell in nb["cells"] if cell["cell_type"] == "code"
               for o in cell.get("outputs", []) if "image/png" in o.get("data", {}))


def figure_problems(nb, results: dict) -> list[str]:
    """Images shown without the FigureLog, or figures that leave the book's style."""
    from klom_utils.plots import style_problems

    records = results.get("figures", [])
    problems = []
    if len(records) != image_count(nb):
        problems.append(f"{image_count(nb)} images on the page but {len(records)} figures "
                        "recorded (show every figure through the chapter's FigureLog)")
    for i, description in enumerate(records):
        problems += [f"figure {i + 1}: {p}" for p in style_problems(description)]
    return problems

"""The files of a comparison (:func:`klom_utils.comparison.compare`): a tidy table (CSV and
JSON), a summary ranked by a stated aggregate (Markdown and HTML), and its figures."""

from __future__ import annotations

import csv
import io
import json
from html import escape
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ._typing import PathLike, Record
from .files import atomic_write
from .metric import GROUPS
from .plots import klom_vs_cost, p95_bars, protocol_comparison
from .tables import jsonable, settings_line, three_decimals

#: The table's columns of the other lenses (``klom_utils.comparison.lens_columns``), by group.
LENS_COLUMNS = ("ulira", "ulira_low", "ulira_high", "ulira_null", "ks_p95", "ks_p95_low",
                "ks_p95_high", "ks_null", "tow", "tow_null", "average_gap")
#: Columns of the CSV table, in order (settings and the oracles that chose them as JSON).
COLUMNS = ("dataset", "forget_set", "method", "group", "protocol", "label", "p95", "p95_low",
           "p95_high", "floor_p95", "floor_n_per_side", "n_per_side", "direction", "variant",
           "bins", "accuracy",
           "oracle_accuracy", "accuracy_gap", "seconds_per_model", "relative_cost", "settings",
           "folder", "chosen_on", "warnings") + LENS_COLUMNS
AGGREGATE = ("aggregate: the mean over forget sets of the mean of the forget, retain and "
             "validation 95th percentiles of KLOM (lower is better)")


def _mean(values: Sequence[Any]) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def summarize_comparison(result: Record) -> list:
    """One entry per method, ranked by the aggregate (:data:`AGGREGATE`): its mean p95 per
    group, the aggregate, the mean validation accuracy gap, cost, and the floor's aggregate."""
    out = []
    for m in result["methods"]:
        rows = [r for r in result["rows"] if r["method"] == m]
        p95 = {g: _mean([r["p95"] for r in rows if r["group"] == g]) for g in GROUPS}
        val = [r for r in rows if r["group"] == "validation"]
        out.append({"method": m, **{f"{g}_p95": p95[g] for g in GROUPS},
                    "aggregate": _mean(list(p95.values())),
                    "validation_accuracy_gap": _mean([r["accuracy_gap"] for r in val]),
                    "seconds_per_model": _mean([r["seconds_per_model"] for r in val]),
                    "relative_cost": _mean([r["relative_cost"] for r in val]),
                    "n_per_side": sorted({r["n_per_side"] for r in rows
                                          if r["n_per_side"] is not None}),
                    "forget_ulira": _mean([r["ulira"] for r in rows if r["group"] == "forget"]),
                    "tow": _mean([r["tow"] for r in val])})
    out.sort(key=lambda e: e["aggregate"] if e["aggregate"] is not None
             and np.isfinite(e["aggregate"]) else np.inf)  # undefined ones last
    for rank, entry in enumerate(out, 1):
        entry["rank"] = rank
    return out


def floor_aggregate(result: Record) -> float | None:
    """The aggregate of the noise floor (oracles against oracles at the same N)."""
    floors = {}
    for r in result["rows"]:
        if r["floor_p95"] is not None:
            floors[(r["forget_set"], r["group"])] = r["floor_p95"]
    return _mean(list(floors.values()))


def _cell(x: Any, column: str = "") -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and "gap" in column:
        return three_decimals(x, signed=True)
    if isinstance(x, float):
        return f"{x:.2g}" if abs(x) < 0.1 and x != 0 else f"{x:.2f}"
    return str(x)


def summary_markdown(result: Record) -> str:
    """The ranked summary as Markdown: what was compared, under which protocol, and how."""
    summary = summarize_comparison(result)
    n = sorted({x for e in summary for x in e["n_per_side"]})
    head = [f"# {result['dataset']}: {len(result['methods'])} methods on forget sets "
            f"{', '.join(map(str, result['forget_sets']))}",
            "", f"Protocol: **{result['protocol']}**"
            + (f" ({result['label']})" if result["label"] else "")
            + f"; up to {result['budget']} settings per method; selection score: "
            f"{result['selection']}.", "",
            f"Ranked by the {AGGREGATE}. N = {', '.join(map(str, n))} models per side; noise "
            f"floor aggregate {_cell(floor_aggregate(result))} at the same N. Relative cost: "
            "wall time per model of the unlearning call (loading and writing the models "
            "included) / of training models of the full models' recipe, measured on the same "
            "device (for datamodel methods without estimating the datamodel). Accuracy gap: "
            "unlearned minus oracles' test accuracy.", "", f"{settings_line(result['records'])}.", ""]
    cols = ["rank", "method", "aggregate", "forget_p95", "retain_p95", "validation_p95",
            "validation_accuracy_gap", "seconds_per_model", "relative_cost"] + _lens_cols(summary)
    if len(cols) > 9:
        head[-1:] = ["", "forget U-LiRA: chance 0.5, cap 1 (mean over forget sets); ToW: 1 = as "
                     "retrained. Both at the same N as KLOM; their nulls are in results.csv.", ""]
    lines = ["| " + " | ".join(c.replace("_", " ") for c in cols) + " |",
             "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(e[c], c) for c in cols) + " |" for e in summary]
    return "\n".join(head + lines) + "\n"


def summary_html(result: Record) -> str:
    """The ranked summary as an HTML fragment (for notebooks and pages)."""
    summary = summarize_comparison(result)
    cols = ["rank", "method", "aggregate", "forget_p95", "retain_p95", "validation_p95",
            "validation_accuracy_gap", "relative_cost"] + _lens_cols(summary)
    head = "".join(f"<th>{escape(c.replace('_', ' '))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{escape(_cell(e[c], c))}</td>" for c in cols)
                   + "</tr>" for e in summary)
    title = (f"{result['dataset']}, protocol {result['protocol']}"
             + (f" ({result['label']})" if result["label"] else ""))
    n = ", ".join(str(x) for x in sorted({x for e in summary for x in e["n_per_side"]}))
    where = (f"N = {n} models per side; noise floor aggregate "
             f"{_cell(floor_aggregate(result))} at the same N")
    return (f"<p><strong>{escape(title)}</strong>; {escape(AGGREGATE)}; {escape(where)}; "
            f"{escape(settings_line(result['records']))}</p>"
            f'<div style="overflow-x:auto"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _lens_cols(summary: list) -> list:
    """The summary's columns of the other lenses, where they were computed."""
    return [c for c in ("forget_ulira", "tow") if any(e[c] is not None for e in summary)]


def table_csv(rows: Sequence[Record]) -> str:
    """The tidy table as CSV: one row per method x forget set x group."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: json.dumps(jsonable(r[c])) if isinstance(r[c], (dict, list))
                         else ("" if r[c] is None else r[c]) for c in COLUMNS})
    return buffer.getvalue()


def protocol_values(result: Record, group: str = "forget") -> dict:
    """``{protocol: {method: mean p95 of group over forget sets}}`` of the settings each
    protocol chose (scored at the same N)."""
    return {p: {m: float(np.mean([per_set[k]["p95"][group] for k in per_set]))
                for m, per_set in result["protocols"][p].items()}
            for p in result["protocols"]}


def write_comparison(result: Record, out: PathLike) -> dict:
    """Write ``results.json``, ``results.csv``, ``summary.md``, ``summary.html`` and the
    figures ``p95.png``, ``cost.png`` and (where more than one setting was tried)
    ``protocols.png`` into ``out``; returns their paths."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    texts = {"results.json": json.dumps(jsonable(result), indent=2, allow_nan=False) + "\n",
             "results.csv": table_csv(result["rows"]), "summary.md": summary_markdown(result),
             "summary.html": summary_html(result)}
    files = {}
    for name, text in texts.items():
        files[name] = str(atomic_write(folder / name, _text_writer(text)))
    label = result["protocol"] + (", optimistic" if result["label"] else "")
    figures = {"p95.png": p95_bars(result["records"], ncols=1),
               "cost.png": klom_vs_cost(summarize_comparison(result),
                                        floor=floor_aggregate(result), label=label)}
    if result["budget"] > 1:  # with one setting per method both protocols choose it
        figures["protocols.png"] = protocol_comparison(protocol_values(result))
    for name, fig in figures.items():
        files[name] = str(atomic_write(folder / name, _figure_writer(fig)))
    return files


def _text_writer(text: str) -> Callable[[Path], object]:
    return lambda tmp: tmp.write_text(text)


def _figure_writer(fig: Any) -> Callable[[Path], object]:
    return lambda tmp: fig.savefig(tmp, dpi=150, format="png")

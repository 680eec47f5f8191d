"""Tables of scored records: plain text to print or save, HTML in a notebook (one table per
forget set, intervals compact, accuracies in their own columns), with what every interval
covers and every diagnostic warning below; records made JSON-ready; and numbers glued into a
page's prose (:func:`glue`)."""

from __future__ import annotations

import re
import sys
from html import escape
from typing import Any, Iterable

import numpy as np

from ._typing import Record
from .diagnostics import SMALL_FORGET
from .uncertainty import INTERVAL_COVERS


def jsonable(x: Any) -> Any:
    """A copy of ``x`` (records, summaries) that ``json.dumps(..., allow_nan=False)`` accepts:
    numpy scalars and arrays become Python numbers and lists, nan and infinities ``None``."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


GLUE_PREFIX = "application/papermill.record/"  # how myst-nb recognises a glued output


class Glued:
    """One value for a page's prose: displayed, it is a hidden output that myst-nb's
    ``{glue}`name``` role shows in the text (the page renders ``text``)."""

    def __init__(self, name: str, text: str) -> None:
        self.name, self.text = name, text

    def __repr__(self) -> str:
        return f"Glued({self.name!r}, {self.text!r})"

    def bundle(self) -> tuple[dict, dict]:
        """(data, metadata) of the output, in the form myst-nb's ``glue`` writes."""
        return ({GLUE_PREFIX + "text/plain": self.text},
                {"scrapbook": {"name": self.name, "mime_prefix": GLUE_PREFIX}})

    def _ipython_display_(self) -> None:
        # Called by IPython's display() only, so IPython is loaded; published raw, without
        # the text/plain repr that IPython's formatters would add (myst-nb would show it).
        data, metadata = self.bundle()
        sys.modules["IPython.display"].publish_display_data(data=data, metadata=metadata)


def glue_text(value: Any, digits: int = 2) -> str:
    """How :func:`glue` writes a value: a bool or str as is, an int in full, a float with
    ``digits`` decimals (nan as "nan")."""
    if isinstance(value, (bool, str)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return _number(float(value), digits)
    raise TypeError(f"glue takes numbers, bools and strings, got {type(value).__name__} "
                    f"{value!r}")


def glue(results: dict, digits: int = 2, **values: Any) -> list[Glued]:
    """The values of a page's prose, ready to ``display(*glue(results, name=value, ...))``:
    each becomes a hidden output that ``{glue}`name``` shows in the text, and its text is
    kept in ``results["glued"][name]`` (saved with the page's results) so a build check can
    hold the prose to the results.

    :param results: the page's results dict (gets ``"glued"``).
    :param digits: decimals of every float (:func:`glue_text`).
    :param values: ``name=value``: a number, bool or string; format a percentage yourself.
    """
    if not values:
        raise ValueError("glue needs at least one name=value")
    shown = results.setdefault("glued", {})
    out = []
    for name, value in values.items():
        shown[name] = glue_text(value, digits)
        out.append(Glued(name, shown[name]))
    return out


def three_decimals(x: float, signed: bool = False) -> str:
    """``x`` to 3 decimals, with its sign where ``signed`` (a gap), none where it rounds to
    zero (``0.000``: never ``-0.000`` or ``+0.000``)."""
    if round(x, 3) == 0:
        return "0.000"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def _number(x, digits: int = 2) -> str:
    return "nan" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _with_ci(group: dict) -> str:
    """``p95 [low, high]``; the interval left out where there is none (nan, or None as read
    back from JSON)."""
    low, high = group.get("p95_low"), group.get("p95_high")
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return _number(group["p95"])
    return f"{group['p95']:.2f} [{group['p95_low']:.2f}, {group['p95_high']:.2f}]"


def _setting(record) -> tuple:
    """The estimator settings that make two records comparable."""
    k = record["klom"]
    return (k["direction"], k["variant"], k["bins"], k["eps"], tuple(k["clip"]))


def _short(setting) -> str:
    direction, variant, bins = setting[:3]
    return f"KL({direction.replace('||', ' || ')}), {variant}, {bins} bins"


def settings_line(records) -> str:
    """What the KLOM numbers of ``records`` are: statistic, interval level, direction, variant
    and bins (each distinct setting; a warning where they differ)."""
    settings = {_setting(r) for r in records}
    text = "; ".join(_short(x) for x in sorted(settings))
    levels = sorted({r.get("interval", {}).get("level", 0.95) for r in records})
    level = "/".join(f"{100 * x:g}%" for x in levels)
    return (f"KLOM per example, 95th percentile per group [{level} interval]; {text}"
            + ("  (!) records with different settings: compare rows of one setting only"
               if len(settings) > 1 else ""))


def results_table(records: Iterable[Record]) -> ResultsTable:
    """A plain-text table of records from :func:`score` (HTML in a notebook).

    Per forget set: one row per method (the 95th percentile of each group with its interval,
    ``N`` per side, accuracies; for forget sets under 100 examples also the forget mean and
    the count of forget examples above the retain 99th percentile), a row per method rescored
    at the noise floor's ``N`` where that is smaller, and the noise floor labelled with its
    ``N``. Below: what the intervals cover and every diagnostic warning.
    """
    records = list(records)
    if not records:
        raise ValueError("results_table needs at least one record")
    small = any(r["forget_size"] < SMALL_FORGET for r in records)
    mixed = len({_setting(r) for r in records}) > 1
    header = (["forget set", "method", "N/side", "forget p95 [CI]"]
              + (["forget mean", "forget > retain p99"] if small else [])
              + ["retain p95 [CI]", "validation p95 [CI]", ACCURACY_HEADER])
    blank = [""] * (2 if small else 0)
    by_set: dict[tuple, list[Record]] = {}
    for r in records:  # rows grouped by forget set, in order of first appearance
        by_set.setdefault((r["dataset"], r["forget_set"]), []).append(r)
    rows = []
    for group in by_set.values():
        name = f"{group[0]['forget_set']} (n={group[0]['forget_size']})"
        for r in group:
            acc = r.get("accuracy")
            n = (str(r["n_unlearned"]) if r["n_unlearned"] == r["n_oracles"]
                 else f"{r['n_unlearned']}/{r['n_oracles']} (!)")
            extra = ([f"{r['forget']['mean']:.2f}",
                      f"{r['forget'].get('above_retain_p99', 0)} of {r['forget_size']}"]
                     if small else [])
            method = r["method"] + (f" ({_short(_setting(r))})" if mixed else "")
            rows.append([name, method, n, _with_ci(r["forget"])] + extra
                        + [_with_ci(r["retain"]), _with_ci(r["validation"])]
                        + [f"{acc['forget']:.3f}/{acc['retain']:.3f}/{acc['test']:.3f}"
                           if acc else "-"])
        for r in group:
            if r.get("matched"):
                at = r["matched"]
                method = r["method"] + (f" ({_short(_setting(r))})" if mixed else "")
                rows.append([name, f"{method} (rescored)", str(at["n_per_side"]),
                             _with_ci(at["forget"])] + blank
                            + [_with_ci(at["retain"]), _with_ci(at["validation"]), ""])
        floors: dict[tuple, Record] = {}  # one row per N and estimator setting
        for r in group:
            if r.get("noise_floor"):
                floors.setdefault((r["noise_floor"]["n_per_side"], _setting(r)), r["noise_floor"])
        for (n, setting), floor in sorted(floors.items(), key=lambda kv: -kv[0][0]):
            label = "noise floor" + (f" ({_short(setting)})" if mixed else "")
            rows.append([name, label, str(n), _number(floor["forget"]["p95"])] + blank
                        + [_number(floor[g]["p95"]) for g in ("retain", "validation")] + [""])
    notes = [f"[CI]: interval for {INTERVAL_COVERS}. Compare methods only at equal N.",
             "noise floor: oracles scored against disjoint oracles at the N shown (a perfect "
             "method's score at that N); (rescored): the method at the floor's N."]
    if small:
        notes.append(f"forget sets under {SMALL_FORGET} examples: the p95 rests on the few "
                     "largest scores; read it with the forget mean and the count above the "
                     "retain p99.")
    seen: dict[str, list[str]] = {}
    for r in records:
        for w in r.get("diagnostics", {}).get("warnings", []):
            if w["kind"] != "small_forget":
                seen.setdefault(w["message"], []).append(f"{r['forget_set']}/{r['method']}")
    notes += [f"(!) [{', '.join(where)}] {message}" for message, where in seen.items()]
    return ResultsTable.build(settings_line(records), header, rows, notes)


class ResultsTable(str):
    """The plain-text table of :func:`results_table` (a ``str``: print it, write it to a file);
    in a notebook it shows as an HTML table with the same title, cells and notes."""

    heading: str
    header: list
    rows: list
    notes: list

    @classmethod
    def build(cls, title: str, header: list, rows: list, notes: list) -> "ResultsTable":
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

        def line(cells):
            return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

        text = "\n".join([title, "", line(header), line(["-" * w for w in widths]),
                          *(line(r) for r in rows), "", *notes])
        table = cls(text)
        table.heading, table.header, table.rows, table.notes = title, header, rows, notes
        return table

    def _repr_html_(self) -> str:
        """One HTML table per forget set (its rows, without the forget-set column; the N per
        side in its heading where every row has the same), each interval under its estimate
        in small print, the accuracies in columns of their own, headers on two lines."""
        acc = ACCURACY_HEADER in self.header
        by_set: dict[str, list] = {}
        for row in self.rows:
            by_set.setdefault(str(row[0]), []).append(
                _split_accuracy(row[1:], self.header, acc))
        header = [h.replace(" [CI]", "") for h in self.header[1:] if h != ACCURACY_HEADER]
        header += ["acc forget", "acc retain", "acc test"] if acc else []
        tables = []
        for name, rows in by_set.items():
            sizes = {row[1] for row in rows}
            same_n = len(sizes) == 1
            cols = [i for i in range(len(header)) if not (same_n and i == 1)]
            head = "".join(f"<th>{_two_lines(header[i])}</th>" for i in cols)
            body = "".join("<tr>" + "".join(f"<td>{_html_cell(row[i])}</td>" for i in cols)
                           + "</tr>" for row in rows)
            n = f", N = {escape(next(iter(sizes)))} per side" if same_n else ""
            tables.append(f'<p style="margin:0.6em 0 0.2em">forget set {escape(name)}{n}</p>'
                          '<table class="klom-table" style="font-size:0.8em;white-space:nowrap;'
                          'border-collapse:separate;border-spacing:0.3em 0.1em">'
                          f"<thead><tr>{head}</tr></thead>"
                          f"<tbody>{body}</tbody></table>")
        notes = "".join(f"<li>{escape(n)}</li>" for n in self.notes)
        return (f'<div class="klom-results"><p><strong>{escape(self.heading)}</strong></p>'
                f'<div style="overflow-x:auto">{"".join(tables)}</div>'
                f'<ul style="font-size:smaller">{notes}</ul></div>')


def _two_lines(header: str) -> str:
    """A column header broken at its last space (``forget<br>p95``): narrower columns."""
    words = escape(header).rsplit(" ", 1)
    return "<br>".join(words)


ACCURACY_HEADER = "acc forget/retain/test"
_INTERVAL = re.compile(r"^(\S+) \[(\S+), (\S+)\](?: · null (\S+))?$")
_SMALL = '<br><span style="font-size:0.8em;color:#555">'


def _html_cell(cell) -> str:
    """An estimate with its interval ``p95 [low, high]`` (and ``· null x``) as the estimate
    over the interval (and the null) in small print; any other cell escaped as is."""
    found = _INTERVAL.match(str(cell))
    if not found:
        return escape(str(cell))
    mid, low, high, null = (escape(x) if x else x for x in found.groups())
    return (f"{mid}{_SMALL}[{low}, {high}]</span>"
            + (f"{_SMALL}null {null}</span>" if null else ""))


def _split_accuracy(row, header, acc) -> list:
    if not acc:
        return list(row)
    at = header.index(ACCURACY_HEADER) - 1
    parts = str(row[at]).split("/")
    return list(row[:at]) + list(row[at + 1:]) + (parts if len(parts) == 3 else ["", "", ""])

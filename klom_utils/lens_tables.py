"""The table of the other lenses (U-LiRA, KS, accuracy gaps and ToW) of scored records: one row
per method and lens, the three groups in columns, each value with its interval and its null."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from ._typing import Record
from .tables import ResultsTable, three_decimals

__all__ = ["lens_table"]

_GROUPS = ("forget", "retain", "validation")


def _cell(entry: dict[str, Any] | None, key: str = "value", signed: bool = False,
          n0: int | None = None) -> str:
    """``value [low, high] · null x`` (parts left out where missing); where the null's N
    (``n0``) is below the value's, `` (N=n0: y)``: the value at the null's N beside it."""
    if not entry:
        return "-"
    value = entry.get(key)
    if value is None or not np.isfinite(value):
        return "nan"
    text = three_decimals(value, signed)
    low, high = entry.get("low"), entry.get("high")
    if low is not None and high is not None and np.isfinite(low) and np.isfinite(high):
        text += f" [{three_decimals(low, signed)}, {three_decimals(high, signed)}]"
    if entry.get("null") is not None:
        text += f" · null {three_decimals(entry['null'], signed)}"
        if entry.get("at_null_n") is not None:
            text += f" (N={n0}: {three_decimals(entry['at_null_n'], signed)})"
    return text


def _p(p: float) -> str:
    """A p-value; below 1e-12 only the bound (float64 rounding decides the digits there)."""
    return "< 1e-12" if p < 1e-12 else f"{p:.3g}"


def _rows(r: Record) -> list[list[str]]:
    lens = r["metrics"]
    name = f"{r.get('forget_set', '-')} (n={r['forget_size']})"
    n = str(r["n_unlearned"]) if r["n_unlearned"] == r["n_oracles"] else \
        f"{r['n_unlearned']}/{r['n_oracles']} (!)"
    rows = []
    n0 = lens.get("at_null_n_per_side")

    def cell(entry, key="value", signed=False):
        return _cell(entry, key, signed, n0)

    def row(label, cells):
        rows.append([name, r.get("method", "-"), n, label, *cells])

    ulira = lens.get("ulira")
    if ulira and ulira.get("groups"):
        row("U-LiRA (chance 0.5, cap 1)", [cell(ulira["groups"][g]) for g in _GROUPS])
    elif ulira:
        row("U-LiRA", [ulira["why"], "", ""])
    ks = lens.get("ks")
    if ks:
        row("KS p95 (cap 1)", [cell(ks["groups"][g], "p95") for g in _GROUPS])
        row("KS forget quality p", [_p(ks["forget_quality"]["p_value"]), "", ""])
    acc = lens.get("accuracy")
    if acc:
        row("accuracy, unlearned", [cell(acc["unlearned"][g]) for g in _GROUPS])
        row("accuracy, oracles", [cell(acc["oracle"][g]) for g in _GROUPS])
        row("accuracy gap (unl. - orc.)", [cell(acc["gap"][g], signed=True) for g in _GROUPS])
        row("average gap (of the three)", [cell(acc["average_gap"]), "", ""])
        row("ToW (of the three)", [cell(acc["tow"]), "", ""])
    return rows


def lens_table(records: Iterable[Record]) -> ResultsTable:
    """The lenses of records scored with ``metrics`` (see :func:`klom_utils.evaluate.score`)
    as a table (plain text; HTML in a notebook). Records without lenses are skipped."""
    records = [r for r in records if r.get("metrics")]
    if not records:
        raise ValueError("lens_table needs records scored with metrics (metrics='all', or "
                         "--metrics all)")
    header = ["forget set", "method", "N/side", "lens", *_GROUPS]
    rows = [row for r in records for row in _rows(r)]
    nulls = sorted({", ".join(sorted({str(n) for n in r["metrics"]["null_n_per_side"] or []}))
                    or "none" for r in records})
    first = records[0]["metrics"]["interval"]
    notes = [
        f"[CI]: {100 * first['level']:g}% interval for the expected value at this N per side, "
        f"over the randomness of training the models ({first['method']}).",
        f"null: the same lens for two disjoint groups of oracles, N per side {'; '.join(nulls)} "
        "(compare a value with its null at the same N only).",
        "U-LiRA retain and validation: random samples of the forget set's size (controls); "
        f"accuracy: share of examples a model gets right ({_basis(records)}); validation = "
        "the held-out split.",
        "KS forget quality: exact KS p-value of the models' mean forget margins, unlearned vs "
        "oracles (TOFU-style; small p: the unlearned models are told apart; with nothing to "
        "tell apart, p is uniform on [0, 1])."]
    if any(r["metrics"].get("at_null_n_per_side") for r in records):
        notes.append("(N=n: y): where the null's N is below the value's (fewer than 2N "
                     "oracles), the same lens on n models per side, to read against the null.")
    warnings = {w["message"] for r in records for w in r["metrics"].get("warnings", [])}
    notes += [f"(!) {w}" for w in sorted(warnings)]
    return ResultsTable.build("Other lenses on the same models (U-LiRA, KS, accuracies)",
                              header, rows, notes)


def _basis(records: Sequence[Record]) -> str:
    """What "right" meant for the accuracies of ``records`` (both named if they differ)."""
    bases = sorted({(r["metrics"].get("accuracy") or {}).get("basis") or "" for r in records} - {""})
    return "; ".join(bases) or "not computed"

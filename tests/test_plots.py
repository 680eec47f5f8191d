"""Figures: built without pyplot, right number of panels, input errors."""

import io

import numpy as np
import pytest
from matplotlib.figure import Figure

from klom_utils import plots


def _margins(n_models, n_examples, shift=0.0, seed=0):
    return np.random.default_rng(seed).normal(shift, 1.0, (n_models, n_examples))


def _record(method, forget_set, p95):
    group = {"p95": p95, "p95_low": p95 - 0.2, "p95_high": p95 + 0.3}
    return {"method": method, "dataset": "DIGITS", "forget_set": forget_set,
            "n_unlearned": 10, "n_oracles": 10, "forget": group, "retain": group,
            "validation": group, "noise_floor": {g: {"p95": 0.5, "mean": 0.2}
                                                 for g in ("forget", "retain", "validation")}}


def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def test_margin_histograms():
    o, u, g = _margins(20, 6), _margins(12, 6, 1.0, 1), _margins(20, 6, 3.0, 2)
    fig = plots.margin_histograms(o, u, g, examples=[0, 3, 5], titles=["a", "b", "c"])
    assert isinstance(fig, Figure)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 3 and visible[1].get_title() == "b"
    heights = [p.get_height() for p in visible[0].patches]
    assert sum(heights) == pytest.approx(3.0)  # three samples, each normalised to 1
    assert _png(fig)[:4] == b"\x89PNG"
    fig = plots.margin_histograms(o, u, examples=range(6), ncols=4)  # two rows, no originals
    assert sum(ax.get_visible() for ax in fig.axes) == 6
    with pytest.raises(ValueError, match=r"examples must be column indices in \[0, 6\)"):
        plots.margin_histograms(o, u, examples=[6])
    with pytest.raises(ValueError, match="unlearned covers 5 examples, expected 6"):
        plots.margin_histograms(o, u[:, :5])


def test_klom_distributions():
    rng = np.random.default_rng(0)
    n_train, forget = 30, np.array([1, 4, 9])
    scores = {"do_nothing": rng.exponential(2.0, 40), "oracle_matching": rng.exponential(0.5, 40)}
    fig = plots.klom_distributions(scores, forget, n_train)
    assert [ax.get_title() for ax in fig.axes] == ["forget", "retain", "validation"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(scores)
    _png(fig)
    with pytest.raises(ValueError, match="do not fit"):
        plots.klom_distributions({"x": np.zeros(20)}, forget, n_train)
    with pytest.raises(ValueError, match="empty"):
        plots.klom_distributions({}, forget, n_train)


def test_p95_bars():
    records = [_record(m, k, p) for k in (1, 3)
               for m, p in (("do_nothing", 9.0), ("oracle_matching", 1.0))]
    fig = plots.p95_bars(records)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 2
    assert "forget set 3" in visible[1].get_title()
    bars = [p for p in visible[0].patches]
    assert sorted(b.get_height() for b in bars) == [1.0] * 3 + [9.0] * 3
    _png(fig)
    with pytest.raises(ValueError, match="at least one record"):
        plots.p95_bars([])


def test_klom_vs_cost_and_protocol_comparison():
    summary = [{"method": "do_nothing", "aggregate": 3.6, "relative_cost": 0.2,
                "seconds_per_model": 0.004},
               {"method": "scrub", "aggregate": 4.1, "relative_cost": 0.9,
                "seconds_per_model": 0.02}]
    fig = plots.klom_vs_cost(summary, floor=0.6, label="leave-one-out")
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear" and "relative cost" in ax.get_xlabel()
    assert len(ax.collections) == 3  # two methods and the oracle's star
    summary[1]["relative_cost"] = None  # not measured on the same device: seconds instead
    assert "seconds per model" in plots.klom_vs_cost(summary).axes[0].get_xlabel()
    fig = plots.protocol_comparison({"leave-one-out": {"scrub": 6.8, "do_nothing": 8.7},
                                     "oracle-tuned": {"scrub": 3.6, "do_nothing": 8.7}})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["leave-one-out", "oracle-tuned (optimistic)"]
    with pytest.raises(ValueError, match="at least one"):
        plots.klom_vs_cost([])

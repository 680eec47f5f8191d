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


def test_figure_in_the_book_style_and_its_description():
    fig, axes = plots.figure(2)
    assert fig.dpi >= plots.DPI and len(axes) == 2 and fig.get_figwidth() <= plots.MAX_WIDTH
    axes[0].hist([1.0, 2.0], color=plots.COLORS["oracle"], label="oracles (2)")
    axes[0].plot([0, 1], [0, 1], color=plots.method_color("scrub"), label="scrub")
    axes[0].hlines(1.0, 0, 1, colors=plots.COLORS["floor"], label="noise floor (N=5)")
    axes[0].legend()
    d = plots.describe(fig)
    assert d["legend"] == [["oracles (2)", "#4c72b0"], ["scrub", "#8172b3"],
                           ["noise floor (N=5)", "#000000"]]
    assert plots.style_problems(d) == []
    with pytest.raises(ValueError, match="n_panels must be at least 1, got 0"):
        plots.figure(0)


def test_style_problems_name_what_leaves_the_style():
    fig, (ax,) = plots.figure(1)
    ax.plot([0, 1], [0, 1], color="#ff0000", label="do nothing (N=10)")
    ax.scatter([0], [0], color="#123456", label="my own line")  # not a method: any colour
    ax.legend(fontsize=5)
    problems = plots.style_problems(plots.describe(fig))
    assert "text of 5 pt, at least 7" in problems
    assert ("legend entry 'do nothing (N=10)' drawn in #ff0000, its colour is #8C8C8C"
            in problems)
    assert len(problems) == 2
    assert plots.style_problems({"dpi": 100, "width": 12, "min_font": 8, "legend": []}) == [
        "100 dpi, expected at least 150",
        f"12 inches wide, at most {plots.MAX_WIDTH:g} (wider figures shrink their fonts on "
        "the page)"]


def test_every_figure_function_keeps_the_style():
    rng = np.random.default_rng(0)
    recs = [_record(m, k, p) for k in (1, 2) for m, p in (("do_nothing", 5.0), ("scrub", 2.0))]
    figs = [plots.p95_bars(recs), plots.p95_overview(recs),
            plots.klom_distributions({"do_nothing": rng.exponential(2.0, 40)}, np.array([1, 4]),
                                     30),
            plots.margin_histograms(_margins(20, 3), _margins(20, 3, 1.0, 1), _margins(20, 3),
                                    examples=[0, 1])]
    for fig in figs:
        assert plots.style_problems(plots.describe(fig)) == [], fig


def test_p95_overview_marks_every_method_set_and_floor():
    recs = [_record(m, k, p) for k in (1, 2, 3) for m, p in (("do_nothing", 5.0), ("scrub", 2.0))]
    fig = plots.p95_overview(recs)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == list(plots.GROUPS)
    labels = [t for t, _ in plots.describe(fig)["legend"]]
    assert labels.count("noise floor (set 1, N=?)") == 1 and "forget set 3" in labels
    assert len(visible[0].collections) >= 6  # a marker per method and forget set
    with pytest.raises(ValueError, match="p95_overview needs at least one record"):
        plots.p95_overview([])


def test_figure_log_keeps_a_description_per_figure():
    log = plots.FigureLog()
    fig, _ = plots.figure(1)
    assert log(fig) is fig and log.records == [plots.describe(fig)]


def test_use_style_sets_the_book_resolution():
    import matplotlib

    with matplotlib.rc_context():
        plots.use_style()
        assert matplotlib.rcParams["figure.dpi"] == plots.DPI
        assert matplotlib.rcParams["savefig.dpi"] == plots.DPI

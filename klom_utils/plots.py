"""Matplotlib figures for the book: margin histograms, KLOM distributions, 95th percentiles,
and the one style every figure of the book uses.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (so it works
with any backend, including Agg, and leaves no global state); show it in a notebook by leaving
it as a cell's value, or save it with ``fig.savefig(path)``. :func:`figure` makes an empty one
in the same style for a chapter's own plots; :func:`describe` and :func:`style_problems` check
that a figure keeps the style (resolution, font sizes, a method's or role's colour in legends).
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import numpy as np

from ._typing import ArrayLike, Record
from .metric import group_index

if TYPE_CHECKING:
    from matplotlib.figure import Figure

GROUPS = ("forget", "retain", "validation")
#: One colour per role of a group of models, in every figure: originals (the models before
#: unlearning), oracles (retrained without the forget set), unlearned models (any method: where
#: one method is shown, its own colour, :func:`method_color`), and the noise floor.
COLORS = {"oracle": "#4C72B0", "unlearned": "#DD8452", "original": "#8C8C8C", "floor": "#000000"}
# The names a legend entry may carry for each role (after dropping a "(...)" suffix).
ROLE_LABELS = {"oracle": ("oracle", "oracles"), "original": ("original", "originals",
                                                             "full models", "full model"),
               "floor": ("noise floor",)}
DPI = 150  # dots per inch of every figure (shown and saved)
MIN_FONT = 7.0  # no text smaller, in points, at the figure's own size
# inches: about the width of a page's text column (688 CSS pixels at 1280 px), so that a figure
# shows at about its own size; a wider one is scaled down on the page, and its fonts with it
MAX_WIDTH = 7.2
# The book's matplotlib settings; :func:`use_style` applies them to pyplot figures too.
STYLE = {
    "figure.dpi": DPI, "savefig.dpi": DPI, "font.size": 9.0, "axes.titlesize": 10.0,
    "axes.labelsize": 9.0, "xtick.labelsize": 8.0, "ytick.labelsize": 8.0,
    "legend.fontsize": 8.0, "figure.titlesize": 11.0, "axes.spines.top": False,
    "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.5,
    "figure.constrained_layout.use": True,
}
#: The colours of a chapter's own lines where no method or role applies (not a method's colour).
OTHER_COLORS = ("#333333", "#17BECF", "#BCBD22", "#7F7F7F", "#E377C2")
# One colour per method in every figure of the book, each registered method its own (none is
# a role's colour: the oracles' blue, the originals' grey stays with do_nothing, which returns them).
METHOD_COLORS = {
    "do_nothing": "#8C8C8C",
    "gradient_ascent": "#C44E52",
    "gradient_descent": "#DD8452",
    "neggrad_plus": "#937860",
    "scrub": "#8172B3",
    "oracle_matching": "#55A868",
    "datamodel_matching": "#2A9D8F",
    "datamodel_direct": "#64B5CD",
    "random_labels": "#E377C2",
    "salun": "#17BECF",
    "l1_sparse": "#BCBD22",
    "eu_k": "#393B79",
    "cf_k": "#8C6D31",
    "noisy_descent": "#7B4173",
}
_EXTRA_COLORS = ("#637939", "#D6616B", "#3182BD", "#E6550D", "#843C39", "#5254A3")


def method_color(method: str) -> str:
    """The colour of ``method`` in every figure: fixed for the built-in methods, and for any
    other name one of a few extra colours chosen from the name (the same in every figure)."""
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    return _EXTRA_COLORS[zlib.crc32(method.encode()) % len(_EXTRA_COLORS)]


def _matplotlib():
    """matplotlib with its Figure and patches (heavy: imported on first use, here only)."""
    import matplotlib
    import matplotlib.collections
    import matplotlib.colors
    import matplotlib.figure
    import matplotlib.lines
    import matplotlib.patches
    import matplotlib.text
    import matplotlib.ticker

    return matplotlib


def use_style() -> None:
    """Apply the book's style (:data:`STYLE`) to every later figure, pyplot's included."""
    matplotlib = _matplotlib()
    matplotlib.rcParams.update(STYLE)
    matplotlib.rcParams["axes.prop_cycle"] = matplotlib.cycler(color=list(OTHER_COLORS))


def figure(n_panels: int = 1, *, panel_width: float = 4.6, height: float = 3.2, ncols=None):
    """An empty figure in the book's style, without pyplot: ``(fig, axes)``, ``axes`` a flat
    array of ``n_panels`` axes laid out ``ncols`` per row. Show ``fig`` as a cell's value.

    :param n_panels: how many axes.
    :param panel_width: inches per panel (the whole figure is at most :data:`MAX_WIDTH`).
    :param height: inches per row of panels.
    :param ncols: panels per row (default: all in one row).
    """
    if n_panels < 1:
        raise ValueError(f"n_panels must be at least 1, got {n_panels}")
    return _figure(n_panels, panel_width=panel_width, height=height, ncols=ncols)


def _legend_entries(legend) -> list:
    matplotlib = _matplotlib()
    if legend is None:
        return []
    handles = getattr(legend, "legend_handles", None) or getattr(legend, "legendHandles", [])
    out = []
    for text, handle in zip(legend.get_texts(), handles):
        if isinstance(handle, matplotlib.lines.Line2D):
            color = handle.get_color()
        else:  # patches (bars, histograms), collections (scatter, hlines)
            lines = isinstance(handle, matplotlib.collections.LineCollection)
            found = np.atleast_2d(handle.get_color() if lines else handle.get_facecolor())
            color = found[0] if found.size else None
        out.append([text.get_text(),
                    None if color is None else matplotlib.colors.to_hex(color)])
    return out


def describe(fig) -> dict:
    """What :func:`style_problems` checks of a figure: its dpi, width (inches), the smallest
    font size of any visible text (points), and every legend entry as ``[label, colour]``."""
    texts = [t for t in fig.findobj(_matplotlib().text.Text)
             if t.get_visible() and t.get_text().strip()]
    return {"dpi": float(fig.dpi), "width": float(fig.get_figwidth()),
            "min_font": min((float(t.get_fontsize()) for t in texts), default=None),
            "legend": [e for legend in [ax.get_legend() for ax in fig.axes if ax.get_visible()]
                       + list(fig.legends) for e in _legend_entries(legend)]}


def expected_color(label: str) -> str | None:
    """The colour the style gives a legend entry named ``label`` (a method's name, spaces for
    underscores, or a role's: oracles, originals, noise floor; a ``" (...)"`` suffix ignored);
    None for any other label."""
    name = label.split(" (")[0].strip()
    method = name.replace(" ", "_")
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    for role, names in ROLE_LABELS.items():
        if name.lower() in names:
            return COLORS[role]
    return None


def style_problems(description: Mapping) -> list[str]:
    """What keeps a figure (its :func:`describe`) from the book's style: under :data:`DPI`,
    wider than :data:`MAX_WIDTH`, text under :data:`MIN_FONT` points, or a legend entry of a
    method or role in another colour than its own. Empty when the figure keeps the style."""
    problems = []
    if description["dpi"] < DPI:
        problems.append(f"{description['dpi']:g} dpi, expected at least {DPI}")
    if description["width"] > MAX_WIDTH + 1e-6:
        problems.append(f"{description['width']:g} inches wide, at most {MAX_WIDTH:g} "
                        "(wider figures shrink their fonts on the page)")
    if description["min_font"] is not None and description["min_font"] < MIN_FONT:
        problems.append(f"text of {description['min_font']:g} pt, at least {MIN_FONT:g}")
    for label, color in description["legend"]:
        want = expected_color(label)
        if want is not None and color is not None and color.lower() != want.lower():
            problems.append(f"legend entry {label!r} drawn in {color}, its colour is {want}")
    return problems


class FigureLog:
    """Shows figures and keeps what :func:`describe` says of each: ``log(fig)`` returns
    ``fig`` (leave it as a cell's value, or ``display`` it) and appends its description to
    ``log.records``, which a chapter saves with its results for the style check."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def __call__(self, fig):
        self.records.append(describe(fig))
        return fig


def _figure(n_panels: int, *, panel_width: float = 3.6, height: float = 3.0, ncols=None):
    matplotlib = _matplotlib()
    ncols = min(n_panels, ncols or n_panels)
    nrows = -(-n_panels // ncols)
    width = min(panel_width * ncols, MAX_WIDTH)
    with matplotlib.rc_context(STYLE):
        fig = matplotlib.figure.Figure(figsize=(width, height * nrows), dpi=DPI,
                                       layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _rows(name, array, n_examples=None):
    a = np.asarray(array.detach().cpu() if hasattr(array, "detach") else array, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (n_models, n_examples), got {a.shape}")
    if n_examples is not None and a.shape[1] != n_examples:
        raise ValueError(f"{name} covers {a.shape[1]} examples, expected {n_examples}")
    return a


def margin_histograms(oracle: ArrayLike, unlearned: ArrayLike, original: ArrayLike | None = None,
                      examples: ArrayLike = (0,), *, bins: int = 20,
                      titles: Sequence[str] | None = None,
                      labels: Sequence[str] = ("oracles", "unlearned", "originals"),
                      ncols: int = 4, clip: tuple[float, float] = (-100.0, 100.0),
                      unlearned_colors: Sequence[str] | None = None) -> Figure:
    """One panel per example: histograms (fractions of models) of the margins of oracles,
    unlearned models and (optionally) original models, on shared equal-width bins.

    Margin arrays are (n_models, n_examples); ``examples`` indexes their columns.
    ``unlearned_colors``: one colour per panel for the unlearned models (e.g. the method's,
    :func:`method_color`); default: the same colour in every panel.
    """
    o = _rows("oracle", oracle)
    u = _rows("unlearned", unlearned, o.shape[1])
    g = None if original is None else _rows("original", original, o.shape[1])
    examples = [int(e) for e in np.atleast_1d(examples)]
    bad = [e for e in examples if not 0 <= e < o.shape[1]]
    if not examples or bad:
        raise ValueError(f"examples must be column indices in [0, {o.shape[1]}), "
                         f"got {bad or examples}")
    if titles is not None and len(titles) != len(examples):
        raise ValueError(f"{len(titles)} titles for {len(examples)} examples")
    if unlearned_colors is not None and len(unlearned_colors) != len(examples):
        raise ValueError(f"{len(unlearned_colors)} unlearned_colors for {len(examples)} examples")
    fig, axes = _figure(len(examples), ncols=ncols)
    samples = [(o, labels[0], COLORS["oracle"]), (u, labels[1], COLORS["unlearned"])]
    if g is not None:
        samples.append((g, labels[2], COLORS["original"]))
    for j, (ax, e) in enumerate(zip(axes, examples)):
        cols = [np.clip(a[:, e], *clip) for a, _, _ in samples]
        lo, hi = min(c.min() for c in cols[:2]), max(c.max() for c in cols[:2])
        if g is not None:
            lo, hi = min(lo, cols[2].min()), max(hi, cols[2].max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
        for i, (c, (_, label, color)) in enumerate(zip(cols, samples)):
            if i == 1 and unlearned_colors is not None:
                color = unlearned_colors[j]
            ax.hist(c, bins=edges, weights=np.full(c.size, 1.0 / c.size), alpha=0.55,
                    color=color, label=f"{label} ({c.size})")
        ax.set_title(titles[j] if titles is not None else f"example {e}", fontsize=10)
        ax.set_xlabel("margin")
        if unlearned_colors is not None or j == 0:
            ax.legend(fontsize=8)
    axes[0].set_ylabel("fraction of models")
    return fig


def _group_scores(scores, forget, n_train):
    s = np.asarray(scores, dtype=np.float64)
    return {g: s[i] for g, i in group_index(s.size, forget, n_train, None).items()}


def klom_distributions(scores_by_method: Mapping[str, ArrayLike], forget: ArrayLike,
                       n_train: int, *, log_scale: bool = False) -> Figure:
    """Per group (forget, retain, validation), a box per method of per-example KLOM (quartiles
    and median; whiskers to the most extreme scores within the 5th to 95th percentiles; the
    95th percentile itself marked with a diamond).

    ``scores_by_method``: ``{method: per-example scores}`` (train then val examples).
    """
    if not scores_by_method:
        raise ValueError("scores_by_method is empty: expected {method: per-example scores}")
    names = list(scores_by_method)
    by_group = {m: _group_scores(s, forget, n_train) for m, s in scores_by_method.items()}
    fig, axes = _figure(3, panel_width=max(3.2, 0.9 * len(names) + 1.2), height=3.4)
    positions = np.arange(1, len(names) + 1)
    for ax, group in zip(axes, GROUPS):
        data = [by_group[m][group] for m in names]
        boxes = ax.boxplot(data, positions=positions, whis=(5, 95), showfliers=False,
                           widths=0.6, patch_artist=True, medianprops={"color": "k"})
        for box, m in zip(boxes["boxes"], names):
            box.set(facecolor=method_color(m), alpha=0.6)
        ax.scatter(positions, [np.percentile(d, 95) if d.size else np.nan for d in data],
                   marker="D", color="k", zorder=3, s=18, label="95th percentile")
        ax.set_xticks(positions, names, rotation=60, ha="right", rotation_mode="anchor",
                      fontsize=8)
        ax.set_title(group, fontsize=10)
        if log_scale:
            ax.set_yscale("symlog", linthresh=0.1)
    axes[0].set_ylabel("KLOM per example")
    axes[0].legend(fontsize=8)
    return fig


def p95_bars(records: Iterable[Record], *, groups: Sequence[str] = GROUPS,
             show_floor: bool = True, ncols: int = 1) -> Figure:
    """One panel per forget set (``ncols`` per row): bars of each method's 95th percentile per
    group with its interval (for the expected 95th percentile at the record's ``N``), and the
    noise floor as a dashed line labelled with its ``N`` per side. ``records`` from
    :func:`klom_utils.evaluate.score`."""
    records = list(records)
    if not records:
        raise ValueError("p95_bars needs at least one record")
    sets = list(dict.fromkeys((r["dataset"], r["forget_set"]) for r in records))
    methods = list(dict.fromkeys(r["method"] for r in records))
    fig, axes = _figure(len(sets), panel_width=max(4.0, 0.3 * len(methods) * len(groups) + 2.5),
                        height=2.8, ncols=ncols)
    width = 0.8 / len(methods)
    x = np.arange(len(groups))
    for ax, key in zip(axes, sets):
        recs = {r["method"]: r for r in records if (r["dataset"], r["forget_set"]) == key}
        for j, m in enumerate(methods):
            if m not in recs:
                continue
            r = recs[m]
            mid = np.array([r[g]["p95"] for g in groups])
            err = np.array([[mid[i] - r[g]["p95_low"], r[g]["p95_high"] - mid[i]]
                            for i, g in enumerate(groups)]).T
            ax.bar(x - 0.4 + width * (j + 0.5), mid, width, yerr=np.clip(err, 0, None),
                   capsize=2, label=m, color=method_color(m))
        floor = next((r["noise_floor"] for r in recs.values() if r.get("noise_floor")), None)
        if show_floor and floor:
            for i, g in enumerate(groups):
                ax.hlines(floor[g]["p95"], i - 0.45, i + 0.45, colors=COLORS["floor"], linestyles="dashed",
                          label=f"noise floor (N={floor.get('n_per_side', '?')})"
                          if i == 0 else None)
        ns = sorted({(r["n_unlearned"], r["n_oracles"]) for r in recs.values()})
        n = ", ".join(f"{u}" if u == o else f"{u}/{o}" for u, o in ns)
        ax.set_title(f"{key[0]} forget set {key[1]} (N={n} per side)", fontsize=10)
        ax.set_xticks(x, list(groups))
        ax.set_ylabel("95th percentile of KLOM")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center",
               ncols=min(4, len(methods) + 1), fontsize=8)
    return fig


def annotated_heatmap(values: ArrayLike, row_labels: Sequence[str], col_labels: Sequence[str], *,
                      title: str = "", vmax: float | None = None, fmt: str = "{:.2f}",
                      cmap: str = "viridis") -> Figure:
    """A heat map of ``values`` (rows x columns) with every cell's number written in it.

    nan cells are drawn hatched grey and labelled "nan", so they never look like 0 (which gets
    the colour map's lowest colour and its number).
    """
    matplotlib = _matplotlib()
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"values have shape {v.shape}, expected "
                         f"({len(row_labels)}, {len(col_labels)}) from the labels")
    fig, axes = _figure(1, panel_width=1.1 * len(col_labels) + 2.5,
                        height=0.45 * len(row_labels) + 1.2)
    ax = axes[0]
    colormap = matplotlib.colormaps[cmap].with_extremes(bad="#D9D9D9")
    im = ax.imshow(np.ma.masked_invalid(v), cmap=colormap, vmin=0.0,
                   vmax=vmax if vmax is not None else np.nanmax(v, initial=1.0), aspect="auto")
    for (i, j), x in np.ndenumerate(v):
        if np.isnan(x):
            ax.add_patch(matplotlib.patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False,
                                                      hatch="///", edgecolor="#A0A0A0", lw=0))
            ax.text(j, i, "nan", ha="center", va="center", color="black", style="italic")
        else:
            dark = im.norm(x) < 0.6
            ax.text(j, i, fmt.format(x), ha="center", va="center",
                    color="white" if dark else "black")
    ax.set_xticks(range(len(col_labels)), list(col_labels))
    ax.set_yticks(range(len(row_labels)), list(row_labels))
    if title:
        ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def klom_vs_cost(summary: Sequence[Record], *, floor: float | None = None,
                 label: str = "") -> Figure:
    """One point per method: its aggregate KLOM (the mean over forget sets of the mean of its
    three 95th percentiles) against its relative cost (unlearning time per model as a fraction
    of training one model, measured on the same device; seconds per model where no relative
    cost was measured). Retraining, the oracle, sits at cost 1 and at the noise ``floor``;
    doing nothing is marked. ``summary`` from :func:`klom_utils.report.summarize_comparison`."""
    rows = list(summary)
    if not rows:
        raise ValueError("klom_vs_cost needs at least one method")
    relative = all(r["relative_cost"] is not None for r in rows)
    key = "relative_cost" if relative else "seconds_per_model"
    fig, axes = _figure(1, panel_width=5.2, height=3.6)
    ax = axes[0]
    for r in rows:
        x = r[key]
        if x is None:
            continue
        ax.scatter([x], [r["aggregate"]], s=60, color=method_color(r["method"]),
                   edgecolor="k" if r["method"] == "do_nothing" else "none", zorder=3,
                   label=r["method"] + (" (no unlearning)" if r["method"] == "do_nothing" else ""))
    if relative and floor is not None:
        ax.scatter([1.0], [floor], marker="*", s=160, color="k", zorder=3,
                   label="oracle: retraining (noise floor)")
    xs = [r[key] for r in rows if r[key]] + ([1.0] if relative and floor is not None else [])
    if xs and max(xs) / min(xs) > 30:  # a log axis only where costs span decades
        ax.set_xscale("log")
        ticker = _matplotlib().ticker
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())  # log minor labels overlap
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    else:
        ax.set_xlim(0, max(xs or [1.0]) * 1.08)
    ax.set_xlabel("relative cost (fraction of training one model)" if relative
                  else "seconds per model")
    ax.set_ylabel("aggregate KLOM (mean of p95s)")
    ax.set_title("KLOM against cost" + (f" ({label})" if label else ""), fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def protocol_comparison(values: Mapping[str, Mapping[str, float]], *,
                        group: str = "forget") -> Figure:
    """Per method, bars of the 95th percentile of ``group`` (mean over forget sets) with the
    settings each protocol chose: ``values[protocol][method]``. The gap between
    "oracle-tuned" and "leave-one-out" is how much tuning on the scoring oracles flatters."""
    protocols = list(values)
    if not protocols:
        raise ValueError("protocol_comparison needs at least one protocol")
    methods = list(dict.fromkeys(m for p in protocols for m in values[p]))
    fig, axes = _figure(1, panel_width=max(4.5, 0.7 * len(methods) + 2.0), height=3.2)
    ax = axes[0]
    width = 0.8 / len(protocols)
    x = np.arange(len(methods))
    hatches = {"oracle-tuned": "//", "leave-one-out": "", "fixed": ".."}
    for j, p in enumerate(protocols):
        ax.bar(x - 0.4 + width * (j + 0.5), [values[p].get(m, np.nan) for m in methods], width,
               color=[method_color(m) for m in methods], edgecolor="k", linewidth=0.5,
               hatch=hatches.get(p, ""), label=p + (" (optimistic)" if p == "oracle-tuned"
                                                   else ""))
    ax.set_xticks(x, methods, rotation=30, ha="right")
    ax.set_ylabel(f"{group} p95 KLOM (mean over sets)")
    ax.set_title("settings chosen without vs with the scoring oracles", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def p95_overview(records: Iterable[Record], *, groups: Sequence[str] = GROUPS) -> Figure:
    """The results at a glance: one panel per group, one row per method, the 95th percentile
    on every forget set (one marker shape per set, its interval as a line) on a log axis, and
    each forget set's noise floor as a dashed line with its ``N`` per side in the legend.
    :param records: from :func:`klom_utils.evaluate.score`, one per method and forget set.
    :param groups: the panels, in order.
    """
    records = list(records)
    if not records:
        raise ValueError("p95_overview needs at least one record")
    methods = list(dict.fromkeys(r["method"] for r in records))
    sets = list(dict.fromkeys(r["forget_set"] for r in records))
    markers, dashes = "osD^vP", [(0, (4, 2)), (0, (1, 1.5)), (0, (6, 2, 1, 2))]
    fig, axes = _figure(len(groups), panel_width=3.3, height=0.32 * len(methods) + 1.6)
    offsets = np.linspace(-0.25, 0.25, len(sets)) if len(sets) > 1 else np.zeros(1)
    for ax, group in zip(axes, groups):
        for j, k in enumerate(sets):
            recs = {r["method"]: r for r in records if r["forget_set"] == k}
            for i, m in enumerate(methods):
                if m not in recs:
                    continue
                g = recs[m][group]
                y = len(methods) - 1 - i + offsets[j]
                low, high = g.get("p95_low"), g.get("p95_high")
                if low is not None and high is not None and np.isfinite([low, high]).all():
                    ax.hlines(y, max(low, 1e-3), high, color=method_color(m), lw=1)
                ax.scatter([g["p95"]], [y], marker=markers[j % len(markers)], s=22,
                           color=method_color(m), zorder=3)
            floor = next((r["noise_floor"] for r in recs.values() if r.get("noise_floor")), None)
            if floor:
                ax.axvline(floor[group]["p95"], color=COLORS["floor"], lw=0.9,
                           linestyle=dashes[j % len(dashes)],
                           label=f"noise floor (set {k}, N={floor.get('n_per_side', '?')})")
        ax.set_xscale("log")
        ticker = _matplotlib().ticker
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_yticks(range(len(methods)), methods[::-1] if ax is axes[0] else [])
        ax.set_title(group)
        ax.set_xlabel("95th percentile of KLOM")
    for j, k in enumerate(sets):
        axes[-1].scatter([], [], marker=markers[j % len(markers)], color="#555555",
                         label=f"forget set {k}")
    fig.legend(*axes[-1].get_legend_handles_labels(), loc="outside lower center",
               ncols=min(4, 2 * len(sets)), fontsize=8)
    return fig

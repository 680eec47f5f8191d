"""Tables and glued numbers: the HTML form of a results table (one table per forget set,
compact intervals, accuracies in their own columns) and the values glued into a page's text."""

import numpy as np
import pytest

from klom_utils import tables


def _record(method, forget_set, p95=1.0, accuracy=(1.0, 0.99, 0.97)):
    group = {"p95": p95, "p95_low": p95 - 0.25, "p95_high": p95 + 0.5, "mean": 0.4}
    return {"method": method, "dataset": "DIGITS", "forget_set": forget_set,
            "forget_size": 200, "n_unlearned": 10, "n_oracles": 10,
            "forget": group, "retain": group, "validation": group,
            "accuracy": dict(zip(("forget", "retain", "test"), accuracy)),
            "klom": {"direction": "unlearned||oracle", "variant": "canonical", "bins": 20,
                     "eps": 1e-5, "clip": [-100.0, 100.0]}}


def test_html_has_one_table_per_forget_set_and_accuracy_columns():
    table = tables.results_table([_record("do_nothing", 1), _record("scrub", 1, 2.0),
                                  _record("do_nothing", 2, accuracy=(0.5, 0.75, 0.25))])
    html = table._repr_html_()
    assert html.count("<table") == 2
    assert "forget set 1 (n=200)" in html and "forget set 2 (n=200)" in html
    assert "<th>acc<br>forget</th><th>acc<br>retain</th><th>acc<br>test</th>" in html
    assert "forget set 1 (n=200), N = 10 per side" in html and "N/side" not in html
    assert "<td>0.500</td><td>0.750</td><td>0.250</td>" in html
    assert "2.00<br><span" in html and "[1.75, 2.50]</span>" in html  # interval under it
    assert "<th>forget set</th>" not in html  # the set is the table's heading
    assert "white-space:nowrap" in html
    assert "2.00 [1.75, 2.50]" in table  # the plain text is unchanged


def test_glue_displays_hidden_values_and_keeps_their_text():
    results = {}
    glued = tables.glue(results, n=8, ratio=np.float64(1.2345), word="above", digits=1)
    assert [g.name for g in glued] == ["n", "ratio", "word"]
    assert results["glued"] == {"n": "8", "ratio": "1.2", "word": "above"}
    data, meta = glued[1].bundle()
    assert data == {tables.GLUE_PREFIX + "text/plain": "1.2"}
    assert meta == {"scrapbook": {"name": "ratio", "mime_prefix": tables.GLUE_PREFIX}}
    assert tables.glue_text(float("nan")) == "nan" and tables.glue_text(True) == "True"
    with pytest.raises(TypeError, match=r"glue takes numbers, bools and strings, got list \[1\]"):
        tables.glue(results, bad=[1])
    with pytest.raises(ValueError, match="glue needs at least one name=value"):
        tables.glue(results)


def test_glued_value_is_published_without_a_plain_text_repr(monkeypatch):
    import types

    published = []
    fake = types.SimpleNamespace(publish_display_data=lambda **kw: published.append(kw))
    monkeypatch.setitem(__import__("sys").modules, "IPython.display", fake)
    tables.glue({}, n=3)[0]._ipython_display_()
    assert published == [{"data": {tables.GLUE_PREFIX + "text/plain": "3"},
                          "metadata": {"scrapbook": {"name": "n",
                                                     "mime_prefix": tables.GLUE_PREFIX}}}]


def test_html_keeps_the_n_column_where_n_differs_within_a_forget_set():
    uneven = dict(_record("scrub", 1), n_unlearned=8)
    html = tables.results_table([_record("do_nothing", 1), uneven])._repr_html_()
    assert "<th>N/side</th>" in html and "<td>8/10 (!)</td>" in html
    assert "per side</p>" not in html

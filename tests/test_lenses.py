"""The other lenses: U-LiRA, KS, accuracy gaps and ToW, their intervals, nulls and saturation."""

import itertools
import json

import numpy as np
import pytest

from klom_utils.accuracy_gaps import LOGITS_BASIS, MARGIN_BASIS, accuracy_gaps, model_accuracies
from klom_utils.cli import main
from klom_utils.comparison import LENS_COLUMNS, lens_columns
from klom_utils.evaluate import score_arrays
from klom_utils.ks_stats import ks_pvalue, ks_statistics, model_level_ks
from klom_utils.lens_tables import lens_table
from klom_utils.lenses import METRICS, compute_lenses, klom_cap, parse_metrics
from klom_utils.membership import ulira_accuracy
from klom_utils.metric import VARIANTS


def _ks_brute(u, o):
    grid = np.union1d(u, o)
    fu = np.searchsorted(np.sort(u), grid, side="right") / len(u)
    fo = np.searchsorted(np.sort(o), grid, side="right") / len(o)
    return np.abs(fu - fo).max()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ks_statistics_match_the_definition_with_ties(dtype):
    rng = np.random.default_rng(0)
    u = np.round(rng.normal(0.3, 1, (13, 503)) * 2) / 2  # many ties within and between
    o = np.round(rng.normal(0, 1, (9, 503)) * 2) / 2
    u[:, :5] = np.inf  # infinite margins keep their order
    d = ks_statistics(u.astype(dtype), o.astype(dtype))
    assert d.shape == (503,)
    np.testing.assert_allclose(d, [_ks_brute(u[:, j], o[:, j]) for j in range(503)])
    assert ks_statistics(o, o).max() == 0.0


def test_ks_statistics_bad_input():
    with pytest.raises(ValueError, match="same examples"):
        ks_statistics(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="nan"):
        ks_statistics(np.full((3, 4), np.nan), np.zeros((3, 4)))


def test_ks_exact_pvalue_counts_every_path():
    """The exact p-value equals the share of all label orders with D at least as large."""
    for n, m in [(3, 4), (5, 5), (4, 7)]:
        stats = []
        for pos in itertools.combinations(range(n + m), n):
            lab = np.zeros(n + m, int)
            lab[list(pos)] = 1
            stats.append(np.max(np.abs(np.cumsum(lab) / n - np.cumsum(1 - lab) / m)))
        stats = np.array(stats)
        for d in np.unique(stats):
            assert ks_pvalue(float(d), n, m) == pytest.approx(np.mean(stats >= d - 1e-12))
    assert ks_pvalue(0.0, 10, 10) == 1.0
    big = [ks_pvalue(d, 20_000, 20_000) for d in (0.005, 0.01, 0.02)]  # asymptotic
    assert big[0] > big[1] > big[2] and 0 <= big[2] < 0.01
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        ks_pvalue(1.5, 3, 3)


def test_model_level_ks_tells_shifted_models_apart():
    rng = np.random.default_rng(1)
    o = rng.normal(size=(40, 30))
    same = model_level_ks(rng.normal(size=(40, 30)), o, np.arange(10))
    shifted = model_level_ks(rng.normal(size=(40, 30)) + 1, o, np.arange(10))
    assert same["p_value"] > 0.01 and shifted["p_value"] < 1e-6
    assert shifted["n_unlearned"] == shifted["n_oracles"] == 40


def test_ulira_is_half_when_nothing_differs_and_one_when_separated():
    rng = np.random.default_rng(2)
    nulls = [ulira_accuracy(rng.normal(size=(20, 40)), rng.normal(size=(20, 40)), seed=s).mean()
             for s in range(100)]
    assert abs(np.mean(nulls) - 0.5) < 0.005
    far = ulira_accuracy(rng.normal(size=(10, 5)) + 50, rng.normal(size=(10, 5)))
    np.testing.assert_array_equal(far, 1.0)
    np.testing.assert_array_equal(ulira_accuracy(np.ones((6, 3)), np.ones((6, 3))), 0.5)
    with pytest.raises(ValueError, match="n_models >= 4"):
        ulira_accuracy(np.zeros((3, 4)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="n_repeats"):
        ulira_accuracy(np.zeros((4, 4)), np.zeros((4, 4)), n_repeats=0)


def test_accuracies_count_right_answers_and_tow():
    right = np.array([[1, 0, 1, 1, 0], [0, 0, 1, 0, 1]], dtype=bool)
    acc = model_accuracies(right, np.array([0, 2]), 3)  # forget {0, 2}, retain {1}, validation {3, 4}
    np.testing.assert_allclose(acc, [[1.0, 0.0, 0.5], [0.5, 0.0, 0.5]])
    margins = np.where(right, 1.5, -0.5).astype(np.float32)  # right where positive
    margins[0, 4] = np.nan  # not right
    np.testing.assert_array_equal(model_accuracies(margins, np.array([0, 2]), 3), acc)
    np.testing.assert_array_equal(model_accuracies(margins[:, ::-1][:, ::-1], [0, 2], 3), acc)
    np.testing.assert_array_equal(model_accuracies(margins.astype(np.float16), [0, 2], 3), acc)
    np.testing.assert_array_equal(model_accuracies(margins.astype(">f8"), [0, 2], 3), acc)
    empty = model_accuracies(right, np.array([], int), 3)  # no forget set: nan
    assert np.isnan(empty[:, 0]).all()
    np.testing.assert_allclose(empty[:, 1:], [[2 / 3, 0.5], [1 / 3, 0.5]])
    with pytest.raises(ValueError, match="forget index 3 is out of range"):
        model_accuracies(right, np.array([0, 3]), 3)  # column 3 is a validation column
    for bad in (2, [0.5, 1.0], [True, False, True], [[0, 1]]):
        with pytest.raises(ValueError, match="forget must be a 1-D array of integer indices"):
            model_accuracies(right, bad, 3)
    with pytest.raises(ValueError, match="distinct"):
        model_accuracies(right, [0, 0], 3)
    with pytest.raises(ValueError, match="n_train=5"):
        model_accuracies(right, np.array([0]), 5)  # no validation column
    with pytest.raises(ValueError, match="n_train must be an integer"):
        model_accuracies(right, np.array([0]), 3.0)
    with pytest.raises(ValueError, match="booleans or margins"):
        model_accuracies(right.astype(int), np.array([0]), 3)
    v = accuracy_gaps(np.array([[1.0, 0.9, 0.8]]), np.array([[0.5, 0.9, 0.7]]))
    np.testing.assert_allclose(v[6:9], [0.5, 0.0, 0.1])
    assert v[9] == pytest.approx(0.2) and v[10] == pytest.approx(0.5 * 1.0 * 0.9)


def test_accuracy_lens_uses_the_argmax_where_given_and_says_which():
    """KLOM's margin z[y] - logsumexp(others) can be negative where the argmax is right (two
    close rivals): given right/wrong from logits, the lens counts those, and says so."""
    u, o, forget, n_train = _world(shift=0.0)
    right_u, right_o = np.ones(u.shape, bool), np.ones(o[:30].shape, bool)  # all right
    r = compute_lenses(u, o[:30], forget=forget, n_train=n_train, metrics=("accuracy",),
                       correct=(right_u, right_o), n_splits=10)
    assert r["accuracy"]["basis"] == LOGITS_BASIS
    assert r["accuracy"]["unlearned"]["forget"]["value"] == 1.0  # margins are half negative
    by_margin = compute_lenses(u, o[:30], forget=forget, n_train=n_train, metrics=("accuracy",),
                               n_splits=10)["accuracy"]
    assert by_margin["basis"] == MARGIN_BASIS and by_margin["unlearned"]["forget"]["value"] < 1
    with pytest.raises(ValueError, match="null_correct"):
        compute_lenses(u, o[:30], forget=forget, n_train=n_train, metrics=("accuracy",),
                       correct=(right_u, right_o), null=(o[30:60], o[60:]))
    with pytest.raises(ValueError, match=r"correct\[oracle\] has shape"):
        compute_lenses(u, o[:30], forget=forget, n_train=n_train, metrics=("accuracy",),
                       correct=(right_u, right_u[:5]))


def test_klom_cap_is_the_largest_score_of_each_variant():
    assert klom_cap(100, 100) == pytest.approx(np.log(1e5))
    for variant in VARIANTS:
        for direction in ("unlearned||oracle", "oracle||unlearned"):
            cap = klom_cap(50, 60, variant=variant, direction=direction)
            assert 11.4 < cap < 11.6


def test_parse_metrics():
    assert parse_metrics(None) == ("klom",)
    assert parse_metrics("all") == METRICS
    assert parse_metrics("ks, ulira") == ("klom", "ulira", "ks")
    with pytest.raises(ValueError, match="expected 'all' or names among"):
        parse_metrics("ulira,lira")


def _world(seed=3, n=30, shift=0.0, n_forget=20, n_train=200, n_val=100):
    rng = np.random.default_rng(seed)
    mu = rng.normal(2, 2, n_train + n_val)
    u = mu + rng.normal(size=(n, mu.size))
    u[:, :n_forget] += shift
    o = mu + rng.normal(size=(3 * n, mu.size))
    return u, o, np.arange(n_forget), n_train


def test_lenses_values_intervals_and_nulls():
    u, o, forget, n_train = _world(shift=3.0)
    r = compute_lenses(u, o[:30], forget=forget, n_train=n_train, null=(o[30:60], o[60:]), n_splits=10)
    ul = r["ulira"]["groups"]
    assert ul["forget"]["value"] > 0.9 and abs(ul["retain"]["value"] - 0.5) < 0.1
    assert ul["forget"]["low"] <= ul["forget"]["value"] <= ul["forget"]["high"]
    assert abs(ul["forget"]["null"] - 0.5) < 0.1 and ul["retain"]["count"] == 20
    ks = r["ks"]["groups"]
    assert ks["forget"]["p95"] > 0.8 > ks["retain"]["p95"] and ks["retain"]["count"] == 180
    assert ks["forget"]["null"] < 0.5 and r["ks"]["forget_quality"]["p_value"] < 1e-6
    acc = r["accuracy"]
    assert acc["gap"]["forget"]["value"] > 0 and 0 < acc["tow"]["value"] < 1
    assert acc["tow"]["low"] <= acc["tow"]["value"] <= acc["tow"]["high"] <= 1
    assert r["null_n_per_side"] == [30, 30]
    json.dumps(r, allow_nan=False)
    quick = compute_lenses(u, o[:30], forget=forget, n_train=n_train, intervals=False, metrics=("ks",))
    assert set(quick) >= {"ks"} and "ulira" not in quick
    assert np.isnan(quick["ks"]["groups"]["forget"]["sd"])  # no interval asked for
    assert quick["ks"]["groups"]["forget"]["null"] is None


def test_saturated_lenses_are_flagged():
    u, o, forget, n_train = _world(shift=100.0)
    r = compute_lenses(u, o[:30], forget=forget, n_train=n_train, n_splits=10)
    messages = [w["message"] for w in r["warnings"]]
    assert any("U-LiRA forget 1" in m and "cannot rank" in m for m in messages)
    assert any(m.startswith("saturated") and "KS p95 forget 1" in m for m in messages)


def test_score_arrays_with_all_metrics_and_the_tables():
    u, o, forget, n_train = _world(shift=2.0)
    record = score_arrays(u, o, forget, n_train, metrics="all", n_splits=10)
    assert record["metrics"]["null_n_per_side"] == [30, 30]  # the floor's oracles
    assert record["klom_cap"] == pytest.approx(np.log(1e5))
    assert "metrics" not in score_arrays(u, o, forget, n_train, n_splits=10)
    table = lens_table([record])
    assert "U-LiRA (chance 0.5, cap 1)" in table and "null" in table and "ToW" in table
    row = lens_columns(record["metrics"], "forget")
    assert set(row) == set(LENS_COLUMNS) and row["ulira"] > 0.5 and row["tow"] < 1
    assert set(lens_columns(None, "forget").values()) == {None}
    with pytest.raises(ValueError, match="scored with metrics"):
        lens_table([score_arrays(u, o, forget, n_train, n_splits=10)])


def test_klom_saturation_is_a_diagnostic():
    u, o, forget, n_train = _world(shift=1000.0)
    record = score_arrays(u, o, forget, n_train, n_splits=10)
    kinds = [(w["kind"], w["message"]) for w in record["diagnostics"]["warnings"]]
    assert any(k == "saturated" and "KLOM p95 forget" in m for k, m in kinds)


def test_cli_score_arrays_with_metrics(tmp_path, capsys):
    u, o, forget, n_train = _world(shift=2.0)
    for name, a in (("u", u), ("o", o), ("f", forget)):
        np.save(tmp_path / f"{name}.npy", a)
    args = ["score", "--unlearned", str(tmp_path / "u.npy"), "--oracle", str(tmp_path / "o.npy"),
            "--forget", str(tmp_path / "f.npy"), "--n-train", str(n_train), "--n-splits", "10"]
    assert main([*args, "--metrics", "all", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "Other lenses" in out and "KS forget quality p" in out
    record = json.loads((tmp_path / "r.json").read_text())
    assert {"ulira", "accuracy", "ks"} <= set(record["metrics"])
    assert main([*args, "--metrics", "lira"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "metrics='lira'" in err[0]


def test_published_living17_do_nothing_values_are_flagged_saturated():
    """The supplementary LIVING-17 do-nothing p95s (retain 11.38-11.46, forget 10.81-11.51,
    validation 10.70-10.74) against the cap of that code's KLOM, about 11.5."""
    from klom_utils.lenses import saturation_warnings

    cap = klom_cap(100, 100, variant="bench2025")
    (w,) = saturation_warnings("KLOM p95", {"forget": 11.2, "retain": 11.42,
                                            "validation": 10.72}, cap)
    assert w["kind"] == "saturated" and "retain 11.4" in w["message"]
    assert "forget 11.2" in w["message"] and "validation" not in w["message"]


def test_a_null_at_smaller_n_comes_with_the_value_at_its_n():
    """With fewer than 2N oracles the null is at N0 < N; every entry with a null also holds the
    lens on N0 models per side (a perfect method's values then sit on their nulls' scale)."""
    u, o, forget, n_train = _world(shift=0.0)
    record = score_arrays(u, o[:40], forget, n_train, metrics="all", n_splits=10)
    lens = record["metrics"]
    assert lens["null_n_per_side"] == [20, 20] and lens["at_null_n_per_side"] == 20
    ks = lens["ks"]["groups"]["retain"]
    direct = compute_lenses(u[:20], o[:20], forget=forget, n_train=n_train, metrics=("ks",),
                            intervals=False)["ks"]["groups"]["retain"]["p95"]
    assert ks["at_null_n"] == direct and ks["at_null_n"] > ks["p95"]  # smaller N, larger D
    assert lens["accuracy"]["tow"]["at_null_n"] is not None
    assert "(N=20: " in lens_table([record])
    same_n = score_arrays(u, o, forget, n_train, metrics="all", n_splits=10)["metrics"]
    assert "at_null_n_per_side" not in same_n and "at_null_n" not in same_n["ks"]["groups"]["retain"]


def test_each_lens_draws_from_its_own_generator():
    u, o, forget, n_train = _world(shift=1.0)
    alone = compute_lenses(u, o[:30], forget=forget, n_train=n_train, metrics=("ks",), n_splits=10)
    both = compute_lenses(u, o[:30], forget=forget, n_train=n_train, metrics=("ulira", "ks"),
                          n_splits=10)
    assert alone["ks"] == both["ks"]


def test_score_arrays_names_rows_by_the_ids_given():
    u, o, forget, n_train = _world(shift=1.0)
    ids, oids = list(range(500, 500 + len(u))), list(range(700, 700 + 40))
    record = score_arrays(u, o[:40], forget, n_train, n_splits=10, model_ids=ids, oracle_ids=oids)
    assert record["model_ids"] == ids and record["oracle_ids"] == oids[:len(u)]
    assert set(record["noise_floor"]["oracle_ids"]) <= set(oids)
    assert set(record["matched"]["model_ids"]) <= set(ids)
    with pytest.raises(ValueError, match="oracle_ids must name each of the 40 rows once"):
        score_arrays(u, o[:40], forget, n_train, oracle_ids=[1] * 40)

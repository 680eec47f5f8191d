"""Scoring unlearned models in a store: same numbers as klom, held-out oracles, tables."""

import json

import numpy as np
import pytest
from test_unlearn import FORGET_SET, N_MODELS, digits_data, digits_store  # noqa: F401

from klom_utils import evaluate as E
from klom_utils import metric, oracles, uncertainty
from klom_utils.layout import oracle_folder, unlearned_folder
from klom_utils.unlearning import unlearn_store

BINS = 5  # few bins: with 16 models on each side, 20 bins saturate every score


@pytest.fixture(scope="module")
def scored(digits_store, digits_data):
    for name in ("do_nothing", "oracle_matching"):
        unlearn_store(digits_store, digits_data, FORGET_SET, name, range(N_MODELS),
                      progress=False)
    return {name: E.score(digits_store, digits_data, FORGET_SET, name, n_splits=10, bins=BINS)
            for name in ("do_nothing", "oracle_matching")}


def test_score_matches_klom_called_directly(digits_store, digits_data, scored):
    ids = list(range(N_MODELS))
    folders = [unlearned_folder("DIGITS", "do_nothing", FORGET_SET),
               oracle_folder("DIGITS", FORGET_SET)]
    u, o = (np.concatenate([digits_store.margins(f, "train", model_ids=ids),
                            digits_store.margins(f, "val", model_ids=ids)], axis=1)
            for f in folders)
    forget = digits_store.forget_set("DIGITS", FORGET_SET)
    scores = metric.klom(unlearned=u, oracle=o, bins=BINS)
    expected = metric.summarize(scores, forget=forget, n_train=digits_data.n_train)
    record = scored["do_nothing"]
    for group in ("forget", "retain", "validation"):
        for key in ("p95", "p99", "mean", "std", "count"):
            assert record[group][key] == pytest.approx(expected[group][key], rel=1e-12)
    ci = uncertainty.p95_interval(unlearned=u, oracle=o, forget=forget,
                                  n_train=digits_data.n_train, n_splits=10, seed=0, bins=BINS)
    assert record["forget"]["p95_low"] == pytest.approx(ci["forget"]["low"])
    assert record["validation"]["p95_high"] == pytest.approx(ci["validation"]["high"])
    # 16 oracles: the floor is at 8 per side, and the method is rescored at 8 too
    half = N_MODELS // 2
    floor = metric.summarize(uncertainty.noise_floor(o, n_per_side=half, seed=0, bins=BINS),
                             forget=forget, n_train=digits_data.n_train)
    assert record["noise_floor"]["retain"]["p95"] == pytest.approx(floor["retain"]["p95"])
    assert record["noise_floor"]["n_per_side"] == half
    at = metric.summarize(metric.klom(unlearned=u[:half], oracle=o[:half], bins=BINS),
                          forget=forget, n_train=digits_data.n_train)
    assert record["matched"]["n_per_side"] == half
    assert record["matched"]["forget"]["p95"] == pytest.approx(at["forget"]["p95"])
    np.testing.assert_array_equal(
        E.klom_scores(E.load_margins(digits_store, digits_data, FORGET_SET, "do_nothing"),
                      bins=BINS), scores)


def test_record_layout_is_json_ready(scored):
    record = json.loads(json.dumps(scored["do_nothing"]))
    for group in ("forget", "retain", "validation"):
        assert {"p95", "p99", "mean", "std", "count", "p95_low", "p95_high", "p95_sd"} <= set(
            record[group])
        assert record[group]["p95_low"] <= record[group]["p95"] <= record[group]["p95_high"]
    assert record["forget"]["count"] == 50
    assert record["n_unlearned"] == N_MODELS and record["n_oracles"] == N_MODELS
    assert record["n_per_side"] == N_MODELS
    assert record["interval"]["level"] == 0.95 and "expected" in record["interval"]["covers"]
    kinds = [w["kind"] for w in record["diagnostics"]["warnings"]]
    # 16 models per side, 50 forget examples; doing nothing sits at KLOM's cap on the forget set
    assert kinds == ["small_n", "small_forget", "saturated"]
    assert record["forget"]["p95"] >= 0.95 * record["klom_cap"]
    assert record["forget"]["above_retain_p99"] == record["diagnostics"][
        "forget_above_retain_p99"]
    assert record["klom"]["bins"] == BINS and record["klom"]["variant"] == "canonical"
    acc = record["accuracy"]
    assert acc["forget"] == 1.0 and acc["retain"] > 0.99 and 0.9 < acc["test"] < 1.0


def test_oracle_matching_is_well_below_doing_nothing(scored):
    nothing, om = scored["do_nothing"]["forget"]["p95"], scored["oracle_matching"]["forget"]["p95"]
    assert nothing > 8
    assert om < nothing / 2


def test_held_out_oracles_are_never_scored_against(digits_store, digits_data, scored):
    assert scored["oracle_matching"]["oracle_ids"] == list(range(N_MODELS))
    assert oracles.scoring_oracle_ids(digits_store, "DIGITS", FORGET_SET) == list(range(N_MODELS))
    for method in ("oracle_matching", "do_nothing"):  # held out: never, used or not
        with pytest.raises(ValueError, match=r"oracle ids \[1000\] are held out"):
            E.score(digits_store, digits_data, FORGET_SET, method, oracle_ids=[0, 1, 1000],
                    n_splits=10)
    # oracles listed explicitly as used are left out of the default too
    unlearn_store(digits_store, digits_data, FORGET_SET, "oracle_matching", [0, 1],
                  oracle_ids=[14, 15], name="om_explicit", progress=False)
    assert oracles.scoring_oracle_ids(digits_store, "DIGITS", FORGET_SET, "om_explicit") == list(
        range(N_MODELS - 2))


def test_score_errors(digits_store, digits_data):
    with pytest.raises(FileNotFoundError, match="no models of method 'never_ran'"):
        E.score(digits_store, digits_data, FORGET_SET, "never_ran")
    with pytest.raises(ValueError, match="unknown KLOM setting 'bin'"):
        E.score(digits_store, digits_data, FORGET_SET, "do_nothing", bin=3)


def test_default_scoring_is_at_equal_n_with_a_matched_floor(digits_store, digits_data):
    """8 unlearned models: scored against the 8 lowest oracles, floor from 16 disjoint ones at
    8 per side, nothing rescored."""
    record = E.score(digits_store, digits_data, FORGET_SET, "do_nothing", model_ids=range(8),
                     n_splits=10, bins=BINS)
    assert record["oracle_ids"] == list(range(8)) and record["n_per_side"] == 8
    assert record["noise_floor"]["n_per_side"] == 8
    assert record["noise_floor"]["oracle_ids"] == list(range(16))
    assert "matched" not in record
    # explicit unequal N is scored as asked, and flagged
    uneven = E.score(digits_store, digits_data, FORGET_SET, "do_nothing", model_ids=range(8),
                     oracle_ids=range(16), n_splits=10, bins=BINS)
    assert uneven["n_per_side"] is None
    assert "unequal_n" in [w["kind"] for w in uneven["diagnostics"]["warnings"]]
    # ... and rescored at equal N, with the floor from the given oracles only
    assert uneven["matched"]["n_per_side"] == 8
    assert uneven["matched"]["oracle_ids"] == list(range(8))
    assert uneven["noise_floor"]["oracle_ids"] == list(range(16))
    table = E.results_table([uneven])
    assert "8/16 (!)" in table and "unequal N: 8 unlearned models vs 16 oracles" in table
    # given oracles are the floor's whole pool: 6 given, floor at 3 per side
    few = E.score(digits_store, digits_data, FORGET_SET, "do_nothing", model_ids=range(6),
                  oracle_ids=range(10, 16), n_splits=10, bins=BINS)
    assert few["noise_floor"]["oracle_ids"] == list(range(10, 16))
    assert few["noise_floor"]["n_per_side"] == 3 and few["matched"]["n_per_side"] == 3


def test_records_are_strict_json_and_tables_read_them_back(scored, digits_store, digits_data):
    tiny = E.score(digits_store, digits_data, FORGET_SET, "do_nothing", model_ids=range(3),
                   oracle_ids=[0], n_splits=10, bins=BINS)
    assert np.isnan(tiny["retain"]["p95_low"])  # too few models for an interval
    assert "noise_floor" not in tiny
    assert "no_floor" in [w["kind"] for w in tiny["diagnostics"]["warnings"]]
    text = json.dumps(E.jsonable(tiny), allow_nan=False)
    back = json.loads(text)
    assert back["retain"]["p95_low"] is None
    table = E.results_table([back, json.loads(json.dumps(E.jsonable(scored["do_nothing"])))])
    assert "no noise floor" in table
    with pytest.raises(ValueError, match="level must be"):
        E.score(digits_store, digits_data, FORGET_SET, "do_nothing", level=2.0)
    with pytest.raises(ValueError, match="n_splits must be"):
        E.score(digits_store, digits_data, FORGET_SET, "do_nothing", n_splits=3)


def test_results_table_labels_mixed_settings(scored, digits_store, digits_data):
    reverse = E.score(digits_store, digits_data, FORGET_SET, "do_nothing", n_splits=10,
                      bins=BINS, direction="oracle||unlearned")
    table = E.results_table([scored["do_nothing"], reverse])
    assert "records with different settings" in table.splitlines()[0]
    floors = [line for line in table.splitlines() if "noise floor (KL(" in line]
    assert len(floors) == 2  # one per direction, each labelled
    assert any("do_nothing (KL(oracle || unlearned)" in line for line in table.splitlines())


def test_results_table(scored):
    table = E.results_table(list(scored.values()))
    lines = table.splitlines()
    assert "95th percentile" in lines[0] and "KL(unlearned || oracle)" in lines[0]
    assert lines[2].split()[:2] == ["forget", "set"]
    assert "forget mean" in lines[2]  # the forget set has 50 examples
    assert any("do_nothing" in line and f" {N_MODELS} " in line for line in lines)
    half = N_MODELS // 2
    assert any("noise floor" in line and f" {half} " in line for line in lines)
    assert any("do_nothing (rescored)" in line and f" {half} " in line for line in lines)
    om = scored["oracle_matching"]["forget"]
    assert f"{om['p95']:.2f} [{om['p95_low']:.2f}, {om['p95_high']:.2f}]" in table
    assert "expected 95th percentile at this N per side" in table
    assert sum("small N: 16 unlearned models" in line for line in lines) == 1
    with pytest.raises(ValueError, match="at least one record"):
        E.results_table([])


def test_score_many(digits_store, digits_data, scored):
    records = E.score_many(digits_store, digits_data, [FORGET_SET], ["do_nothing"], n_splits=10,
                           bins=BINS, progress=False)
    assert records[0]["forget"] == scored["do_nothing"]["forget"]


def test_fewer_oracles_than_unlearned_models_scores_at_equal_n(digits_store, digits_data):
    """Oracle matching that used oracles 12..15 leaves 12 to score 16 unlearned models: the 12
    lowest unlearned ids are scored against them, the floor is at 6, and it is said."""
    unlearn_store(digits_store, digits_data, FORGET_SET, "oracle_matching", range(N_MODELS),
                  oracle_ids=[12, 13, 14, 15], name="om_four", progress=False)
    record = E.score(digits_store, digits_data, FORGET_SET, "om_four", n_splits=10, bins=BINS)
    assert record["model_ids"] == list(range(12)) and record["oracle_ids"] == list(range(12))
    assert record["n_per_side"] == 12
    assert record["noise_floor"]["n_per_side"] == 6 and record["matched"]["n_per_side"] == 6
    messages = {w["kind"]: w["message"] for w in record["diagnostics"]["warnings"]}
    assert "scored the 12 lowest ids of the 16 unlearned models" in messages["fewer_oracles"]

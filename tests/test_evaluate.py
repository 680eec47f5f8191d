"""Scoring unlearned models in a store: same numbers as klom, held-out oracles, tables."""

import json

import numpy as np
import pytest

from klom_utils import evaluate as E
from klom_utils import metric
from klom_utils.store import oracle_folder, unlearned_folder
from klom_utils.unlearn import unlearn_store
from test_unlearn import FORGET_SET, N_MODELS, digits_data, digits_store  # noqa: F401

BINS = 5  # few bins: with 16 models on each side, 20 bins saturate every score


@pytest.fixture(scope="module")
def scored(digits_store, digits_data):
    for name in ("do_nothing", "oracle_matching"):
        unlearn_store(digits_store, digits_data, FORGET_SET, name, range(N_MODELS),
                      progress=False)
    return {name: E.score(digits_store, digits_data, FORGET_SET, name, n_boot=20, bins=BINS)
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
    boot = metric.bootstrap_p95(unlearned=u, oracle=o, forget=forget, n_train=digits_data.n_train,
                                n_boot=20, seed=0, bins=BINS)
    assert record["forget"]["p95_low"] == pytest.approx(boot["forget"]["low"])
    assert record["validation"]["p95_high"] == pytest.approx(boot["validation"]["high"])
    floor = metric.summarize(metric.noise_floor(o, seed=0, bins=BINS), forget=forget,
                             n_train=digits_data.n_train)
    assert record["noise_floor"]["retain"]["p95"] == pytest.approx(floor["retain"]["p95"])
    assert record["noise_floor"]["n_per_side"] == N_MODELS // 2
    np.testing.assert_array_equal(
        E.klom_scores(E.load_margins(digits_store, digits_data, FORGET_SET, "do_nothing"),
                      bins=BINS), scores)


def test_record_layout_is_json_ready(scored):
    record = json.loads(json.dumps(scored["do_nothing"]))
    for group in ("forget", "retain", "validation"):
        assert {"p95", "p99", "mean", "std", "count", "p95_low", "p95_high"} <= set(record[group])
    assert record["forget"]["count"] == 50
    assert record["n_unlearned"] == N_MODELS and record["n_oracles"] == N_MODELS
    assert record["klom"]["bins"] == BINS and record["klom"]["variant"] == "canonical"
    acc = record["accuracy"]
    assert acc["forget"] == 1.0 and acc["retain"] > 0.99 and 0.9 < acc["test"] < 1.0


def test_oracle_matching_is_well_below_doing_nothing(scored):
    nothing, om = scored["do_nothing"]["forget"]["p95"], scored["oracle_matching"]["forget"]["p95"]
    assert nothing > 8
    assert om < nothing / 2


def test_held_out_oracles_are_never_scored_against(digits_store, digits_data, scored):
    assert scored["oracle_matching"]["oracle_ids"] == list(range(N_MODELS))
    assert E.scoring_oracle_ids(digits_store, "DIGITS", FORGET_SET) == list(range(N_MODELS))
    with pytest.raises(ValueError, match=r"oracles \[1000\] were used by 'oracle_matching'"):
        E.score(digits_store, digits_data, FORGET_SET, "oracle_matching",
                oracle_ids=[0, 1, 1000], n_boot=2)
    # oracles listed explicitly as used are left out of the default too
    unlearn_store(digits_store, digits_data, FORGET_SET, "oracle_matching", [0, 1],
                  oracle_ids=[14, 15], name="om_explicit", progress=False)
    assert E.scoring_oracle_ids(digits_store, "DIGITS", FORGET_SET, "om_explicit") == list(
        range(N_MODELS - 2))


def test_score_errors(digits_store, digits_data):
    with pytest.raises(FileNotFoundError, match="no models of method 'never_ran'"):
        E.score(digits_store, digits_data, FORGET_SET, "never_ran")
    with pytest.raises(ValueError, match="unknown KLOM setting 'bin'"):
        E.score(digits_store, digits_data, FORGET_SET, "do_nothing", bin=3)


def test_results_table(scored):
    table = E.results_table(list(scored.values()))
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["forget", "set"]
    assert any("do_nothing" in line and f"{N_MODELS}/{N_MODELS}" in line for line in lines)
    assert any(line.split()[2] == "noise" for line in lines[2:])
    om = scored["oracle_matching"]["forget"]
    assert f"{om['p95']:.2f} [{om['p95_low']:.2f}, {om['p95_high']:.2f}]" in table
    with pytest.raises(ValueError, match="at least one record"):
        E.results_table([])


def test_score_many(digits_store, digits_data, scored):
    records = E.score_many(digits_store, digits_data, [FORGET_SET], ["do_nothing"], n_boot=20,
                           bins=BINS, progress=False)
    assert records[0]["forget"] == scored["do_nothing"]["forget"]

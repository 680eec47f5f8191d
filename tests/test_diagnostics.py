"""Diagnostics: outlier models, small and unequal N, small forget sets."""

import numpy as np
import pytest

from klom_utils.diagnostics import diagnose, model_distances, outlier_models
from klom_utils.metric import klom, summarize
from klom_utils.uncertainty import noise_floor


def _margins(n_models=100, n_examples=2000, seed=0, shared=0.0):
    rng = np.random.default_rng(seed)
    mu = rng.normal(2, 2, n_examples)
    e = np.sqrt(shared) * rng.normal(size=(n_models, 1)) + np.sqrt(1 - shared) * rng.normal(
        size=(n_models, n_examples))
    return (mu + e).astype(np.float32)


def test_ordinary_models_are_not_outliers():
    for shared in (0.0, 0.3):  # a shared per-model effect is not an outlier
        d = model_distances(_margins(shared=shared))
        assert d.max() < 2.5
    assert outlier_models(_margins()) == []


def test_one_diverged_model_is_named_and_explains_a_collapsed_klom():
    oracle = _margins(seed=1)
    clean = noise_floor(oracle, seed=0)
    broken = oracle.copy()
    broken[17] = 40 * broken[17]  # diverged: margins far outside the rest
    found = outlier_models(broken, model_ids=range(100, 200))
    assert [f["id"] for f in found] == [117] and found[0]["distance"] > 10
    # the effect that makes it matter: the noise floor collapses
    assert np.percentile(noise_floor(broken, seed=0), 95) < 0.5 * np.percentile(clean, 95)


def test_diagnose_reports_each_problem_once():
    u, o = _margins(n_models=30, seed=2), _margins(n_models=40, seed=3)
    u[4] -= 50
    n_train = 1500
    forget = np.arange(10)
    u[:, forget] += 3
    scores = klom(unlearned=u, oracle=o)
    d = diagnose(unlearned=u, oracle=o, scores=scores, forget=forget, n_train=n_train,
                 unlearned_ids=range(30), oracle_ids=range(40))
    kinds = [w["kind"] for w in d["warnings"]]
    assert kinds == ["outlier", "small_n", "unequal_n", "small_forget"]
    assert d["outliers"]["unlearned"][0]["id"] == 4 and d["outliers"]["oracle"] == []
    assert d["n_unlearned"] == 30 and d["n_oracles"] == 40
    summary = summarize(scores, forget=forget, n_train=n_train)
    assert d["forget_mean"] == pytest.approx(summary["forget"]["mean"])
    retain_p99 = summary["retain"]["p99"]
    assert d["forget_above_retain_p99"] == int((scores[forget] > retain_p99).sum())
    message = d["warnings"][3]["message"]
    assert "forget set of 10 examples" in message and "2 largest scores" in message
    assert all("\n" not in w["message"] for w in d["warnings"])


def test_diagnose_is_quiet_on_a_clean_comparison():
    u, o = _margins(seed=4), _margins(seed=5)
    d = diagnose(unlearned=u, oracle=o, scores=klom(unlearned=u, oracle=o),
                 forget=np.arange(200), n_train=1500)
    assert d["warnings"] == []


def test_model_distance_errors_and_degenerate_input():
    with pytest.raises(ValueError, match="n_models >= 3"):
        model_distances(np.zeros((2, 5)))
    assert np.isnan(model_distances(np.zeros((5, 4)))).all()  # every model identical
    assert outlier_models(np.zeros((2, 4))) == []
    with pytest.raises(ValueError, match="3 model ids for 5 rows"):
        outlier_models(np.zeros((5, 4)), model_ids=[1, 2, 3])


def test_nan_scores_are_counted():
    u, o = _margins(seed=6), _margins(seed=7)
    scores = klom(unlearned=u, oracle=o)
    scores[[3, 1600]] = np.nan
    d = diagnose(unlearned=u, oracle=o, scores=scores, forget=np.arange(200), n_train=1500)
    assert d["nan_scores"] == 2
    assert [w["kind"] for w in d["warnings"]] == ["nan_scores"]

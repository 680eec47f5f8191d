"""Intervals for the 95th percentiles and the noise floor at a matched N."""

import numpy as np
import pytest

from klom_utils.metric import klom, summarize
from klom_utils.uncertainty import _p95_and_noise, noise_floor, p95_interval


def _toy_run(n_models=40, n_train=300, n_val=100, seed=0, shared=0.0):
    """Margins of unlearned models and oracles: the same law except a shifted forget set."""
    rng = np.random.default_rng(seed)
    n = n_train + n_val
    mu = rng.normal(2, 1, n)

    def draw():
        e = rng.normal(size=(n_models, n))
        e = np.sqrt(shared) * rng.normal(size=(n_models, 1)) + np.sqrt(1 - shared) * e
        return (mu + e).astype(np.float32)

    unlearned, oracle = draw(), draw()
    forget = rng.choice(n_train, 30, replace=False)
    unlearned[:, forget] += 3  # badly unlearned forget set
    return unlearned, oracle, forget, n_train


def test_p95_interval_layout_determinism_and_point_estimate():
    u, o, forget, n_train = _toy_run()
    kwargs = dict(unlearned=u, oracle=o, forget=forget, n_train=n_train, n_splits=10)
    a = p95_interval(seed=1, **kwargs)
    assert a == p95_interval(seed=1, **kwargs)
    assert a != p95_interval(seed=2, **kwargs)
    point = summarize(klom(unlearned=u, oracle=o), forget=forget, n_train=n_train)
    assert list(a) == ["forget", "retain", "validation"]
    for g, v in a.items():
        assert set(v) == {"p95", "low", "high", "sd"}
        assert all(isinstance(x, float) for x in v.values())
        assert v["p95"] == point[g]["p95"]
        assert 0 <= v["low"] <= v["p95"] <= v["high"]  # always holds its point estimate
        assert v["sd"] > 0
    assert a["forget"]["low"] > a["retain"]["high"]
    wider = p95_interval(seed=1, level=0.99, **kwargs)
    assert wider["retain"]["high"] - wider["retain"]["low"] > a["retain"]["high"] - a["retain"]["low"]


def test_p95_interval_groups_and_klom_settings():
    u, o, forget, n_train = _toy_run()
    only_val = p95_interval(unlearned=u[:, n_train:], oracle=o[:, n_train:], forget=forget,
                            n_train=n_train, groups=("validation",), n_splits=10, seed=1)
    full = p95_interval(unlearned=u, oracle=o, forget=forget, n_train=n_train, n_splits=10,
                        seed=1)
    assert list(only_val) == ["validation"]
    assert only_val["validation"]["p95"] == full["validation"]["p95"]
    swapped = p95_interval(unlearned=u, oracle=o, forget=forget, n_train=n_train, n_splits=10,
                           direction="oracle||unlearned", bins=10)
    expected = summarize(klom(unlearned=u, oracle=o, direction="oracle||unlearned", bins=10),
                         forget=forget, n_train=n_train)
    assert swapped["forget"]["p95"] == expected["forget"]["p95"]


def test_p95_interval_covers_the_expected_p95_in_a_small_simulation():
    """Coverage of E[p95 at N] over independent draws, with a shared per-model effect (the
    full measurement is scripts/bench_intervals.py)."""
    rng = np.random.default_rng(5)
    n_train, n_val, n_f, n_models = 300, 100, 30, 40
    n = n_train + n_val
    mu, forget = rng.normal(2, 1, n), rng.choice(n_train, n_f, replace=False)

    def draw(shift):
        e = np.sqrt(0.3) * rng.normal(size=(n_models, 1)) + np.sqrt(0.7) * rng.normal(
            size=(n_models, n))
        x = mu + e
        x[:, forget] += shift
        return x.astype(np.float32)

    draws = [(draw(1.0), draw(0.0)) for _ in range(60)]
    p95s = np.array([[summarize(klom(unlearned=u, oracle=o), forget=forget,
                                n_train=n_train)[g]["p95"] for g in ("forget", "retain")]
                     for u, o in draws])
    truth = p95s.mean(0)
    covered = []
    for u, o in draws[:30]:
        ci = p95_interval(unlearned=u, oracle=o, forget=forget, n_train=n_train, n_splits=10,
                          groups=None)
        covered.append([ci[g]["low"] <= t <= ci[g]["high"]
                        for g, t in zip(("forget", "retain"), truth)])
    assert np.mean(covered, axis=0).min() >= 0.8


def test_odd_numbers_of_models_get_the_half_sampling_factor():
    """Halves of floor(n/2) models: the spread is scaled so that odd n is not overstated."""
    u, o, forget, n_train = _toy_run(n_models=41)
    even = p95_interval(unlearned=u[:40], oracle=o[:40], forget=forget, n_train=n_train,
                        n_splits=40)
    odd = p95_interval(unlearned=u, oracle=o, forget=forget, n_train=n_train, n_splits=40)
    for g in ("retain", "validation"):
        assert odd[g]["sd"] == pytest.approx(even[g]["sd"], rel=0.35)


def testt_quantile():
    from klom_utils.uncertainty import t_quantile

    for df, exact in ((9, 2.262157), (24, 2.063899), (99, 1.984217)):  # t tables, 0.975
        assert t_quantile(0.975, df) == pytest.approx(exact, rel=2e-3)


def test_p95_and_resampled_variance_are_exact_in_law():
    rng = np.random.default_rng(0)
    for n in (1, 3, 20, 400, 5000):
        x = rng.gamma(2.0, size=n)
        assert _p95_and_noise(x, rng)[0] == pytest.approx(np.percentile(x, 95), rel=1e-14)
        if n > 400:
            continue
        brute = np.var([np.percentile(x[rng.integers(0, n, n)], 95) for _ in range(4000)])
        ours = np.mean([_p95_and_noise(x, rng)[1] for _ in range(40)])
        assert ours == pytest.approx(brute, rel=0.1, abs=1e-12)
    assert np.isnan(_p95_and_noise(np.array([]), rng)[1])


def test_order_window_of_large_vectors():
    from klom_utils.uncertainty import _order_window

    rng = np.random.default_rng(3)
    for x in (rng.normal(size=50_000), np.round(rng.gamma(1.0, size=20_000), 1),
              np.sort(rng.normal(size=30_000))[::-1].copy(), np.zeros(40_000)):
        for k0, k1 in ((100, 900), (len(x) - 600, len(x) - 1), (0, 50)):
            np.testing.assert_array_equal(_order_window(x, k0, k1), np.sort(x)[k0:k1 + 1])


def test_p95_interval_errors():
    u, o, forget, n_train = _toy_run()
    kwargs = dict(unlearned=u, oracle=o, forget=forget, n_train=n_train)
    with pytest.raises(ValueError, match=r"level must be a number in \(0, 1\), got 1.5"):
        p95_interval(level=1.5, **kwargs)
    with pytest.raises(ValueError, match="n_splits must be an integer >= 10, got 9"):
        p95_interval(n_splits=9, **kwargs)
    with pytest.raises(ValueError, match=r"unlearned must have shape .* n_models >= 4"):
        p95_interval(**{**kwargs, "unlearned": u[:3]})
    with pytest.raises(ValueError, match="variant="):
        p95_interval(variant="nope", **kwargs)


def test_noise_floor_at_a_chosen_n():
    rng = np.random.default_rng(0)
    oracle = rng.normal(0, 1, (201, 3000))  # odd: 100 vs 100, one left out
    floor = noise_floor(oracle, seed=0)
    assert floor.shape == (3000,) and floor.dtype == np.float64
    np.testing.assert_array_equal(floor, noise_floor(oracle, seed=0))
    assert floor.mean() == pytest.approx(0.35, abs=0.03)
    assert np.percentile(floor, 95) == pytest.approx(0.68, abs=0.08)
    at_50 = noise_floor(oracle, n_per_side=50, seed=0)
    assert np.percentile(at_50, 95) == pytest.approx(1.7, abs=0.2)  # same law, smaller N
    assert noise_floor(oracle[:40], bins=10).mean() < noise_floor(oracle[:40]).mean()
    with pytest.raises(ValueError, match="n_models >= 2"):
        noise_floor(oracle[:1])
    with pytest.raises(ValueError, match=r"n_per_side must be an integer in \[1, 100\] for 201 "
                                         r"oracles .*got 101"):
        noise_floor(oracle, n_per_side=101)


def test_half_scores_count_halves_on_the_full_samples_bins():
    """The fast path scores each half on its example's bins over all models (np.histogram on
    the joint range of every model, clipped); other settings score halves with klom."""
    from klom_utils.uncertainty import _half_scores

    rng = np.random.default_rng(4)
    u, o = rng.normal(0, 1, (9, 60)), rng.normal(0.3, 1.5, (7, 60)).astype(np.float32)
    u[:, :5] = np.round(u[:, :5] * 2) / 2  # ties on edges
    u[:, 5], o[:, 5] = 2.0, 2.0  # every value equal: 0
    o[:, 6] = 300.0  # beyond the clip range
    halves_u, halves_o = np.array([[0, 2, 5, 7], [1, 3, 4, 8]]), np.array([[1, 2, 6], [0, 4, 5]])
    got = _half_scores(u, o, halves_u, halves_o, {"bins": 12})
    assert got.shape == (2, 60)
    cu, co = np.clip(u, -100, 100), np.clip(o.astype(np.float64), -100, 100)
    lo, hi = np.minimum(cu.min(0), co.min(0)), np.maximum(cu.max(0), co.max(0))
    for s in range(2):
        for e in range(60):
            if lo[e] == hi[e]:
                assert got[s, e] == 0
                continue
            p = np.histogram(cu[halves_u[s], e], 12, (lo[e], hi[e]))[0] / 4
            q = np.histogram(co[halves_o[s], e], 12, (lo[e], hi[e]))[0] / 3
            m = p > 0
            assert got[s, e] == pytest.approx(np.sum(p[m] * np.log(p[m] / np.maximum(q[m], 1e-5))),
                                              rel=1e-5, abs=1e-6)
    slow = _half_scores(u, o, halves_u, halves_o, {"variant": "easydub"})
    np.testing.assert_array_equal(slow[1], klom(unlearned=u[halves_u[1]], oracle=o[halves_o[1]],
                                                variant="easydub"))


def test_half_scores_with_halves_over_255_models():
    from klom_utils.uncertainty import _half_scores

    rng = np.random.default_rng(6)
    u, o = rng.normal(0, 1, (520, 8)), rng.normal(0, 1, (520, 8))
    halves = np.array([np.sort(rng.permutation(520)[:260])])
    got = _half_scores(u, o, halves, halves, {})[0]
    lo, hi = np.minimum(u.min(0), o.min(0)), np.maximum(u.max(0), o.max(0))
    for e in range(8):
        p = np.histogram(u[halves[0], e], 20, (lo[e], hi[e]))[0] / 260
        q = np.histogram(o[halves[0], e], 20, (lo[e], hi[e]))[0] / 260
        m = p > 0
        assert got[e] == pytest.approx(np.sum(p[m] * np.log(p[m] / np.maximum(q[m], 1e-5))),
                                       rel=1e-5)

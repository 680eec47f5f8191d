"""Tests of klom_utils.metric: reference vectors, plain loops, margins, summaries."""

from pathlib import Path

import numpy as np
import pytest
import torch

from klom_utils import metric
from klom_utils.metric import headline, klom, margins, summarize

# The reference loops below bin float32 margins with float32 edges the way NumPy 2 does (NEP 50);
# on NumPy 1 the loops themselves change, while the package reproduces the NumPy 2 behaviour on
# either (checked against the stored reference vectors in test_reference_vectors).
NEEDS_NUMPY2 = pytest.mark.skipif(np.lib.NumpyVersion(np.__version__) < "2.0.0",
                                  reason="reference loops written for NumPy 2's float32 rules")

VECTORS = Path(__file__).parent / "data" / "klom_vectors.npz"


# --------------------------------------------------------------------------------------------
# plain per-example implementations, written as directly as possible


def klom_loop(unlearned, oracle, bins=20, eps=1e-5, clip=(-100.0, 100.0)):
    """The canonical estimator, one example at a time with np.clip and np.histogram."""
    out = np.empty(unlearned.shape[1])
    for e in range(unlearned.shape[1]):
        u = np.clip(np.asarray(unlearned[:, e], np.float64), *clip)
        o = np.clip(np.asarray(oracle[:, e], np.float64), *clip)
        lo, hi = min(u.min(), o.min()), max(u.max(), o.max())
        if lo == hi:
            out[e] = 0.0
            continue
        p = np.histogram(u, bins=bins, range=(lo, hi))[0] / len(u)
        q = np.histogram(o, bins=bins, range=(lo, hi))[0] / len(o)
        m = p > 0
        out[e] = np.sum(p[m] * np.log(p[m] / np.maximum(q[m], eps)))
    return out


def _entropy(p, q):
    """scipy.stats.entropy(p, q) for 1-D p, q without scipy."""
    with np.errstate(invalid="ignore", divide="ignore"):
        p, q = p / p.sum(), q / q.sum()
        return np.sum(np.where(p > 0, p * np.log(p / q), np.where(np.isnan(p), np.nan, 0.0)))


def _normalise(counts):
    return counts / counts.sum() if counts.sum() > 0 else np.zeros(len(counts))


# Each reference is reproduced as its code runs in its own pinned environment. The plain loops
# below run under this NumPy (2.x, NEP 50), so they spell out NumPy 1.x where it differs.
# Float32 semantics apply when both samples are float32; anything else is cast to float64.


def _both_float32(p_arr, q_arr):
    return np.asarray(p_arr).dtype == np.asarray(q_arr).dtype == np.float32


def ref_2024(p_arr, q_arr, bins=20, eps=1e-5, clip=(-100.0, 100.0)):
    """Attribute-to-Delete (NumPy 1.26): only p clipped, linspace(min, max, bins) edges,
    digitize indices 0..bins-1, each count vector divided by its sum unguarded (nan when
    nothing of p or of q is counted, nan survives the eps floor).

    NumPy 1.x value-based casting: float32 p is clipped in float32 at the bounds rounded to
    float32 (when both fit float32's range), and np.linspace turns the float32 min and max
    into float64 edges."""
    p_arr, q_arr = np.asarray(p_arr), np.asarray(q_arr)
    with np.errstate(over="ignore"):
        bounds32 = np.float32(clip[0]), np.float32(clip[1])
    if _both_float32(p_arr, q_arr) and np.isfinite(bounds32).all():
        p_arr = np.clip(p_arr, *bounds32)
    else:
        p_arr, q_arr = np.clip(p_arr.astype(np.float64), *clip), q_arr.astype(np.float64)
    lo, hi = float(min(p_arr.min(), q_arr.min())), float(max(p_arr.max(), q_arr.max()))
    edges = np.linspace(lo, hi, bins)
    assert edges.dtype == np.float64
    pc = np.array([np.sum(np.digitize(p_arr, edges) == i) for i in range(bins)])
    qc = np.array([np.sum(np.digitize(q_arr, edges) == i) for i in range(bins)])
    with np.errstate(invalid="ignore"):
        p, q = pc / pc.sum(), qc / qc.sum()
    return _entropy(p, np.maximum(q, eps))


def ref_2025(p_arr, q_arr, bins=20, eps=1e-5, clip=(-100.0, 100.0), renormalise=True):
    """data-unlearning-bench (renormalise=True) and EasyDUB (renormalise=False), NumPy 2.

    NEP 50: float32 margins stay float32 throughout (clip at the bounds rounded to float32,
    float32 min and max, the widened max ``min + 1`` and np.linspace's edges all float32)."""
    p_arr, q_arr = np.asarray(p_arr), np.asarray(q_arr)
    if not _both_float32(p_arr, q_arr):
        p_arr, q_arr = p_arr.astype(np.float64), q_arr.astype(np.float64)
    with np.errstate(over="ignore"):
        p_arr, q_arr = np.clip(p_arr, *clip), np.clip(q_arr, *clip)
    lo, hi = min(p_arr.min(), q_arr.min()), max(p_arr.max(), q_arr.max())
    if lo >= hi:
        hi = lo + 1
    edges = np.linspace(lo, hi, bins + 1)
    assert edges.dtype == p_arr.dtype
    p = _normalise(np.array([np.sum(np.digitize(p_arr, edges) == i) for i in range(1, bins + 1)]))
    q = _normalise(np.array([np.sum(np.digitize(q_arr, edges) == i) for i in range(1, bins + 1)]))
    q = np.where(p > 0, np.maximum(q, eps), q)
    if renormalise:
        return _entropy(p, q)
    m = p > 0
    return np.sum(p[m] * np.log(p[m] / q[m]))


REFERENCES = {
    "paper2024": ref_2024,
    "bench2025": ref_2025,
    "easydub": lambda p, q, **kw: ref_2025(p, q, renormalise=False, **kw),
}


def ref_loop(variant, unlearned, oracle, direction="unlearned||oracle", **kw):
    p, q = (unlearned, oracle) if direction == "unlearned||oracle" else (oracle, unlearned)
    return np.array([REFERENCES[variant](p[:, e], q[:, e], **kw) for e in range(p.shape[1])])


def assert_same(ours, ref, tol=1e-12):
    assert ours.shape == ref.shape and ours.dtype == np.float64
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    finite = ~np.isnan(ref)
    np.testing.assert_allclose(ours[finite], ref[finite], rtol=0, atol=tol)


def hard_margins(n_u, n_o, n_ex, seed):
    """Margins full of traps: ties, values on edges, point masses, ±inf, beyond the clip."""
    rng = np.random.default_rng(seed)
    u = rng.normal(1, 2, (n_u, n_ex)) + rng.normal(0, 1, n_ex) * (rng.random(n_ex) < 0.5)
    o = rng.normal(1, 2, (n_o, n_ex))
    kind = np.arange(n_ex) % 10
    for a in (u, o):
        a[:, kind == 1] = np.round(a[:, kind == 1])  # ties
        a[:, kind == 2] = np.round(a[:, kind == 2] * 20) / 20  # on decimal edges
        a[:, kind == 8] = 1 + np.round(a[:, kind == 8]) * 1e-12  # tiny range
    u[:, kind == 3] = 0.7  # point mass
    o[:, kind == 4] = -2.5
    u[:, kind == 5] = 250.0  # beyond the clip range: all clipped to 100
    u[0, kind == 6], o[-1, kind == 6] = np.inf, -np.inf
    u[:, kind == 7], o[:, kind == 7] = 3.0, 3.0  # all equal
    o[:, kind == 9] = np.round(o[:, kind == 9], 1) * 1e3  # wide range, partly clipped
    return u, o


# --------------------------------------------------------------------------------------------
# reference vectors


CASES = [
    ("paper2024", "paper2024", "unlearned||oracle"),
    ("bench2025", "bench2025_u_o", "unlearned||oracle"),
    ("bench2025", "bench2025_o_u", "oracle||unlearned"),
    ("easydub", "easydub", "unlearned||oracle"),
]


@pytest.mark.parametrize("n", [10, 100])
@pytest.mark.parametrize("variant,key,direction", CASES)
def test_reference_vectors(n, variant, key, direction):
    """The vectors were computed in float64 from the float32 margins (klom.md): the float64
    path, so the margins are passed as float64."""
    data = np.load(VECTORS)
    ref = data[f"{key}_N{n}"]
    u, o = (data[f"{k}_N{n}"].astype(np.float64) for k in ("unlearned", "oracle"))
    ours = klom(unlearned=u, oracle=o, variant=variant, direction=direction)
    assert_same(ours, ref, tol=1e-9)
    # and our plain re-implementations of the references agree with the vectors too
    assert_same(ref_loop(variant, u, o, direction), ref, tol=1e-9)
    # as float32 (NumPy 2 float32 edges for bench2025 and easydub) they happen to give the same
    # scores: no margin of these vectors lies between a float32 edge and its float64 value
    u32, o32 = data[f"unlearned_N{n}"], data[f"oracle_N{n}"]
    assert u32.dtype == o32.dtype == np.float32
    assert_same(klom(unlearned=u32, oracle=o32, variant=variant, direction=direction), ref,
                tol=1e-9)


@pytest.mark.parametrize("n", [10, 100])
def test_reference_vectors_canonical_is_sane(n):
    data = np.load(VECTORS)
    u, o = data[f"unlearned_N{n}"], data[f"oracle_N{n}"]
    ours = klom(unlearned=u, oracle=o)
    assert_same(ours, klom_loop(u, o))
    assert np.all((ours >= 0) & (ours <= np.log(1e5) + 1e-12))
    assert np.all(ours[data[f"kind_N{n}"] == 6] == 0)  # both samples one identical constant


# --------------------------------------------------------------------------------------------
# against the plain loops on hard random data


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_u,n_o", [(7, 13), (100, 100), (1, 2), (1100, 1000)])
def test_canonical_matches_loop(dtype, n_u, n_o):
    u, o = hard_margins(n_u, n_o, 600, seed=n_u)
    u, o = u.astype(dtype), o.astype(dtype)
    ours = klom(unlearned=u, oracle=o)
    assert_same(ours, klom_loop(u, o))
    assert not np.isnan(ours).any()
    swapped = klom(unlearned=u, oracle=o, direction="oracle||unlearned")
    assert_same(swapped, klom_loop(o, u))


@pytest.mark.parametrize("bins,eps,clip", [(1, 1e-5, (-100, 100)), (7, 1e-3, (-0.7, 0.9)),
                                           (50, 1e-8, (-3.3, 1e6))])
def test_canonical_options_match_loop(bins, eps, clip):
    u, o = hard_margins(9, 11, 400, seed=bins)
    for dtype in (np.float32, np.float64):
        ours = klom(unlearned=u.astype(dtype), oracle=o.astype(dtype), bins=bins, eps=eps,
                    clip=clip)
        assert_same(ours, klom_loop(u.astype(dtype), o.astype(dtype), bins, eps, clip))


@NEEDS_NUMPY2
@pytest.mark.parametrize("dtypes", [(np.float32, np.float64), (np.float32, np.float32),
                                    (np.float64, np.float64)])
@pytest.mark.parametrize("variant", ["paper2024", "bench2025", "easydub"])
@pytest.mark.parametrize("direction", metric.DIRECTIONS)
def test_reference_variants_match_loops(variant, direction, dtypes):
    """Mixed, float32 and float64 input, each against the reference as it runs in its env."""
    u, o = hard_margins(7, 13, 400, seed=3)
    u, o = u.astype(dtypes[0]), o.astype(dtypes[1])
    ours = klom(unlearned=u, oracle=o, variant=variant, direction=direction)
    with np.errstate(all="ignore"):
        ref = ref_loop(variant, u, o, direction)
    unusable = ~np.isfinite(o).all(0) if variant == "paper2024" else False
    np.testing.assert_array_equal(np.isnan(ours[unusable]), True)  # ±inf in unclipped q
    assert_same(np.where(unusable, np.nan, ours), np.where(unusable, np.nan, ref))

@NEEDS_NUMPY2
def test_canonical_extreme_scales_match_loop():
    """Tiny ranges (a few ulps), subnormal-sized and huge values: the exact path takes over."""
    rng = np.random.default_rng(8)
    u, o = rng.normal(0, 1, (20, 300)), rng.normal(0, 1, (20, 300))
    for a in (u, o):
        a[:, :50] = 1 + np.round(a[:, :50] * 3) * 2.0**-46  # some hundred ulps apart
        a[:, 50:100] *= 1e-41  # below float32's normal range
        a[:, 100:150] = 1e-300 * np.round(a[:, 100:150])
        a[:, 150:200] *= 1e30
    assert_same(klom(unlearned=u, oracle=o, clip=(-1e35, 1e35)),
                klom_loop(u, o, clip=(-1e35, 1e35)))
    for variant in ("bench2025", "paper2024"):
        assert_same(klom(unlearned=u, oracle=o, variant=variant), ref_loop(variant, u, o))
    # a range of a few ulps: numpy.histogram refuses ("too many bins"), the edges collide;
    # the estimator still bins by the same rule and gives a finite score
    u, o = (1 + np.round(rng.normal(0, 2, (20, 50))) * 2.0**-52 for _ in range(2))
    with pytest.raises(ValueError, match="Too many bins"):
        klom_loop(u, o)
    scores = klom(unlearned=u, oracle=o)
    assert np.all(np.isfinite(scores) & (scores >= 0))
    # subnormal ranges: np.linspace's step underflows to 0 and it scales k / div instead
    u[:, :10], o[:, :10] = (np.round(rng.random((20, 10)) * 3) * 5e-324 for _ in range(2))
    for variant in ("bench2025", "easydub", "paper2024"):
        assert_same(klom(unlearned=u, oracle=o, variant=variant), ref_loop(variant, u, o))


def test_paper2024_only_clips_p_and_handles_huge_q():
    rng = np.random.default_rng(5)
    u, o = rng.normal(0, 1, (10, 50)), rng.normal(0, 1, (10, 50))
    o[0, :10] = 1e3  # beyond the clip: widens the range in 2024 only
    o[0, 10:20] = 1e300  # beyond float32: still exact
    ours = klom(unlearned=u, oracle=o, variant="paper2024")
    assert_same(ours, ref_loop("paper2024", u, o))

@NEEDS_NUMPY2
def test_paper2024_nan_when_nothing_of_q_is_counted():
    """Every q value at the joint maximum (dropped past the last edge): the 2024 code divides a
    zero count vector by its zero sum, nan, in either direction; the 2025 code guards it."""
    rng = np.random.default_rng(11)
    spread = rng.normal(0, 1, (50, 40))
    top = np.full((60, 40), 4.0)  # above every spread value: every one at the joint maximum
    top[:, :10] = 150.0  # beyond the clip range (2024 does not clip q)
    for dtype in (np.float32, np.float64):
        s_, t_ = spread.astype(dtype), top.astype(dtype)
        for direction, (u, o) in [("unlearned||oracle", (s_, t_)), ("oracle||unlearned", (t_, s_))]:
            ours = klom(unlearned=u, oracle=o, variant="paper2024", direction=direction)
            assert np.isnan(ours).all()
            with np.errstate(invalid="ignore"):
                assert_same(ours, ref_loop("paper2024", u, o, direction))
            for variant in ("bench2025", "easydub"):  # q floored at eps where p > 0: a number
                ours = klom(unlearned=u, oracle=o, variant=variant, direction=direction)
                assert np.isfinite(ours).all()
                assert_same(ours, ref_loop(variant, u, o, direction))

@NEEDS_NUMPY2
def test_nothing_of_p_counted():
    """Every p value at the joint maximum: nan in the 2024 and 2025 code (0 / 0), 0 in EasyDUB
    (it keeps only bins where p > 0)."""
    rng = np.random.default_rng(12)
    spread, top = rng.normal(0, 1, (50, 40)), np.full((60, 40), 4.0)
    expected = {"paper2024": np.nan, "bench2025": np.nan, "easydub": 0.0}
    for dtype in (np.float32, np.float64):
        s_, t_ = spread.astype(dtype), top.astype(dtype)
        for direction, (u, o) in [("unlearned||oracle", (t_, s_)), ("oracle||unlearned", (s_, t_))]:
            for variant, value in expected.items():
                ours = klom(unlearned=u, oracle=o, variant=variant, direction=direction)
                np.testing.assert_array_equal(ours, np.full(40, value))
                with np.errstate(invalid="ignore"):
                    assert_same(ours, ref_loop(variant, u, o, direction))


def float32_edge_cases(n_ex, seed, n_models=100):
    """Float32 margins (n_models vs n_models) where float32 bin edges (np.linspace of float32
    min and max, NumPy 2) and float64 edges put a value in different bins.

    Each example draws a random float32 range [lo, hi] (both samples contain lo and hi, so it
    is the joint range) and finds an edge k whose float32 value differs from the float64 one,
    and a float32 value v lying between the two: a third of the unlearned sample is v."""
    rng = np.random.default_rng(seed)
    u = np.empty((n_models, n_ex), np.float32)
    o = np.empty((n_models, n_ex), np.float32)
    e = 0
    while e < n_ex:
        lo, hi = np.sort(rng.uniform(-90, 90, 2) / 10.0 ** rng.integers(0, 4)).astype(np.float32)
        e32 = np.linspace(lo, hi, 21)
        e64 = np.linspace(np.float64(lo), np.float64(hi), 21)
        assert e32.dtype == np.float32 and e64.dtype == np.float64
        for k in rng.permutation(np.arange(1, 20)):
            v = np.nextafter(e32[k], np.float32(-np.inf)) if e32[k] > e64[k] else e32[k]
            if (v >= e32[k]) != (v >= e64[k]):
                break
        else:
            continue
        u[:, e] = rng.uniform(lo, hi, n_models)
        o[:, e] = rng.uniform(lo, hi, n_models)
        u[:2, e] = o[:2, e] = lo, hi
        u[2: 2 + n_models // 3, e] = v
        e += 1
    return u, o

@NEEDS_NUMPY2
def test_float32_edges_of_the_numpy2_references():
    """bench2025 and easydub on float32 margins bin with float32 edges (NumPy 2, NEP 50); on
    float64 margins with float64 edges. paper2024 (NumPy 1.26) has float64 edges either way."""
    u32, o32 = float32_edge_cases(40, seed=13)
    u64, o64 = u32.astype(np.float64), o32.astype(np.float64)
    for variant in ("bench2025", "easydub"):
        for direction in metric.DIRECTIONS:
            ours32 = klom(unlearned=u32, oracle=o32, variant=variant, direction=direction)
            ours64 = klom(unlearned=u64, oracle=o64, variant=variant, direction=direction)
            ref32 = ref_loop(variant, u32, o32, direction)
            ref64 = ref_loop(variant, u64, o64, direction)
            assert_same(ours32, ref32)
            assert_same(ours64, ref64)
            # every example was built so that the two dtypes bin differently
            assert np.all(ref32 != ref64) and np.all(ours32 != ours64)
    for direction in metric.DIRECTIONS:
        ours32 = klom(unlearned=u32, oracle=o32, variant="paper2024", direction=direction)
        ours64 = klom(unlearned=u64, oracle=o64, variant="paper2024", direction=direction)
        np.testing.assert_array_equal(ours32, ours64)
        assert_same(ours32, ref_loop("paper2024", u32, o32, direction))


@NEEDS_NUMPY2
@pytest.mark.parametrize("clip", [(-0.7, 0.9), (-3.3, 1e39)])
@pytest.mark.parametrize("variant", ["paper2024", "bench2025", "easydub"])
def test_reference_variants_float32_clip_bounds(variant, clip):
    """Float32 margins are clipped at the bounds rounded to float32 (NumPy 2: a bound beyond
    float32's range becomes inf; NumPy 1.26: such a bound makes np.clip work in float64)."""
    u, o = hard_margins(9, 11, 400, seed=14)
    finite = np.isfinite(u).all(0) & np.isfinite(o).all(0)
    u, o = u[:, finite].astype(np.float32), o[:, finite].astype(np.float32)
    for direction in metric.DIRECTIONS:
        ours = klom(unlearned=u, oracle=o, variant=variant, direction=direction, clip=clip)
        with np.errstate(invalid="ignore"):
            assert_same(ours, ref_loop(variant, u, o, direction, clip=clip))


def test_float64_input_is_float64_throughout():
    """Float64 margins: every variant as before, float64 edges, bounds and widening."""
    u, o = hard_margins(8, 9, 500, seed=15)
    finite = np.isfinite(u).all(0) & np.isfinite(o).all(0)
    u, o = u[:, finite], o[:, finite]
    u[:, :20] = o[:, :20] = 0.1  # all equal: the range widened by 1 in float64
    for variant in ("paper2024", "bench2025", "easydub"):
        ours = klom(unlearned=u, oracle=o, variant=variant)
        with np.errstate(invalid="ignore"):
            assert_same(ours, ref_loop(variant, u, o))
        # the same as float32 margins cast to float64 (the float32 path is only for float32)
        u32, o32 = u.astype(np.float32), o.astype(np.float32)
        np.testing.assert_array_equal(
            klom(unlearned=u32.astype(np.float64), oracle=o32.astype(np.float64), variant=variant),
            klom(unlearned=u32.astype(np.float64), oracle=o32, variant=variant))

@NEEDS_NUMPY2
def test_widened_range_still_flat():
    """|min| >= 2**53 (float64) or 2**24 (float32): min + 1 == min, every edge is the minimum and
    the 2025 code drops every value: nan (bench2025) and 0 (easydub)."""
    for dtype, value in ((np.float64, 2.0**60), (np.float32, 2.0**30)):
        u = o = np.full((5, 3), value, dtype)
        clip = (-2.0**61, 2.0**61)
        for variant in ("bench2025", "easydub"):
            ours = klom(unlearned=u, oracle=o, variant=variant, clip=clip)
            with np.errstate(invalid="ignore"):
                assert_same(ours, ref_loop(variant, u, o, clip=clip))
        assert np.isnan(klom(unlearned=u, oracle=o, variant="bench2025", clip=clip)).all()


def test_direction_swaps_arguments():
    u, o = hard_margins(5, 8, 200, seed=4)
    for variant in metric.VARIANTS:
        a = klom(unlearned=u, oracle=o, variant=variant, direction="oracle||unlearned")
        b = klom(unlearned=o, oracle=u, variant=variant)
        np.testing.assert_array_equal(a, b)


def test_chunking_and_torch_input(monkeypatch):
    u, o = hard_margins(6, 9, 500, seed=6)
    whole = klom(unlearned=u, oracle=o)
    monkeypatch.setattr(metric, "_CHUNK_ELEMENTS", 64)  # a few examples per chunk
    np.testing.assert_array_equal(klom(unlearned=u, oracle=o), whole)
    np.testing.assert_array_equal(klom(unlearned=torch.tensor(u), oracle=torch.tensor(o)), whole)
    half = klom(unlearned=torch.tensor(u, dtype=torch.bfloat16), oracle=o.astype(np.float16))
    assert half.dtype == np.float64 and half.shape == (500,)


def test_memory_layouts_and_byte_order():
    """Fortran order, strided views and big-endian input give the same scores as C order."""
    u, o = hard_margins(7, 5, 300, seed=9)
    whole = klom(unlearned=u, oracle=o)
    for f in (np.asfortranarray, lambda a: a.astype(">f8"),
              lambda a: np.repeat(a, 2, axis=1)[:, ::2], lambda a: np.ascontiguousarray(a.T).T):
        np.testing.assert_array_equal(klom(unlearned=f(u), oracle=f(o)), whole)
    u32, o32 = u.astype(np.float32), o.astype(np.float32)
    np.testing.assert_array_equal(klom(unlearned=u32.astype(">f4"), oracle=np.asfortranarray(o32)),
                                  klom(unlearned=u32, oracle=o32))


def test_count_slots_kernel():
    """The compiled kernel bins like np.histogram, and keeps slots in range for any input."""
    from klom_utils.binning import count_slots

    rng = np.random.default_rng(10)
    x = np.round(rng.normal(0, 1, (50, 30)), 1)  # many values on edges, and at both ends
    lo, hi = x.min(0), x.max(0)
    bins = 10
    step, scale = (hi - lo) / bins, bins / (hi - lo)
    offset = 2.0**-40 - lo * scale
    counts = np.zeros((30, bins + 1), np.int64)
    count_slots(x, 0, lo, hi, lo, step, hi, scale, offset, bins, bins - 1, 0, counts)
    expected = [np.histogram(x[:, j], bins, range=(lo[j], hi[j]))[0] for j in range(30)]
    np.testing.assert_array_equal(counts[:, :bins], expected)
    assert not counts[:, bins].any()
    # nonsense parameters: slots stay within [shift, k_max + shift]
    counts[:] = 0
    wild = rng.normal(0, 1e6, (5, 30))
    count_slots(x, 0, lo, hi, wild[0], wild[1], wild[2], wild[3], wild[4], 7, 9, 1, counts)
    assert counts.sum(1).tolist() == [50] * 30 and not counts[:, 0].any()


def test_count_slots_edges_kernel():
    """The explicit-edge kernel slots like numpy.digitize - 1, whatever the estimate (even a
    useless one) and with repeated edges."""
    from klom_utils.binning import count_slots_edges

    rng = np.random.default_rng(16)
    n_ex, n_edges = 40, 8
    edges = np.sort(np.round(rng.normal(0, 1, (n_ex, n_edges)), 1), axis=1)  # some repeated
    x = np.round(rng.normal(0, 1.2, (60, n_ex)), 1)  # many values on edges
    low, high = edges[:, 0], edges[:, -1] + 0.5  # values past the last edge land in its slot
    expected = np.zeros((n_ex, n_edges), np.int64)
    for j in range(n_ex):
        v = np.clip(x[:, j], low[j], high[j])
        expected[j] = np.bincount(np.digitize(v, edges[j]) - 1, minlength=n_edges)
    for scale in (np.full(n_ex, (n_edges - 1) / 3.0), np.zeros(n_ex), np.full(n_ex, 1e6),
                  np.full(n_ex, -5.0), np.full(n_ex, np.nan)):
        counts = np.zeros((n_ex, n_edges), np.int64)
        count_slots_edges(x, 0, low, high, edges, scale, counts)
        np.testing.assert_array_equal(counts, expected)


def test_empty_examples():
    assert klom(unlearned=np.zeros((3, 0)), oracle=np.zeros((4, 0))).shape == (0,)


def test_known_magnitudes():
    """The numbers quoted in the documentation (N = 100, canonical)."""
    rng = np.random.default_rng(0)
    n_ex = 2000
    spread = rng.normal(0, 1, (100, n_ex))
    point = np.full((100, n_ex), 0.0)
    assert np.mean(klom(unlearned=point, oracle=spread)) == pytest.approx(2.4, abs=0.15)
    assert np.mean(klom(unlearned=spread, oracle=point)) == pytest.approx(7.7, abs=0.2)
    # complete separation: about log(1/eps) - entropy of p; how far apart matters a little
    # (9.3 at 5 standard deviations, 9.8 at 10, 10.3 at 20)
    far = rng.normal(10, 1, (100, n_ex))
    assert np.mean(klom(unlearned=spread, oracle=far)) == pytest.approx(9.8, abs=0.15)
    noise = klom(unlearned=spread, oracle=rng.normal(0, 1, (100, n_ex)))
    assert noise.mean() == pytest.approx(0.35, abs=0.03)


# --------------------------------------------------------------------------------------------
# klom errors


def test_klom_argument_errors():
    u, o = np.zeros((3, 4)), np.zeros((5, 4))
    with pytest.raises(ValueError, match=r"variant='paper'.*canonical.*easydub"):
        klom(unlearned=u, oracle=o, variant="paper")
    with pytest.raises(ValueError, match=r"direction='u\|\|o'.*oracle\|\|unlearned"):
        klom(unlearned=u, oracle=o, direction="u||o")
    for kwargs, pattern in [({"bins": 0}, "bins"), ({"bins": 2.5}, "bins"),
                            ({"bins": 1, "variant": "paper2024"}, "bins >= 2"),
                            ({"eps": 0}, "eps"), ({"eps": -1e-5}, "eps"),
                            ({"clip": (1, 1)}, "clip"), ({"clip": (2, 1)}, "clip"),
                            ({"clip": 5}, "clip"), ({"clip": (-np.inf, 0)}, "clip")]:
        with pytest.raises(ValueError, match=pattern):
            klom(unlearned=u, oracle=o, **kwargs)


def test_klom_shape_errors():
    with pytest.raises(ValueError, match=r"unlearned must have shape \(n_models, n_examples\)"):
        klom(unlearned=np.zeros(4), oracle=np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"oracle .*got shape \(0, 4\)"):
        klom(unlearned=np.zeros((3, 4)), oracle=np.zeros((0, 4)))
    with pytest.raises(ValueError, match=r"same examples: got 4 and 6"):
        klom(unlearned=np.zeros((3, 4)), oracle=np.zeros((5, 6)))
    with pytest.raises(ValueError, match="real numbers"):
        klom(unlearned=np.zeros((3, 4), complex), oracle=np.zeros((5, 4)))


def test_klom_nan_error_says_where():
    u, o = np.zeros((3, 40)), np.ones((5, 40))
    u[1, 7] = u[2, 30] = np.nan
    o[4, 39] = np.nan
    with pytest.raises(ValueError) as info:
        klom(unlearned=u, oracle=o)
    message = str(info.value)
    assert "unlearned has 2 nan value(s)" in message and "(1, 7), (2, 30)" in message
    assert "oracle has 1 nan value(s)" in message and "(4, 39)" in message
    with pytest.raises(ValueError, match="oracle has 1 nan"):
        klom(unlearned=np.zeros((3, 40)), oracle=o, variant="paper2024")


# --------------------------------------------------------------------------------------------
# margins


def margins_float64(logits, labels):
    z = np.asarray(logits, np.float64)
    y = np.broadcast_to(labels, z.shape[:-1])
    out = np.empty(z.shape[:-1])
    for i in np.ndindex(out.shape):
        others = np.delete(z[i], y[i])
        out[i] = z[i][y[i]] - (others.max() + np.log(np.exp(others - others.max()).sum()))
    return out


def test_margins_numpy_and_torch():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4, 6, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 6)
    expected = margins_float64(logits, labels)
    ours = margins(logits, labels)
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float32 and ours.shape == (4, 6)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
    t = margins(torch.tensor(logits), torch.tensor(labels))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.shape == (4, 6)
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert margins(logits.astype(np.float64), labels).dtype == np.float64
    assert margins(torch.tensor(logits, dtype=torch.float64), labels).dtype == torch.float64
    # log p_y - log(1 - p_y) under softmax
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p = np.take_along_axis(p / p.sum(-1, keepdims=True), labels[None, :, None], -1)[..., 0]
    np.testing.assert_allclose(ours, np.log(p) - np.log1p(-p), rtol=1e-4, atol=1e-4)


def test_margins_extreme_and_half_precision():
    logits = np.array([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], np.float32)
    labels = np.array([0, 1, 2])
    expected = margins_float64(logits, labels)
    np.testing.assert_allclose(expected, [1e4, -2e4, 0.0], rtol=1e-12)
    for z in (logits, torch.tensor(logits)):
        got = np.asarray(margins(z, labels))
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    for z in (logits.astype(np.float16), torch.tensor(logits, dtype=torch.bfloat16),
              torch.tensor(logits, dtype=torch.float16)):
        got = margins(z, labels)
        assert got.dtype in (np.float32, torch.float32)
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-2, atol=1e-6)
    # half precision input is computed in float32: same as converting first
    z16 = torch.tensor([[3.0, 2.0, -1.0]], dtype=torch.bfloat16)
    assert margins(z16, [0]).item() == margins(z16.float(), [0]).item()


def test_margins_errors():
    z = np.zeros((5, 10), np.float32)
    with pytest.raises(ValueError, match=r"label 10 is out of range.*\[0, 10\)"):
        margins(z, np.array([0, 1, 2, 3, 10]))
    with pytest.raises(ValueError, match=r"label -1 is out of range"):
        margins(torch.tensor(z), torch.tensor([0, 1, -1, 3, 4]))
    with pytest.raises(ValueError, match="labels must be integers.*float"):
        margins(z, np.array([0.0, 1, 2, 3, 4]))
    with pytest.raises(ValueError, match="labels must be integers"):
        margins(torch.tensor(z), torch.tensor([0.0, 1, 2, 3, 4]))
    with pytest.raises(ValueError, match=r"labels of shape \(4,\).*shape \(5, 10\).*\(5,\)"):
        margins(z, np.arange(4))
    assert margins(np.zeros((5, 3), int), np.zeros(5, int)).dtype == np.float32
    with pytest.raises(ValueError, match="logits must be real"):
        margins(np.zeros((5, 3), complex), np.zeros(5, int))
    with pytest.raises(ValueError, match="n_classes >= 2"):
        margins(np.zeros((5, 1)), np.zeros(5, int))


# --------------------------------------------------------------------------------------------
# summaries


def test_summarize_hand_made():
    n_train = 10
    scores = np.arange(15, dtype=float)  # 10 train then 5 validation
    forget = np.array([7, 2, 5])
    out = summarize(scores, forget=forget, n_train=n_train)
    assert list(out) == ["forget", "retain", "validation"]
    groups = {"forget": [2, 5, 7], "retain": [0, 1, 3, 4, 6, 8, 9], "validation": range(10, 15)}
    for g, idx in groups.items():
        x = scores[list(idx)]
        assert out[g] == {"p95": np.percentile(x, 95), "p99": np.percentile(x, 99),
                          "mean": x.mean(), "std": x.std(), "count": len(x)}
        assert type(out[g]["p95"]) is float and type(out[g]["count"]) is int
    assert headline(out) == pytest.approx(np.mean([out[g]["p95"] for g in groups]))


def test_summarize_partial_groups():
    forget = np.array([7, 2, 5])
    full = summarize(np.arange(15.0), forget=forget, n_train=10)
    only_forget = summarize(np.array([7.0, 2, 5]), forget=forget, n_train=10, groups=("forget",))
    assert only_forget == {"forget": full["forget"]}
    val = summarize(np.arange(10.0, 15), forget=forget, n_train=10, groups=("validation",))
    assert val == {"validation": full["validation"]}
    train = summarize(np.arange(10.0), forget=forget, n_train=10, groups=("forget", "retain"))
    assert train == {"forget": full["forget"], "retain": full["retain"]}
    retain = summarize(np.array([0.0, 1, 3, 4, 6, 8, 9]), forget=forget, n_train=10,
                       groups="retain")
    assert retain == {"retain": full["retain"]}
    fv = summarize(np.array([2.0, 5, 7, 10, 11, 12, 13, 14]), forget=forget, n_train=10,
                   groups=("validation", "forget"))
    assert fv == {"forget": full["forget"], "validation": full["validation"]}


def test_summarize_errors():
    forget = np.array([1, 2])
    with pytest.raises(ValueError, match=r"10 scores do not fit .* expected 10 \+ n_validation"):
        summarize(np.zeros(10), forget=forget, n_train=10)
    with pytest.raises(ValueError, match="expected 2 scores"):
        summarize(np.zeros(3), forget=forget, n_train=10, groups=("forget",))
    with pytest.raises(ValueError, match=r"forget index 10 is out of range.*\[0, 10\)"):
        summarize(np.zeros(12), forget=[1, 10], n_train=10)
    with pytest.raises(ValueError, match=r"forget index -1"):
        summarize(np.zeros(12), forget=[-1], n_train=10)
    with pytest.raises(ValueError, match=r"distinct, \[3\] repeat"):
        summarize(np.zeros(12), forget=[3, 3], n_train=10)
    with pytest.raises(ValueError, match="integer indices"):
        summarize(np.zeros(12), forget=[1.5], n_train=10)
    with pytest.raises(ValueError, match="groups="):
        summarize(np.zeros(12), forget=forget, n_train=10, groups=("train",))
    with pytest.raises(ValueError, match="n_train"):
        summarize(np.zeros(12), forget=forget, n_train=-1)
    with pytest.raises(ValueError, match="1-D"):
        summarize(np.zeros((2, 6)), forget=forget, n_train=10)


def test_import_is_cheap():
    import subprocess
    import sys

    code = "import sys, klom_utils.metric; print('torch' in sys.modules, 'numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"

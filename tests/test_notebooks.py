"""Run notebooks with tiny parameters through papermill and check the numbers they write.

Each test executes one notebook (as `make book` does, with notebooks/ as the working directory)
into a temporary folder and reads <results_dir>/<stem>.json. Add one test per notebook.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

papermill = pytest.importorskip("papermill")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def run_notebook(stem: str, tmp_path: Path, **parameters) -> dict:
    """Execute notebooks/<stem>.ipynb with `parameters`; return its results JSON."""
    results_dir = tmp_path / "results"
    papermill.execute_notebook(
        str(NOTEBOOKS / f"{stem}.ipynb"),
        str(tmp_path / f"{stem}.out.ipynb"),
        parameters={"results_dir": str(results_dir), **parameters},
        cwd=str(NOTEBOOKS),
        kernel_name="python3",
        progress_bar=False,
    )
    return json.loads((results_dir / f"{stem}.json").read_text())


@pytest.mark.slow
def test_02_klom_explained(tmp_path):
    pytest.importorskip("klom_utils.metric")
    r = run_notebook("02_klom_explained", tmp_path, n_synthetic_examples=1000, seed=1)

    assert r["parameters"]["n_synthetic_examples"] == 1000
    # margins of the three logit vectors: confident right, unsure, confident wrong
    m = r["margin_example"]
    assert m[0] > 2 and -1 < m[1] < 0 and m[2] < -5
    # the histogram computed by hand is what klom() returns
    assert r["one_example"]["by_hand"] == pytest.approx(r["one_example"]["klom"], rel=1e-9)

    # the noise floor falls with N and matches the reference table (20,000 examples there)
    floor = {int(n): v for n, v in r["noise_floor"].items()}
    ns = sorted(floor)
    assert ns == [20, 50, 100, 200]
    p95 = [floor[n]["p95"] for n in ns]
    mean = [floor[n]["mean"] for n in ns]
    assert p95 == sorted(p95, reverse=True) and mean == sorted(mean, reverse=True)
    for n, ref_mean, ref_p95 in [(20, 3.0, 5.0), (50, 0.89, 1.7), (100, 0.35, 0.68),
                                 (200, 0.15, 0.29)]:
        assert floor[n]["mean"] == pytest.approx(ref_mean, rel=0.1), n
        assert floor[n]["p95"] == pytest.approx(ref_p95, rel=0.15), n

    # direction asymmetry of a point mass against a spread sample, N = 100: about 2.4 vs 7.7
    assert r["direction"]["point_mass_vs_spread"] == pytest.approx(2.4, abs=0.2)
    assert r["direction"]["spread_vs_point_mass"] == pytest.approx(7.7, abs=0.3)

    # the eps cap and the score of completely separated samples
    assert r["eps_cap"] == pytest.approx(math.log(1e5))
    assert 9.0 < r["separated_score"] < r["eps_cap"]

    # more bins raise the floor; one diverged model hides a real shift
    bins = r["bins_effect"]
    assert bins["5"]["same_law_p95"] < bins["20"]["same_law_p95"] < bins["80"]["same_law_p95"]
    assert bins["20"]["shifted_median"] > 1.5 * bins["20"]["same_law_p95"]
    assert r["one_diverged_model_median"]["(-100.0, 100.0)"] < 0.3

    # the reference implementations fail on a point mass above every oracle margin
    above = r["variants"]["point mass above"]
    assert above["canonical"]["median"] == pytest.approx(math.log(1e5))
    assert above["paper2024"]["median"] is None and above["paper2024"]["nan_fraction"] == 1.0
    assert above["easydub"]["median"] == 0.0
    assert above["bench2025"]["median"] < 1.0
    same = r["variants"]["same law"]
    assert all(0.1 < v["median"] < 0.6 for v in same.values())
    assert r["variants"]["both constant"]["canonical"]["median"] == 0.0

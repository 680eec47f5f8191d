"""Run notebooks with tiny parameters through papermill and check the numbers they write.

Each test executes one notebook (as `make book` does, with notebooks/ as the working directory)
into a temporary folder and reads <results_dir>/<stem>.json. Add one test per notebook.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import pytest

papermill = pytest.importorskip("papermill")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def _book_checks():
    spec = importlib.util.spec_from_file_location("book_checks", ROOT / "scripts" / "book_checks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_notebook(stem: str, tmp_path: Path, **parameters) -> dict:
    """Execute notebooks/<stem>.ipynb with `parameters`; return its results JSON, after checking
    that the page's glued numbers agree with it and that every figure keeps the book's style
    (the checks of the build, scripts/book_checks.py)."""
    results_dir = tmp_path / "results"
    out = tmp_path / f"{stem}.out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOKS / f"{stem}.ipynb"),
        str(out),
        parameters={"results_dir": str(results_dir), **parameters},
        cwd=str(NOTEBOOKS),
        kernel_name="python3",
        progress_bar=False,
    )
    results = json.loads((results_dir / f"{stem}.json").read_text())
    nb = json.loads(out.read_text())
    checks = _book_checks()
    problems = checks.glue_problems(stem, nb, results) + checks.figure_problems(nb, results)
    assert not problems, f"{stem}: " + "; ".join(problems)
    assert results["figures"], f"{stem}: no figure recorded"
    return results


@pytest.mark.slow
def test_01_klom_explained(tmp_path):
    pytest.importorskip("klom_utils.metric")
    r = run_notebook("01_klom_explained", tmp_path, n_synthetic_examples=1000, seed=1)

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
    assert r["diverged_flagged"] == [0]  # the diagnostic finds the diverged model
    # implementations differ by more on heavy tails than on same-law examples
    spread = r["variant_spread"]
    assert 1.0 <= spread["same law"] < spread["heavy tails"] < 1.4

    # the reference implementations fail on a point mass above every oracle margin
    above = r["variants"]["point mass above"]
    assert above["canonical"]["median"] == pytest.approx(math.log(1e5))
    assert above["paper2024"]["median"] is None and above["paper2024"]["nan_fraction"] == 1.0
    assert above["easydub"]["median"] == 0.0
    assert above["bench2025"]["median"] < 1.0
    same = r["variants"]["same law"]
    assert all(0.1 < v["median"] < 0.6 for v in same.values())
    assert r["variants"]["both constant"]["canonical"]["median"] == 0.0


# ---------------------------------------------------------------------------------------------
# The pipeline, 03 to 07, on a tiny DIGITS store: 04 trains it once for the module (into a
# temporary folder), 05 unlearns into it, and 03, 06 and 07 read it.

TINY_N = 20  # models per group: enough for KLOM to separate "forgot" from "did not"
TINY_SET = 3  # the DIGITS sub-population forget set (50 images)
TINY_HELD_OUT = 5
TINY_METHODS = ["do_nothing", "gradient_ascent", "oracle_matching"]
TINY_SPLITS = 10
GROUPS = ("forget", "retain", "validation")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Folder and store of the tiny pipeline, with the results of 04 (training)."""
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("pipeline")
    store = root / "store"
    r04 = run_notebook("03_training", root, store_dir=str(store), dataset="digits", progress=False,
                       n_models=TINY_N, forget_sets=[TINY_SET],
                       n_held_out_oracles=TINY_HELD_OUT, stack_sizes=[1, TINY_N])
    return {"root": root, "store": str(store), "04": r04}


@pytest.fixture(scope="module")
def unlearned(pipeline):
    """The pipeline after 05 (unlearning) with TINY_METHODS; its results."""
    return run_notebook("04_unlearning", pipeline["root"], store_dir=pipeline["store"],
                     n_held_out_oracles=TINY_HELD_OUT, progress=False,
                        dataset="digits", forget_sets=[TINY_SET], methods=TINY_METHODS,
                        n_models=TINY_N)


@pytest.mark.slow
def test_03_training(pipeline):
    r = pipeline["04"]
    assert r["parameters"]["n_models"] == TINY_N
    t = r["timings"]
    assert t["full"]["trained"] == TINY_N
    assert t[f"forget_set_{TINY_SET}"]["trained"] == 2 * TINY_N
    assert t[f"forget_set_{TINY_SET}_held_out"]["trained"] == TINY_HELD_OUT
    assert set(r["throughput_models_per_s"]) == {"1", str(TINY_N)}
    assert all(v > 0 for v in r["throughput_models_per_s"].values())
    assert r["forget_set_sizes"] == {str(TINY_SET): 50}
    folders = r["store_folders"]
    assert folders["full_models/DIGITS"] == TINY_N
    # 2N oracles (N to score against, N more for a noise floor at N) and the held-out ones
    assert folders[f"oracles/DIGITS/forget_set_{TINY_SET}"] == 2 * TINY_N + TINY_HELD_OUT
    for name, acc in r["accuracy"].items():
        assert acc["n_models"] == TINY_N
        for key in ("test_mean", "test_min", "test_max", "forget_mean", "retain_mean"):
            assert 0.0 <= acc[key] <= 1.0, (name, key)
        assert acc["test_min"] <= acc["test_mean"] <= acc["test_max"]
        assert acc["test_mean"] > 0.9 and acc["retain_mean"] > 0.98, name
    # full models were trained on the forget set and fit it
    assert r["accuracy"]["full models"]["forget_mean"] > 0.99


@pytest.mark.slow
def test_02_download_local_store(pipeline):
    r = run_notebook("02_download", pipeline["root"], store_dir=pipeline["store"], progress=False,
                     source="local", dataset="digits", forget_sets=[TINY_SET], n_models=TINY_N)
    assert r["parameters"]["source"] == "local"
    # label order: the full models fit their training set; shuffled labels agree by chance
    assert r["label_order_agreement"]["min"] > 0.98
    assert r["label_order_agreement"]["shuffled_max"] < 0.3
    assert r["forget_set_checks"] and all(r["forget_set_checks"].values())
    assert r["forget_set_sizes"] == {str(TINY_SET): 50}
    assert r["n_full_models"] == TINY_N
    assert r["n_oracles"] == {str(TINY_SET): TINY_N}  # held-out oracles left out
    # no Hub: augmented DIGITS models trained in the chapter, marked as the embedded run
    aug = r["augmentation"]
    assert aug["source"] == "DIGITS (embedded run)" and aug["n_models"] == TINY_N
    assert aug["augmented"]["train_median"] < aug["plain"]["train_median"] - 1.0
    assert 0.8 < aug["augmented"]["test_accuracy"] <= aug["plain"]["test_accuracy"]
    store = Path(pipeline["store"])
    recipe = json.loads((store / "full_models/DIGITS_augmented/klom_train.json").read_text())
    assert recipe["augment"] is True
    dn = r["do_nothing"][str(TINY_SET)]
    assert dn["forget"]["count"] == 50
    assert dn["retain"]["count"] == 1442 - 50 and dn["validation"]["count"] == 355
    # doing nothing: far from the oracles on the forget set, not elsewhere
    assert dn["forget"]["p95"] > dn["retain"]["p95"] + 1.0
    assert dn["forget"]["p95"] > dn["validation"]["p95"] + 1.0
    assert 0.0 <= dn["retain"]["p95"] <= math.log(1e5)
    # the store has 2N scoring oracles: the floor is at the same N as doing nothing
    floor = r["noise_floor"][str(TINY_SET)]
    assert floor["n_per_side"] == TINY_N
    assert dn["retain"]["p95"] > floor["retain"]["p95"]
    # the stand-in of EasyDUB's layout reads the same models: the same numbers, both listed
    pop = r["populations"]
    layouts = [k for k in pop if k.endswith("layout")]
    assert len(layouts) == 2 and pop[layouts[0]] == pop[layouts[1]]
    assert all(size > 0 for size in pop["listed_bytes"].values())


@pytest.mark.slow
def test_02_download_hub_needs_cifar10(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError, match="dataset='cifar10'"):
        run_notebook("02_download", tmp_path, source="hub", dataset="digits")


@pytest.mark.slow
def test_04_unlearning(unlearned):
    r = unlearned
    assert r["parameters"]["methods"] == TINY_METHODS
    assert set(r["configs"]) == set(TINY_METHODS)
    assert r["configs"]["do_nothing"] == {}
    assert set(r["runs"]) == {f"{TINY_SET}/{m}" for m in TINY_METHODS}
    for run in r["runs"].values():
        assert run["written"] + run["skipped"] == TINY_N
    acc = r["accuracy"][str(TINY_SET)]
    assert set(acc) == {"originals", "oracles", *TINY_METHODS}
    for name, a in acc.items():
        assert set(a) == {"forget", "retain", "test"}
        assert all(0.0 <= v <= 1.0 for v in a.values()), name
    assert acc["do_nothing"] == acc["originals"]  # doing nothing changes nothing
    assert acc["oracle_matching"]["test"] > 0.9


@pytest.mark.slow
def test_05_computing_klom(pipeline, unlearned):
    r = run_notebook("05_computing_klom", pipeline["root"], store_dir=pipeline["store"],
                     n_held_out_oracles=TINY_HELD_OUT, progress=False, n_models=TINY_N,
                     dataset="digits", forget_sets=[TINY_SET], methods=TINY_METHODS,
                     n_splits=TINY_SPLITS)
    recs = {rec["method"]: rec for rec in r["records"]}
    assert set(recs) == set(TINY_METHODS)
    for name, rec in recs.items():
        assert rec["n_unlearned"] == TINY_N and rec["n_oracles"] == TINY_N, name
        assert rec["forget_size"] == 50
        for g in GROUPS:
            assert 0.0 <= rec[g]["p95"] <= math.log(1e5)
            assert rec[g]["p95_low"] <= rec[g]["p95_high"]
        assert all(0.0 <= v <= 1.0 for v in rec["accuracy"].values())
    dn, om = recs["do_nothing"], recs["oracle_matching"]
    assert dn["forget"]["p95"] > dn["retain"]["p95"] + 1.0
    assert om["forget"]["p95"] < dn["forget"]["p95"] - 1.0  # the pipeline check
    # the step-by-step part is "do nothing" on the same forget set
    step = r["step_by_step"]
    assert step["forget_set"] == TINY_SET
    assert step["summary"]["forget"]["p95"] == pytest.approx(dn["forget"]["p95"])
    assert set(r["noise_floor"]) == {"n_per_side", *GROUPS}
    assert r["noise_floor"]["n_per_side"] == TINY_N  # matched: 2N oracles were trained
    assert r["noise_floor_half"]["n_per_side"] == TINY_N // 2
    for rec in recs.values():
        assert rec["noise_floor"]["n_per_side"] == TINY_N and "matched" not in rec
        assert rec["n_per_side"] == TINY_N
        for g in GROUPS:
            assert rec[g]["p95_low"] <= rec[g]["p95"] <= rec[g]["p95_high"]
    # the floor at N is below the floor at N/2, and doing nothing is above the floor at N
    for g in ("retain", "validation"):
        assert r["noise_floor"][g]["p95"] < r["noise_floor_half"][g]["p95"]
        assert dn[g]["p95"] > r["noise_floor"][g]["p95"]
    # both directions are reported for every method
    assert set(r["directions"]) == {f"{TINY_SET}/{m}" for m in TINY_METHODS}
    floors = r["direction_floors"][str(TINY_SET)]  # the floor in both directions, at N
    assert floors["n_per_side"] == TINY_N
    assert all(0.0 < floors[g][0] < 5.0 and 0.0 < floors[g][1] < 5.0 for g in GROUPS)
    assert sorted(r["ranking"][str(TINY_SET)]) == sorted(TINY_METHODS)
    # the other lenses, side by side with their nulls at the same N
    lenses = r["lenses"]
    assert lenses["n_per_side"] == TINY_N and "do_nothing" in lenses["forget"]
    for name, row in lenses["forget"].items():
        assert 0 <= row["U-LiRA"] <= 1 and 0 <= row["KS p95"] <= 1 and 0 <= row["ToW"] <= 1
        assert row["KLOM p95"] == pytest.approx(recs[name]["forget"]["p95"])
    assert lenses["forget"]["do_nothing"]["KS p95"] > lenses["forget"]["do_nothing"]["KS null"]
    assert set(lenses["rankings"]) == {"KLOM p95", "U-LiRA", "KS p95", "ToW"}


@pytest.mark.slow
def test_06_your_method(pipeline, unlearned):
    r = run_notebook("06_your_method", pipeline["root"], store_dir=pipeline["store"],
                     n_held_out_oracles=TINY_HELD_OUT, progress=False,
                     dataset="digits", forget_sets=[TINY_SET], n_models=TINY_N,
                     n_splits=TINY_SPLITS)
    check = r["one_model_check"]
    assert check["original_untouched"] is True
    assert not check["tensors_changed"].startswith("0 ")
    assert 0.9 < check["test_accuracy"] <= 1.0
    assert r["runs"][str(TINY_SET)]["written"] == TINY_N  # recomputed on every run
    methods = [rec["method"] for rec in r["records"]]
    assert methods == ["shrink_perturb", "do_nothing", "oracle_matching"]
    v = r["verdict"][str(TINY_SET)]
    assert isinstance(v["forget_gap_closed"], float)
    dn = v["forget_p95"]["do_nothing"]
    assert v["forget_p95"]["oracle_matching"] < dn
    # closed share of the gap, recomputed from the recorded 95th percentiles
    mine, best = v["forget_p95"]["shrink_perturb"], v["forget_p95"]["oracle_matching"]
    expected = (dn - mine) / (dn - best)
    assert v["forget_gap_closed"] == pytest.approx(expected)


@pytest.mark.slow
def test_07_datamodel_matching(pipeline, unlearned):
    r = run_notebook("07_datamodel_matching", pipeline["root"], store_dir=pipeline["store"],
                     n_held_out_oracles=TINY_HELD_OUT, progress=False,
                     dataset="digits", forget_sets=[TINY_SET], n_models=TINY_N,
                     methods=TINY_METHODS, n_subset_models=60, n_splits=TINY_SPLITS)
    assert r["datamodel"]["n_models"] == 60 and r["datamodel"]["estimator"] == "regression"
    q = r["quality"][str(TINY_SET)]["groups"]
    assert set(q) == set(GROUPS) and q["forget"]["corr"] > 0  # it predicts something
    assert set(r["runs"]) == {f"{TINY_SET}/datamodel_matching", f"{TINY_SET}/datamodel_direct"}
    v = r["verdict"][str(TINY_SET)]["forget_p95"]
    assert set(v) == {"do_nothing", "oracle_matching", "datamodel_matching", "datamodel_direct"}
    assert all(0.0 <= x <= math.log(1e5) for x in v.values())
    acc = r["verdict"][str(TINY_SET)]["accuracy"]["datamodel_matching"]
    assert acc["test"] > 0.9


# ---------------------------------------------------------------------------------------------
# Every chapter runs alone: in an empty folder, with its own defaults for the store and results
# (klom_run/ under the working directory) and tiny sizes, it builds the store it needs.

ALONE = {"n_models": 6, "forget_sets": [TINY_SET], "n_held_out_oracles": 2, "progress": False}
ALONE_METHODS = {"methods": ["do_nothing", "oracle_matching"], "n_splits": TINY_SPLITS}


def run_alone(stem: str, folder: Path, **parameters) -> dict:
    """Execute notebooks/<stem>.ipynb with `folder` (empty) as its working directory, given
    only the parameters it declares (as the book's build does)."""
    declared = papermill.inspect_notebook(str(NOTEBOOKS / f"{stem}.ipynb"))
    parameters = {k: v for k, v in parameters.items() if k in declared}
    papermill.execute_notebook(str(NOTEBOOKS / f"{stem}.ipynb"), str(folder / "out.ipynb"),
                               parameters=parameters, cwd=str(folder),
                               kernel_name="python3", progress_bar=False)
    return json.loads((folder / "klom_run" / "results" / f"{stem}.json").read_text())


def stream_text(notebook: Path) -> str:
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []) if o.output_type == "stream")


@pytest.mark.slow
@pytest.mark.parametrize("stem, parameters", [
    ("01_klom_explained", {"n_synthetic_examples": 500}),
    ("03_training", {**ALONE, "stack_sizes": [1, 6]}),
])
def test_self_contained_chapter_runs_in_an_empty_folder(tmp_path, stem, parameters):
    r = run_alone(stem, tmp_path, **parameters)
    assert r["parameters"]["seed"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("stem, extra", [
    ("02_download", {}),
    ("04_unlearning", ALONE_METHODS),
    ("05_computing_klom", ALONE_METHODS),
    ("06_your_method", {"n_splits": TINY_SPLITS}),
    ("07_datamodel_matching", {**ALONE_METHODS, "n_subset_models": 40}),
])
def test_chapter_runs_alone_in_an_empty_folder(tmp_path, stem, extra):
    pytest.importorskip("torch")
    r = run_alone(stem, tmp_path, **ALONE, **extra)
    assert r["parameters"]["forget_sets"] == [TINY_SET]
    text = stream_text(tmp_path / "out.ipynb")
    built = re.search(r"built the missing part of the embedded DIGITS store "
                      r"\(trained (\d+) models, unlearned (\d+)\) in \d+ s", text)
    assert built, f"{stem} says in one line that it built the store: {text[:300]!r}"
    held_out = 2 if "n_held_out_oracles" in papermill.inspect_notebook(
        str(NOTEBOOKS / f"{stem}.ipynb")) else 0
    assert int(built.group(1)) == 6 + 2 * 6 + held_out  # full, 2N oracles, held-out oracles
    store = tmp_path / "klom_run" / "store"
    assert (store / "full_models" / "DIGITS").is_dir()
    # run again: nothing is built twice
    again = tmp_path / "again"
    again.mkdir()
    (again / "klom_run").symlink_to(tmp_path / "klom_run")
    run_alone(stem, again, **ALONE, **extra)
    assert "has the DIGITS models this chapter needs" in stream_text(again / "out.ipynb")

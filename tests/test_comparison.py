"""klom compare: settings chosen by a declared protocol that never reads the reported set's
scoring oracles, the table, summary and figures, resumption, and bad input."""

from __future__ import annotations

import csv
import json
import shutil
import tempfile

import pytest

from klom_utils import comparison as C
from klom_utils.accuracy_gaps import LOGITS_BASIS
from klom_utils.cli import main
from klom_utils.data import load_dataset
from klom_utils.layout import unlearned_folder
from klom_utils.train import default_config as default_config_train
from klom_utils.train import train_models
from klom_utils.unlearning import default_config

SETS = [1, 2, 3]
METHODS = ["do_nothing", "gradient_ascent", "oracle_matching"]


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def store_dir(data):
    """8 full models; per forget set 16 scoring oracles and 2 held out (oracle matching);
    trained for 5 epochs instead of 20 (the comparison's logic does not depend on it)."""
    config = default_config_train("digits", epochs=5, peak_epoch=1)
    with tempfile.TemporaryDirectory(prefix="klom-compare-") as root:
        train_models(data, root, range(8), config=config, progress=False)
        for k in SETS:
            train_models(data, root, list(range(16)) + [1000, 1001], forget_set=k,
                         config=config, progress=False)
        yield root


@pytest.fixture(scope="module")
def loo(data, store_dir):
    return C.compare(data, store_dir, SETS, METHODS, budget=2, cost_models=8, n_splits=10,
                     out=f"{store_dir}/cmp-loo", progress=False)


def test_leave_one_out_never_reads_the_reported_sets_oracles(loo):
    assert len(loo["rows"]) == len(METHODS) * len(SETS) * 3
    for row in loo["rows"]:  # the DIGITS defaults were tuned on sets 1-3: reported, labelled
        tuned = row["method"] != "do_nothing" and row["settings"] == default_config(
            row["method"], "digits")
        assert row["protocol"] == "leave-one-out"
        assert row["label"] == (C.DEFAULTS_OPTIMISTIC if tuned else "")
        chosen_on = {c["forget_set"] for c in row["chosen_on"]}
        assert chosen_on == set(SETS) - {row["forget_set"]}
        assert all(c["oracle_folder"] == f"oracles/DIGITS/forget_set_{c['forget_set']}"
                   and c["oracle_ids"] for c in row["chosen_on"])
        assert row["settings"] is not None and row["n_per_side"] == 8
        assert row["floor_p95"] is not None and row["floor_n_per_side"] == 8
        assert row["oracle_accuracy"] is not None and row["relative_cost"] > 0
    trials = {t["folder"] for t in loo["trials"]["gradient_ascent"]}
    assert len(trials) == 2 and "gradient_ascent" in trials  # defaults in the method's folder
    defaults = default_config("gradient_ascent", "digits")
    for k in SETS:  # the reported setting is the best on the other sets
        choice = loo["choices"]["gradient_ascent"][k]
        others = [j for j in SETS if j != k]
        scores = {t["folder"]: sum(t["scores"][str(j)]["score"] for j in others)
                  for t in loo["trials"]["gradient_ascent"]}
        assert choice["folder"] == min(scores, key=scores.get)
        assert (choice["folder"] == "gradient_ascent") == (choice["config"] == defaults)


def test_files_table_summary_and_figures(loo, store_dir):
    files = loo["files"]
    assert set(files) == {"results.json", "results.csv", "summary.md", "summary.html",
                          "p95.png", "cost.png", "protocols.png"}
    with open(files["results.csv"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(loo["rows"]) and rows[0]["protocol"] == "leave-one-out"
    assert json.loads(rows[0]["chosen_on"])[0]["oracle_ids"]
    summary = open(files["summary.md"]).read()
    assert "leave-one-out" in summary and "N = 8 models per side" in summary
    assert all(m in summary for m in METHODS)
    assert json.load(open(files["results.json"]))["selection"].startswith("mean over forget")
    # what the numbers are: estimator, direction and bins, in the summary and every CSV row
    assert "KL(unlearned || oracle), canonical, 20 bins" in summary
    assert {(r["direction"], r["variant"], r["bins"]) for r in rows} == {
        ("unlearned||oracle", "canonical", "20")}
    # the relative cost divides by training the store's own recipe (5 epochs), on this device
    cost = json.load(open(f"{store_dir}/comparisons/DIGITS/training_cost.json"))
    assert cost["recipe"]["epochs"] == 5 and cost["device"].startswith("cpu: ")
    assert "full models' recipe" in cost["what"]
    # the 8 full models were trained at once here: their own record is the measurement
    own = json.load(open(f"{store_dir}/full_models/DIGITS/klom_cost.json"))
    assert "the store's 8 full models" in cost["what"] and own["n_models"] == own["at_once"] == 8
    assert cost["seconds_per_model"] == pytest.approx(own["seconds_per_model"])
    unlearn_cost = json.load(open(f"{store_dir}/unlearned/DIGITS/gradient_ascent/forget_set_1/"
                                  "klom_cost.json"))
    assert unlearn_cost["device"] == cost["device"]
    for png in ("p95.png", "cost.png", "protocols.png"):
        assert open(files[png], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_oracle_tuned_is_labelled_optimistic_and_fixed_takes_the_defaults(data, store_dir,
                                                                        loo, tmp_path):
    tuned = C.compare(data, store_dir, SETS, METHODS, protocol="oracle-tuned", budget=2,
                      cost_models=8, n_splits=10, progress=False)
    assert tuned["label"] == C.OPTIMISTIC
    assert all(r["label"] == C.OPTIMISTIC for r in tuned["rows"])
    assert all([c["forget_set"] for c in r["chosen_on"]] == [r["forget_set"]]
               for r in tuned["rows"])
    fixed = C.compare(data, store_dir, SETS, METHODS, protocol="fixed", cost_models=8,
                      n_splits=10, metrics="all", out=tmp_path / "fixed", progress=False)
    for r in fixed["rows"]:
        assert r["settings"] == default_config(r["method"], "digits") and not r["chosen_on"]
        # the other lenses, in every row, with their nulls
        assert 0 <= r["ulira"] <= 1 and r["ulira_low"] <= r["ulira"] <= r["ulira_high"]
        assert 0 <= r["ks_p95"] <= 1 and r["ks_null"] is not None and 0 < r["tow"] <= 1
    for rec in fixed["records"]:  # accuracies from the logits' argmax, as the rows' own
        acc = rec["metrics"]["accuracy"]
        assert acc["basis"] == LOGITS_BASIS
        assert acc["unlearned"]["forget"]["value"] == pytest.approx(rec["accuracy"]["forget"])
        assert acc["unlearned"]["validation"]["value"] == pytest.approx(rec["accuracy"]["test"])
    assert "ulira" in (tmp_path / "fixed" / "results.csv").read_text().splitlines()[0]
    assert "forget ulira" in (tmp_path / "fixed" / "summary.md").read_text()
    assert all(r.get("ulira") is None for r in tuned["rows"])  # KLOM alone by default


def test_one_set_compares_fixed_with_oracle_tuned_and_defaults_carry_their_caveat(data,
                                                                                  store_dir):
    one = C.compare(data, store_dir, [2], ["gradient_ascent"], protocol="oracle-tuned",
                    budget=2, cost_models=0, n_splits=10, progress=False)
    assert set(one["protocols"]) == {"fixed", "oracle-tuned"}  # no "leave-one-out" of nothing
    fixed = C.compare(data, store_dir, [2], ["do_nothing", "gradient_ascent"], protocol="fixed",
                      cost_models=0, n_splits=10, progress=False)
    labels = {(r["method"], r["label"]) for r in fixed["rows"]}
    assert labels == {("do_nothing", ""), ("gradient_ascent", C.DEFAULTS_OPTIMISTIC)}
    assert fixed["label"].startswith("1 of 2 results report defaults tuned")


def test_fewer_oracles_than_2n_shrink_n_with_a_warning(data, store_dir, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(store_dir, root, ignore=shutil.ignore_patterns("unlearned", "cmp-*"))
    train_models(data, root, [8], config=default_config_train("digits", epochs=5, peak_epoch=1),
                 progress=False)  # 9 full models, 16 scoring oracles per set: N = 8
    with pytest.warns(UserWarning, match=r"comparing at N = 8 models per side, not 9: forget "
                                         r"set 1 has 16 scoring oracles.*ids 8 and up"):
        result = C.compare(data, root, [1, 2], ["do_nothing"], cost_models=0, n_splits=10,
                           progress=False)
    assert result["model_ids"] == list(range(8))


def test_a_rerun_does_no_work_and_a_killed_run_is_finished(data, store_dir, loo, monkeypatch):
    calls = []
    real = C.unlearn_store

    def spy(*args, **kwargs):
        run = real(*args, **kwargs)
        calls.append(len(run["written"]))
        return run

    monkeypatch.setattr(C, "unlearn_store", spy)
    monkeypatch.setattr(C, "train_models", lambda *a, **k: pytest.fail("retrained the cost"))
    again = C.compare(data, store_dir, SETS, METHODS, budget=2, cost_models=8, n_splits=10,
                      progress=False)
    assert calls and not any(calls)
    keep = ("method", "forget_set", "group", "p95", "p95_low", "p95_high", "settings")
    assert [{k: r[k] for k in keep} for r in again["rows"]] == [
        {k: r[k] for k in keep} for r in loo["rows"]]
    # as if killed: half the models of one trial folder gone; the rerun redoes just those
    folder = f"{store_dir}/{unlearned_folder('DIGITS', 'gradient_ascent', 2)}"
    for name in __import__("os").listdir(folder):
        if name.startswith(("4__", "5__", "train_logits_4", "val_logits_4")):
            __import__("os").remove(f"{folder}/{name}")
    calls.clear()
    finished = C.compare(data, store_dir, SETS, METHODS, budget=2, cost_models=8, n_splits=10,
                         progress=False)
    assert sum(calls) == 2
    assert [{k: r[k] for k in keep} for r in finished["rows"]] == [
        {k: r[k] for k in keep} for r in loo["rows"]]


def test_selection_prefers_settings_within_the_accuracy_tolerance():
    def trial(name, scores, gaps):
        t = C.Trial("m", {"x": name}, name)
        t.scores = {k: {"score": s, "accuracy_gap": {"validation": g}, "oracle_folder": "o",
                        "folder": name,
                        "oracle_ids": [0], "cost": None}
                    for k, (s, g) in enumerate(zip(scores, gaps), 1)}
        return t

    good, cheat, wreck = (trial("good", [2.0, 2.0, 2.0], [0, 0, 0]),
                          trial("cheat", [9.0, 9.0, 0.5], [0, 0, 0]),
                          trial("wreck", [0.1, 0.1, 0.1], [0.2, 0.2, 0.2]))
    trials = [good, cheat, wreck]
    assert C._choose(trials, [1, 2, 3], 3, "leave-one-out", 0.03)["folder"] == "good"
    assert C._choose(trials, [1, 2, 3], 3, "oracle-tuned", 0.03)["folder"] == "cheat"
    assert C._choose(trials, [1, 2, 3], 3, "oracle-tuned", 1.0)["folder"] == "wreck"
    wreck.scores[1]["score"] = float("nan")  # diverged on a set: never chosen
    assert C._choose(trials, [1, 2, 3], 3, "leave-one-out", 1.0)["folder"] == "good"


@pytest.mark.parametrize("args, message", [
    (["--methods", "do_nothing,nope"], "unknown method 'nope'"),
    (["--forget-sets", "1,9"], "no forget set 9"),
    (["--budget", "0"], "budget must be a positive integer"),
    (["--search", "gradient_ascent.nope=1"], "has no setting 'nope' to search"),
    (["--forget-sets", "1"], "needs at least 2 forget sets"),
    (["--search", "gradient_ascent.lr=abc"], "lr='abc' is not a valid float"),
    (["--search", "scrub.lr=0.1"], "search given for 'scrub', which is not among the methods"),
])
def test_bad_input_is_one_line_before_anything_is_written(store_dir, capsys, args, message):
    before = sorted(str(p) for p in __import__("pathlib").Path(store_dir).rglob("*"))
    base = ["compare", "--dataset", "digits", "--store", store_dir, "--forget-sets", "1,2,3",
            "--methods", "do_nothing,gradient_ascent", "--quiet"]
    assert main(base + args) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert sorted(str(p) for p in __import__("pathlib").Path(store_dir).rglob("*")) == before


def test_too_few_oracles_is_refused(data, tmp_path):
    root = tmp_path / "store"
    train_models(data, root, range(4), progress=False)
    for k in (1, 2):
        train_models(data, root, range(5), forget_set=k, progress=False)
    with pytest.raises(ValueError, match="forget set 1 has 5 scoring oracles"):
        C.compare(data, root, [1, 2], ["do_nothing"], progress=False)
    shutil.rmtree(root)


def test_trial_folders_carry_the_seed_and_prerequisites_are_checked_first(data, store_dir):
    defaults = default_config("gradient_ascent", "digits")
    other = {**defaults, "lr": 0.03}
    names = {C._folder_name(C.Store(store_dir), "DIGITS", SETS, C.Trial("gradient_ascent", c, ""),
                            seed) for c in (other,) for seed in (0, 1)}
    assert len(names) == 2 and all(n.startswith("gradient_ascent.") for n in names)
    before = sorted(str(p) for p in __import__("pathlib").Path(store_dir).rglob("*"))
    with pytest.raises(FileNotFoundError, match="datamodel_matching needs a datamodel"):
        C.compare(data, store_dir, SETS, ["do_nothing", "datamodel_matching"], progress=False)
    with pytest.raises(ValueError, match="cf_k: k=3 is larger than the model's 2 blocks"):
        C.compare(data, store_dir, SETS, ["cf_k"], search={"cf_k": {"k": [3]}}, budget=2,
                  progress=False)
    assert sorted(str(p) for p in __import__("pathlib").Path(store_dir).rglob("*")) == before


def test_training_cost_measured_in_a_temporary_store_when_the_store_has_no_record(
        data, store_dir, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(store_dir, root, ignore=shutil.ignore_patterns("cmp-*", "comparisons"))
    record = root / "full_models" / "DIGITS" / "klom_cost.json"
    # trained one at a time (or in a job array): not what "8 at once" measures
    record.write_text(json.dumps({**json.loads(record.read_text()), "at_once": 1}))
    C.compare(data, root, [1, 2], ["do_nothing"], protocol="fixed", cost_models=8,
              n_splits=10, progress=False)
    cost = json.loads((root / "comparisons" / "DIGITS" / "training_cost.json").read_text())
    assert cost["n_models"] == 8 and "8 models in a temporary store" in cost["what"]
    record.unlink()  # e.g. a Hub snapshot: no record
    C.compare(data, root, [1, 2], ["do_nothing"], protocol="fixed", cost_models=3,
              n_splits=10, progress=False)
    cost = json.loads((root / "comparisons" / "DIGITS" / "training_cost.json").read_text())
    assert cost["n_models"] == 3 and "3 models in a temporary store" in cost["what"]
    assert cost["seconds_per_model"] > 0


def test_costs_timed_on_another_device_are_left_out_with_a_warning(data, store_dir, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(store_dir, root, ignore=shutil.ignore_patterns("cmp-*"))
    C.compare(data, root, [1, 2], ["gradient_ascent"], protocol="fixed", cost_models=8,
              n_splits=10, progress=False)
    cost = root / unlearned_folder("DIGITS", "gradient_ascent", 1) / "klom_cost.json"
    cost.write_text(json.dumps({**json.loads(cost.read_text()), "device": "cpu"}))  # old format
    with pytest.warns(UserWarning, match="no relative cost for gradient_ascent"):
        again = C.compare(data, root, [1, 2], ["gradient_ascent"], protocol="fixed",
                          cost_models=8, n_splits=10, progress=False)
    assert {r["forget_set"] for r in again["rows"] if r["relative_cost"] is None} == {1}


def test_gap_cells_carry_a_sign_only_where_they_do_not_round_to_zero():
    from klom_utils.report import _cell
    from klom_utils.tables import three_decimals

    assert three_decimals(-0.0004) == three_decimals(0.0, signed=True) == "0.000"
    assert three_decimals(0.25) == "0.250" and three_decimals(0.25, signed=True) == "+0.250"
    assert _cell(-0.0003, "validation_accuracy_gap") == "0.000"
    assert _cell(0.0004, "validation_accuracy_gap") == "0.000"
    assert _cell(-0.0102, "validation_accuracy_gap") == "-0.010"
    assert _cell(0.002, "accuracy_gap") == "+0.002"

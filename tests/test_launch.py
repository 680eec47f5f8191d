"""Scale-out: claims, id slices, job arrays (submitit local; SLURM through a stand-in sbatch)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from klom_utils.claims import held_claims
from klom_utils.cli import main
from klom_utils.ids import id_slices
from klom_utils.launch import ArrayOptions, parse_slurm_options, run_array

ROOT = Path(__file__).resolve().parents[1]






def test_array_options_are_checked():
    with pytest.raises(ValueError, match="executor must be one of none, local, slurm"):
        ArrayOptions(executor="pbs")
    with pytest.raises(ValueError, match="4 jobs need an executor"):
        ArrayOptions(jobs=4)
    with pytest.raises(ValueError, match="mem_gb must be positive"):
        ArrayOptions(executor="slurm", mem_gb=0)
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_slurm_options(["account"])
    params = ArrayOptions(executor="slurm", jobs=4, partition="gpu", gpus_per_job=1,
                          slurm_options={"account": "abc"}).submitit_parameters()
    assert params["slurm_partition"] == "gpu" and params["slurm_array_parallelism"] == 4
    assert params["slurm_additional_parameters"] == {"account": "abc"}






def test_local_job_array_runs_every_slice(tmp_path):
    pytest.importorskip("submitit")
    out = run_array(sum, id_slices(range(10), 3), ArrayOptions(executor="local", jobs=3),
                    tmp_path / "logs")
    assert out == [3, 18, 24]
    with pytest.raises(RuntimeError, match="1 of 2 jobs failed; job .*TypeError.*logs"):
        run_array(sum, [[1], ["a"]], ArrayOptions(executor="local", jobs=2), tmp_path / "logs")


def test_slurm_array_through_a_stand_in_sbatch(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(
        f'#!/bin/sh\nfor last; do :; done\ncp "$last" {tmp_path}/job.sbatch\n'
        'echo "Submitted batch job 4242"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    options = ArrayOptions(executor="slurm", jobs=3, partition="gpu", gpus_per_job=1,
                           cpus_per_job=8, mem_gb=32, timeout_min=90,
                           slurm_options={"account": "abc"}, wait=False)
    ids = run_array(len, id_slices(range(10), 3), options, tmp_path / "logs")
    assert ids == ["4242_0", "4242_1", "4242_2"]
    script = (tmp_path / "job.sbatch").read_text()
    for line in ("--array=0-2%3", "--partition=gpu", "--gpus-per-node=1", "--cpus-per-task=8",
                 "--mem=32GB", "--time=90", "--account=abc"):
        assert f"#SBATCH {line}" in script, line


def test_status_lists_complete_partial_missing_and_recipe(tmp_path, capsys):
    from klom_utils.train import train_models

    store = tmp_path / "s"
    train_models("digits", store, [0, 1, 3], device="cpu", progress=False)
    (store / "full_models" / "DIGITS" / "7__val_margins_19.npy").write_bytes(b"")  # partial
    assert main(["status", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "full_models/DIGITS: 3 complete (0-1, 3); partial 7; missing 2, 4-6" in out
    assert '"arch": "digits_mlp"' in out and "forget sets of DIGITS: 1, 2, 3" in out
    assert main(["status", "--store", str(store), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["folders"]["full_models/DIGITS"]["complete"] == [0, 1, 3]
    assert main(["status", "--store", str(tmp_path / "none")]) == 1
    assert "no store at" in capsys.readouterr().err


def test_score_arrays_matches_the_store_record(tmp_path, capsys):
    from klom_utils.evaluate import load_margins, score
    from klom_utils.train import train_models
    from klom_utils.unlearning import unlearn_store

    store = tmp_path / "s"
    train_models("digits", store, range(6), device="cpu", progress=False)
    train_models("digits", store, range(12), forget_set=3, device="cpu", progress=False)
    unlearn_store(store, "digits", 3, "do_nothing", range(6), device="cpu", progress=False)
    record = score(store, "digits", 3, "do_nothing", n_splits=10)
    m = load_margins(store, "digits", 3, "do_nothing", oracle_ids=range(12))
    files = {}
    for name, array in (("u", m.unlearned), ("o", m.oracle), ("f", m.forget)):
        files[name] = tmp_path / f"{name}.npy"
        np.save(files[name], array)
    assert main(["score", "--unlearned", str(files["u"]), "--oracle", str(files["o"]),
                 "--forget", str(files["f"]), "--n-train", str(m.n_train), "--n-splits", "10",
                 "--json", "-"]) == 0
    captured = capsys.readouterr()
    arrays = json.loads(captured.out)  # stdout is the record alone; the table went to stderr
    assert "forget p95 [CI]" in captured.err
    for g in ("forget", "retain", "validation"):
        assert arrays[g]["p95"] == pytest.approx(record[g]["p95"])
        assert arrays[g]["p95_low"] == pytest.approx(record[g]["p95_low"])
    assert arrays["noise_floor"]["n_per_side"] == record["noise_floor"]["n_per_side"] == 6
    assert arrays["noise_floor"]["forget"]["p95"] == pytest.approx(
        record["noise_floor"]["forget"]["p95"])
    # mixing the two forms, or missing parts, is one line
    assert main(["score", "--unlearned", str(files["u"]), "--dataset", "digits"]) == 1
    assert "none of --dataset" in capsys.readouterr().err
    assert main(["score", "--unlearned", str(files["u"]), "--oracle", str(files["o"]),
                 "--forget", str(files["u"]), "--n-train", str(m.n_train)]) == 1
    assert "forget must be a non-empty 1-D array" in capsys.readouterr().err


def test_download_command_through_the_hub_client(tmp_path):
    from hub_standin import HubStandIn

    from klom_utils.layout import full_models_folder
    from klom_utils.store import open_store

    root = tmp_path / "remote"
    remote = open_store(root, create=True)
    import torch

    for i in range(2):
        remote.write_model(full_models_folder("CIFAR10"), i, train_logits=torch.zeros(30, 10),
                           val_logits=torch.zeros(12, 10), train_labels=np.arange(30) % 10,
                           val_labels=np.arange(12) % 10, epoch=23)
    with HubStandIn(root, "royrin/KLOM-models") as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_CACHE": str(tmp_path / "c")}
        env.pop("HF_HUB_OFFLINE", None)
        proc = subprocess.run([sys.executable, "-m", "klom_utils", "download",
                               "full_models/CIFAR10", "--kinds", "logits", "--quiet"],
                              capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "full_models/CIFAR10: 2 models" in proc.stdout


# ---------------------------------------------------------------------------------------------
# Training through the command line: job arrays equal a serial run, concurrent runs share work


def _klom(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "klom_utils", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def _logits(store: Path, folder: str) -> dict:
    import torch

    return {p.name: torch.load(p, weights_only=True).numpy()
            for p in sorted((store / folder).glob("*_logits_*.pt"))}


@pytest.mark.slow
def test_local_job_array_equals_a_serial_run(tmp_path, capsys):
    pytest.importorskip("submitit")
    serial, array = tmp_path / "serial", tmp_path / "array"
    assert main(["train", "--dataset", "digits", "--store", str(serial), "--models", "0-11",
                 "--device", "cpu", "--stack", "4", "--quiet"]) == 0
    assert main(["train", "--dataset", "digits", "--store", str(array), "--models", "0-11",
                 "--device", "cpu", "--stack", "4", "--quiet", "--executor", "local",
                 "--jobs", "4"]) == 0
    out = capsys.readouterr()
    assert "trained 12, 0 already in" in out.out
    assert out.err.count("train job ") == 4 and "train job 4/4 (ids 9-11): 3 done" in out.err
    a, b = _logits(serial, "full_models/DIGITS"), _logits(array, "full_models/DIGITS")
    assert len(a) == 24 and a.keys() == b.keys()
    for name in a:  # bit-identical logits, whichever job trained a model
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert list((array / "logs" / "train").iterdir())  # the jobs' logs are in the store


@pytest.mark.slow
def test_concurrent_runs_train_every_model_once(tmp_path):
    store = str(tmp_path / "s")
    args = ["train", "--dataset", "digits", "--store", store, "--models", "0-59",
            "--device", "cpu", "--stack", "5", "--quiet"]
    main(["train", "--dataset", "digits", "--store", store, "--models", "0", "--device", "cpu",
          "--quiet"])  # the store and its recipe exist before the race
    runs = [_klom(*args), _klom(*args)]
    outs = [run.communicate(timeout=300) for run in runs]
    trained = []
    for (out, err), run in zip(outs, runs):
        assert run.returncode == 0, err
        match = re.search(r"trained (\d+), (\d+) already in", out)
        trained.append(int(match.group(1)))
    assert sum(trained) == 59, trained  # model 0 was there; the 59 others once in all
    from klom_utils.store import open_store

    assert open_store(store).complete_model_ids("full_models/DIGITS") == list(range(60))


@pytest.mark.slow
def test_a_killed_run_is_finished_by_the_next(tmp_path):
    store = str(tmp_path / "s")
    args = ["train", "--dataset", "digits", "--store", store, "--models", "0-39",
            "--device", "cpu", "--stack", "1", "--progress"]
    run = _klom(*args)
    deadline = time.time() + 120
    folder = tmp_path / "s" / "full_models" / "DIGITS"
    while time.time() < deadline and len(list(folder.glob("val_logits_*.pt"))) < 3:
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.communicate()
    from klom_utils.store import open_store

    before = open_store(store).complete_model_ids("full_models/DIGITS")
    assert 3 <= len(before) < 40
    assert held_claims(store, "full_models/DIGITS") == []  # the dead run holds nothing
    assert main(args[:-1] + ["--quiet"]) == 0
    assert open_store(store).complete_model_ids("full_models/DIGITS") == list(range(40))


def test_cli_no_wait_prints_the_slurm_job_ids_and_plugins_come_from_the_working_dir(
        tmp_path, monkeypatch, capsys):
    pytest.importorskip("submitit")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text('#!/bin/sh\necho "Submitted batch job 77"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    store = tmp_path / "s"
    assert main(["train", "--dataset", "digits", "--store", str(store), "--models", "0-9",
                 "--executor", "slurm", "--jobs", "2", "--no-wait", "--partition", "p"]) == 0
    assert "submitted 2 jobs (slurm): 77_0, 77_1" in capsys.readouterr().out
    # a plugin module in the working directory registers a method
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_plugin_xyz.py").write_text(
        "from klom_utils.unlearn import register_method\n"
        "@register_method('plugin_nothing_xyz')\n"
        "def plugin_nothing_xyz(model, data, config, *, generator):\n    return model\n")
    assert main(["unlearn", "--dataset", "digits", "--store", str(store), "--forget-set", "1",
                 "--method", "plugin_nothing_xyz", "--models", "0", "--plugin",
                 "my_plugin_xyz"]) == 1  # no full models yet: the method itself was found
    assert "no full models" in capsys.readouterr().err
    assert main(["unlearn", "--dataset", "digits", "--store", str(store), "--forget-set", "1",
                 "--method", "x", "--models", "0", "--plugin", "no_such_module_xyz"]) == 1
    assert "plugin no_such_module_xyz: cannot import it" in capsys.readouterr().err

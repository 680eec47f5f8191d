"""The ``klom`` command line."""

import subprocess
import sys

import numpy as np
import pytest

from klom_utils import cli
from klom_utils.store import open_store

# ------------------------------------------------------------------------------------- train

def test_parser_has_subcommands():
    parser = cli.build_parser()
    args = parser.parse_args(["train", "--dataset", "digits", "--store", "s", "--models", "0-9"])
    assert args.command == "train" and args.func is cli.cmd_train
    assert args.forget_set is None and args.device == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--dataset", "mnist", "--store", "s", "--models", "0"])
    with pytest.raises(SystemExit):
        parser.parse_args([])


def test_klom_train_digits_then_resume(tmp_path, capsys):
    store = tmp_path / "store"
    argv = ["train", "--dataset", "digits", "--store", str(store), "--models", "0-2",
            "--epochs", "2", "--quiet"]
    assert cli.main(argv) == 0
    assert "trained 3, 0 already" in capsys.readouterr().out
    assert cli.main(argv[:6] + ["0-3"] + argv[7:]) == 0
    assert "trained 1, 3 already" in capsys.readouterr().out
    assert cli.main(argv + ["--forget-set", "1"]) == 0
    s = open_store(store)
    assert s.model_ids("full_models/DIGITS") == [0, 1, 2, 3]
    assert s.model_ids("oracles/DIGITS/forget_set_1") == [0, 1, 2]
    assert s.margins("oracles/DIGITS/forget_set_1", "val").shape == (3, 355)
    assert np.isfinite(s.margins("full_models/DIGITS", "train")).all()


def test_klom_train_errors_are_one_line(tmp_path, capsys):
    store = str(tmp_path / "store")
    base = ["train", "--dataset", "digits", "--store", store, "--epochs", "1", "--quiet"]
    assert cli.main(base + ["--models", "0", "--forget-set", "42"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("klom train: error:") and "no forget set 42" in err
    assert cli.main(base + ["--models", "9-3"]) == 1
    assert "model range '9-3'" in capsys.readouterr().err
    assert cli.main(base + ["--models", "0", "--stack", "zero"]) == 1
    assert "--stack" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["train", "--dataset", "digits", "--store", str(blocker / "s"),
                     "--models", "0", "--quiet"]) == 1
    assert "cannot create" in capsys.readouterr().err


def test_python_dash_m_runs_the_cli(tmp_path):
    out = subprocess.run([sys.executable, "-m", "klom_utils", "train", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "--forget-set K" in out and "--models I-J" in out

"""`klom unlearn` and `klom score` on a small store built in the tests."""

import json

from test_unlearn import FORGET_SET, N_MODELS, digits_data, digits_store  # noqa: F401

from klom_utils.cli import main
from klom_utils.layout import unlearned_folder


def _common(store):
    return ["--dataset", "digits", "--store", str(store.root), "--forget-set", str(FORGET_SET)]


def test_unlearn_then_score_with_json(digits_store, tmp_path, capsys):
    args = _common(digits_store)
    assert main(["unlearn", *args, "--method", "gradient_descent", "--models", f"0-{N_MODELS - 1}",
                 "--config", "epochs=1", "lr=0.02", "--name", "gd_cli", "--quiet"]) == 0
    assert "unlearned 16, 0 already in" in capsys.readouterr().out
    folder = unlearned_folder("DIGITS", "gd_cli", FORGET_SET)
    record = digits_store.read_json(f"{folder}/klom_unlearn.json")
    assert record["config"]["epochs"] == 1 and record["config"]["lr"] == 0.02
    out = tmp_path / "out" / "gd.json"
    assert main(["score", *args, "--method", "gd_cli", "--json", str(out), "--n-splits", "10",
                 "--bins", "5", "--level", "0.9"]) == 0
    captured = capsys.readouterr()
    text = captured.out
    assert "gd_cli" in text and "noise floor" in text and "[90% interval]" in text
    result = json.loads(out.read_text())
    for group in ("forget", "retain", "validation"):
        assert {"p95", "p99", "mean", "p95_low", "p95_high"} <= set(result[group])
    assert result["n_unlearned"] == N_MODELS and result["klom"]["bins"] == 5
    assert result["interval"]["level"] == 0.9 and result["interval"]["n_splits"] == 10
    # diagnostics as one-line warnings on stderr: 16 models per side is a small N
    warnings = captured.err.splitlines()
    assert any(w.startswith("klom score: warning: small N: 16 unlearned models") for w in warnings)
    assert len(warnings) == len(result["diagnostics"]["warnings"])


def test_unlearn_resumes_and_reports_bad_input(digits_store, capsys):
    args = _common(digits_store)
    base = ["unlearn", *args, "--method", "do_nothing", "--name", "nothing_cli", "--quiet"]
    assert main(base + ["--models", "0-1"]) == 0
    capsys.readouterr()
    assert main(base + ["--models", "0-2"]) == 0
    assert "unlearned 1, 2 already in" in capsys.readouterr().out
    assert main(["unlearn", *args, "--method", "scrub", "--models", "0", "--config",
                 "learning_rate=1"]) == 1
    err = capsys.readouterr().err
    assert "no config key 'learning_rate'" in err and "'lr'" in err
    assert main(["unlearn", *args, "--method", "unknown", "--models", "0"]) == 1
    assert "unknown method 'unknown'" in capsys.readouterr().err
    assert main(["score", *args, "--method", "not_there"]) == 1
    assert "no models of method 'not_there'" in capsys.readouterr().err


def test_plugin_methods_from_the_command_line(digits_store, tmp_path, monkeypatch, capsys):
    (tmp_path / "my_methods.py").write_text(
        "from klom_utils.unlearn import register_method, do_nothing\n"
        "@register_method('cli_plugin', {'strength': 1.0}, replace=True)\n"
        "def cli_plugin(model, data, config, *, generator):\n"
        "    return do_nothing(model, data, config, generator=generator)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from klom_utils.unlearning import METHODS

    try:
        assert main(["unlearn", *_common(digits_store), "--method", "cli_plugin", "--models",
                     "0-3", "--plugin", "my_methods", "--config", "strength=0.5", "--quiet"]) == 0
        assert main(["score", *_common(digits_store), "--method", "cli_plugin", "--n-splits",
                     "10"]) == 0
        assert "cli_plugin" in capsys.readouterr().out
    finally:
        METHODS.pop("cli_plugin", None)

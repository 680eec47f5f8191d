"""The augmented recipe end to end on DIGITS: train, unlearn, score, from the command line; refused
against oracles of the plain recipe, naming the difference."""

import json

from klom_utils import open_store
from klom_utils.cli import main


def test_augmented_models_are_trained_unlearned_and_scored(tmp_path, capsys):
    store = str(tmp_path / "store")
    common = ["--dataset", "digits", "--store", store]
    fast = ["--epochs", "1", "--quiet"]
    assert main(["train", *common, "--models", "0-3", "--augment", *fast]) == 0
    assert main(["train", *common, "--models", "0-7", "--forget-set", "1", *fast]) == 0  # plain
    unlearn = ["unlearn", *common, "--forget-set", "1", "--models", "0-3", "--quiet", "--augment"]
    assert main([*unlearn, "--method", "gradient_descent", "--config", "epochs=1"]) == 0
    s = open_store(store)
    folder = "unlearned/DIGITS_augmented/gradient_descent/forget_set_1"
    assert s.complete_model_ids(folder) == list(range(4))
    assert s.read_json(f"{folder}/klom_unlearn.json")["augment"]
    capsys.readouterr()

    score = ["score", *common, "--forget-set", "1", "--method", "gradient_descent", "--augment",
             "--n-splits", "10"]
    assert main(score) == 1  # only plain oracles so far
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "oracles/DIGITS_augmented/forget_set_1" in err and "without augmentation" in err
    assert "klom train --dataset digits --augment --forget-set 1" in err

    assert main(["train", *common, "--models", "0-7", "--forget-set", "1", "--augment", *fast]) == 0
    out = tmp_path / "r.json"
    assert main([*score, "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["dataset"] == "DIGITS_augmented" and record["n_per_side"] == 4
    assert record["noise_floor"]["n_per_side"] == 4
    assert set(record["accuracy"]) == {"forget", "retain", "test"}
    # the plain method folder does not exist: the augmented one is never read as plain
    assert main(["score", *common, "--forget-set", "1", "--method", "gradient_descent"]) == 1

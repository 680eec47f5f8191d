"""The augmented recipe (``augment=True``, ``klom train --augment``): flips and translations
per model, deterministic per model id, recorded, in ``<D>_augmented`` folders; margins on
un-augmented inputs."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from klom_utils.augment import augment_batch, augment_generators
from klom_utils.cli import main
from klom_utils.data import load_digits
from klom_utils.ids import model_seed
from klom_utils.layout import TRAIN_RECORD as CONFIG_FILE
from klom_utils.models import load_model
from klom_utils.stack import init_state_dict
from klom_utils.store import open_store
from klom_utils.train import default_config, fit, fit_reference, train_models


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_augment_batch_flips_and_translates_exactly():
    x = torch.arange(2 * 30 * 3 * 32 * 32, dtype=torch.float32).view(2, 30, 3, 32, 32)
    fill = torch.tensor([-1.0, -2.0, -3.0]).view(1, 3, 1, 1)
    out = augment_batch(x, augment_generators([11, 12]), fill)
    assert out.shape == x.shape
    for m, g in enumerate(augment_generators([11, 12])):  # the same draws, one model at a time
        flip = torch.rand(30, generator=g) < 0.5
        shift = torch.randint(-2, 3, (30, 2), generator=g)
        assert 0 < int(flip.sum()) < 30 and set(shift.unique().tolist()) == {-2, -1, 0, 1, 2}
        for i in range(30):
            img = x[m, i].flip(-1) if flip[i] else x[m, i]
            padded = torch.cat([F.pad(img[c:c + 1], (2, 2, 2, 2), value=float(fill[0, c]))
                                for c in range(3)])
            dy, dx = (int(v) for v in shift[i])
            assert torch.equal(out[m, i], padded[:, 2 + dy:34 + dy, 2 + dx:34 + dx])
    # a model's draws do not depend on the others of its stack
    alone = augment_batch(x[1:], augment_generators([12]), fill)
    assert torch.equal(alone[0], out[1])


@pytest.mark.slow
def test_augmented_training_is_deterministic_per_model(digits):
    config = default_config("digits", augment=True, epochs=1, peak_epoch=0.5)
    ids = [0, 1, 2]
    inits = [init_state_dict("digits_mlp", model_seed("DIGITS", "full", i, "init"))
             for i in ids]
    orders = [model_seed("DIGITS", "full", i, "order") for i in ids]
    train = np.arange(digits.n_train)
    sds, train_logits, val_logits = fit(digits, train, inits, orders, config, progress=False)
    sd1, train1, val1 = fit(digits, train, inits[1:2], orders[1:2], config, progress=False)
    for k in sd1[0]:  # bit for bit, alone or in a stack of 3
        assert torch.equal(sds[1][k], sd1[0][k]), k
    assert torch.equal(train_logits[1], train1[0]) and torch.equal(val_logits[1], val1[0])
    plain = fit(digits, train, inits[1:2], orders[1:2],
                default_config("digits", epochs=1, peak_epoch=0.5), progress=False)
    assert not torch.equal(plain[1][0], train1[0])  # augmentation changed the model
    # the plain one-model loop draws the same augmentations
    ref_sd, ref_train, _ = fit_reference(digits, train, inits[1], orders[1], config)
    torch.testing.assert_close(ref_train, train1[0], rtol=1e-4, atol=1e-4)


def test_augmented_models_are_recorded_and_kept_apart(digits, tmp_path, capsys):
    store = open_store(tmp_path / "store", create=True)
    config = default_config("digits", augment=True, epochs=2, peak_epoch=0.4, stack=2)
    assert train_models(digits, store, [0, 1], config=config, progress=False) == [0, 1]
    folder = "full_models/DIGITS_augmented"
    record = store.read_json(f"{folder}/{CONFIG_FILE}")
    assert record["augment"] is True and record["dataset"] == "DIGITS"
    # a plain recipe's record differs by exactly the flag: the store refuses to mix them
    plain = {**record}
    del plain["augment"]
    assert store.record_or_compare(f"{folder}/{CONFIG_FILE}", plain) == [
        "augment: store has True, asked None"]
    # margins on un-augmented inputs, eval mode: the stored logits are the model's outputs
    model = load_model(store.state_dict(folder, 1), arch="auto")
    with torch.no_grad():
        torch.testing.assert_close(model(digits.normalize(digits.train_x)),
                                   store.logits(folder, "train", 1))
    # the command line (peak at 4/20 of the epochs) trains the same models: none left to do
    args = ["train", "--dataset", "digits", "--store", str(store.root), "--models", "0-1",
            "--epochs", "2", "--augment", "--device", "cpu", "--quiet"]
    assert main(args) == 0
    assert "trained 0, 2 already in" in capsys.readouterr().out
    assert not store.path("full_models/DIGITS").exists()
    with pytest.raises(ValueError, match="augment must be True or False, got 'yes'"):
        default_config("digits", augment="yes")


def test_do_nothing_klom_of_augmented_models_uses_augmented_oracles(digits, tmp_path):
    from klom_utils.evaluate import do_nothing_klom

    store = open_store(tmp_path / "store", create=True)
    config = default_config("digits", augment=True, epochs=1, peak_epoch=0.2)
    train_models(digits, store, [0, 1, 2], config=config, progress=False)
    train_models(digits, store, [0, 1, 2], config=default_config("digits", epochs=1,
                                                                 peak_epoch=0.2),
                 forget_set=1, progress=False)  # plain oracles only: never used for them
    with pytest.raises(FileNotFoundError, match="no oracles of DIGITS_augmented forget set 1"):
        do_nothing_klom(store, "digits_augmented", 1)
    train_models(digits, store, [0, 1, 2], config=config, forget_set=1, progress=False)
    r = do_nothing_klom(store, "digits_augmented", 1, n_splits=10)
    assert r["dataset"] == "DIGITS_augmented" and r["forget_size"] == 10
    assert r["folders"] == {"full": "full_models/DIGITS_augmented",
                            "oracles": "oracles/DIGITS_augmented/forget_set_1"}
    with pytest.raises(FileNotFoundError, match="has no 'full_models/DIGITS'"):
        do_nothing_klom(store, "digits", 1)  # the plain oracles have no plain originals here

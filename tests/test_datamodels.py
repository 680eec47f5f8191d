"""Datamodels: estimators, subsets, the memory-mapped loader, and both methods end to end."""

import json

import numpy as np
import pytest
import torch
from test_unlearn import FORGET_SET, digits_data, digits_store  # noqa: F401

from klom_utils import datamodels as DM
from klom_utils.cli import main
from klom_utils.evaluate import score
from klom_utils.layout import full_models_folder, unlearned_folder
from klom_utils.unlearning import Outputs, UnlearnData, datamodel_direct, unlearn_store

N_SUBSET = 24


def _planted(m=600, n_train=30, n_ex=12, c=3, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 0.5, (n_train, n_ex, c))
    masks = rng.random((m, n_train)) < 0.5
    logits = (rng.normal(0, 1, (n_ex, c)) + np.einsum("mi,ixc->mxc", masks, theta)
              + rng.normal(0, noise, (m, n_ex, c)))
    return masks, logits.astype(np.float32), theta


def test_estimators_recover_a_planted_linear_datamodel():
    masks, logits, theta = _planted()
    for estimator, tol in (("regression", 0.05), ("difference", 0.15)):
        est = DM.estimate_datamodel(masks, logits, estimator=estimator, ridge=0.001)
        assert est.shape == theta.shape and est.dtype == np.float32
        assert np.corrcoef(est.ravel(), theta.ravel())[0, 1] > 0.97, estimator
        assert np.sqrt(np.mean((est - theta) ** 2)) < tol, estimator
    # the shift of removing a set is minus the sum of its rows
    np.testing.assert_allclose(DM.forget_shift(theta[[1, 4]]), -(theta[1] + theta[4]),
                               rtol=1e-5, atol=1e-6)


def test_estimator_errors():
    masks, logits, _ = _planted(m=20)
    with pytest.raises(ValueError, match="estimator='ols'"):
        DM.estimate_datamodel(masks, logits, estimator="ols")
    with pytest.raises(ValueError, match="ridge must be a finite number > 0"):
        DM.estimate_datamodel(masks, logits, ridge=0)
    with pytest.raises(ValueError, match="share M >= 2"):
        DM.estimate_datamodel(masks[:5], logits)
    masks[:, 3] = True
    with pytest.raises(ValueError, match="train example 3 is in every subset or in none"):
        DM.estimate_datamodel(masks, logits, estimator="difference")


def test_noise_of_the_predicted_shift_is_calibrated():
    """The residual variance recovers the planted noise, and the predicted variance of a
    removed set's shift matches its spread over fresh noise draws (same masks)."""
    sigma, rows = 0.3, [1, 4, 7, 9]
    masks, _, theta = _planted(m=400, noise=0.0)
    rng = np.random.default_rng(5)
    clean = np.einsum("mi,ixc->mxc", masks, theta)
    shifts, noise = [], None
    for _ in range(60):
        logits = (clean + rng.normal(0, sigma, clean.shape)).astype(np.float32)
        est, noise = DM.fit_datamodel(masks, logits, ridge=0.01)
        shifts.append(DM.forget_shift(est[rows]))
    assert abs(np.sqrt(noise.residual_var.mean()) / sigma - 1) < 0.1
    predicted = np.sqrt(noise.shift_variance(rows).mean())
    assert abs(np.std(shifts, axis=0).mean() / predicted - 1) < 0.15
    # the estimate is computed in blocks of outputs: same as the closed form at once
    x = masks - masks.mean(0)
    y = logits.reshape(len(masks), -1).astype(np.float64)
    closed = np.linalg.solve(x.T @ x + 0.01 * len(x) * np.eye(x.shape[1]),
                             x.T @ (y - y.mean(0)))
    np.testing.assert_allclose(est.reshape(len(theta), -1), closed, rtol=1e-4, atol=1e-5)


def test_shrink_shift_keeps_signal_and_drops_noise():
    shift = np.array([[3.0, 0.5, -2.0, 0.0]])
    var = np.array([[1.0, 1.0, 1.0, 1.0]])
    np.testing.assert_allclose(DM.shrink_shift(shift, var),
                               [[3.0 - 1 / 3, 0.0, -2.0 + 0.5, 0.0]], rtol=1e-6)
    np.testing.assert_array_equal(DM.shrink_shift(shift, np.zeros_like(var)), shift)
    with pytest.raises(ValueError, match="same shape"):
        DM.shrink_shift(shift, var[:, :2])
    with pytest.raises(ValueError, match="finite and >= 0"):
        DM.shrink_shift(shift, -var)
    # too few models to leave residual degrees of freedom: no noise, nothing to shrink by
    masks, logits, _ = _planted(m=12)
    assert DM.fit_datamodel(masks, logits, estimator="difference")[1] is None


def test_noise_file_is_written_checked_and_removed(tmp_path):
    from klom_utils.files import CorruptFileError
    from klom_utils.store import open_store

    store = open_store(tmp_path / "s", create=True)
    masks, logits, _ = _planted(m=200)
    theta, noise = DM.fit_datamodel(masks, logits)
    path = store.path(DM.save_datamodel(store, "TOY", theta, {"n": 1}, noise))
    assert DM.noise_path(path).name == "datamodel_noise.npz"
    np.testing.assert_array_equal(DM.load_datamodel_noise(path).coef_cov, noise.coef_cov)
    shrunk = DM.predicted_shift(path, [0, 2])
    raw = DM.predicted_shift(path, [0, 2], shrink=False)
    np.testing.assert_allclose(raw, DM.forget_shift(theta[[0, 2]]), atol=2e-3)  # float16 file
    np.testing.assert_allclose(shrunk, DM.shrink_shift(raw, noise.shift_variance([0, 2])))
    other = DM.DatamodelNoise(noise.residual_var[:3], noise.coef_cov)
    DM.save_datamodel(store, "TOY", theta, {}, other)
    with pytest.raises(ValueError, match="does not belong to"):
        DM.predicted_shift(path, [0])
    DM.noise_path(path).write_bytes(b"not a zip")
    with pytest.raises(CorruptFileError, match="datamodel_noise.npz"):
        DM.predicted_shift(path, [0])
    DM.save_datamodel(store, "TOY", theta, {}, None)  # a datamodel without noise: none stale
    assert not DM.noise_path(path).exists() and DM.load_datamodel_noise(path) is None


def test_subset_indices_are_deterministic_and_sized():
    a = DM.subset_indices("DIGITS", 1442, 7, 0.5)
    np.testing.assert_array_equal(a, DM.subset_indices("DIGITS", 1442, 7, 0.5))
    assert len(a) == 721 and np.all(np.diff(a) > 0)
    assert not np.array_equal(a, DM.subset_indices("DIGITS", 1442, 8, 0.5))
    assert not np.array_equal(a, DM.subset_indices("DIGITS", 1442, 7, 0.5, seed=1))
    with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 1\), got 1.5"):
        DM.subset_indices("DIGITS", 1442, 7, 1.5)


def test_loader_reads_only_the_rows_asked_for(tmp_path):
    """A raw float16 file of 4 GiB (sparse: nothing but two rows was ever written) is read
    row by row; a .npy file the same way."""
    shape = (20_000, 10_000, 10)  # 2 bytes each: 4 GiB
    raw = tmp_path / "theta.f16"
    with open(raw, "wb") as f:
        f.truncate(int(np.prod(shape)) * 2)
    mm = np.memmap(raw, dtype=np.float16, mode="r+", shape=shape)
    mm[17] = 1.5
    mm[19_999, 3] = -2.0
    mm.flush()
    del mm
    rows = DM.load_datamodel_rows(raw, [19_999, 17], shape=shape)
    assert rows.shape == (2, 10_000, 10) and rows.dtype == np.float32
    assert (rows[1] == 1.5).all() and (rows[0, 3] == -2.0).all() and (rows[0, 4] == 0).all()
    small = np.arange(4 * 3 * 2, dtype=np.float16).reshape(4, 3, 2)
    np.save(tmp_path / "theta.npy", small)
    np.testing.assert_array_equal(DM.load_datamodel_rows(tmp_path / "theta.npy", [2, 0]),
                                  small[[2, 0]].astype(np.float32))
    with pytest.raises(ValueError, match=r"rows must lie in \[0, 4\)"):
        DM.load_datamodel_rows(tmp_path / "theta.npy", [4])
    with pytest.raises(ValueError, match="needs 96"):
        DM.load_datamodel_rows(raw, [0], shape=(4, 3, 4))
    with pytest.raises(FileNotFoundError, match="no datamodel file"):
        DM.load_datamodel_rows(tmp_path / "nope.npy", [0])


def test_fit_with_one_subset_per_model_equals_training_each_alone(digits_data):
    from klom_utils.stack import init_state_dict
    from klom_utils.train import default_config, fit

    config = default_config("digits", epochs=2, peak_epoch=1)
    subsets = np.stack([DM.subset_indices("DIGITS", digits_data.n_train, i, 0.5)
                        for i in range(3)])
    inits = [init_state_dict("digits_mlp", 10 + i) for i in range(3)]
    _, together, _ = fit(digits_data, subsets, inits, [1, 2, 3], config, progress=False)
    for j in range(3):
        _, alone, _ = fit(digits_data, subsets[j], inits[j:j + 1], [j + 1], config,
                          progress=False)
        torch.testing.assert_close(together[j], alone[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="2 rows of train indices for 3 models"):
        fit(digits_data, subsets[:2], inits, [1, 2, 3], config, progress=False)


@pytest.fixture(scope="module")
def datamodel(digits_store, digits_data):
    return DM.build_datamodel(digits_data, digits_store, range(N_SUBSET), progress=False)


def test_build_datamodel_is_resumable_and_recorded(digits_store, digits_data, datamodel):
    assert datamodel["trained"] == list(range(N_SUBSET)) and datamodel["n_models"] == N_SUBSET
    theta = np.load(digits_store.path(datamodel["path"]))
    n_ex = digits_data.n_train + digits_data.n_val
    assert theta.shape == (digits_data.n_train, n_ex, 10) and theta.dtype == np.float16
    about = DM.datamodel_about(digits_store.path(datamodel["path"]))
    assert about["estimator"] == "regression" and about["n_models"] == N_SUBSET
    again = DM.build_datamodel(digits_data, digits_store, range(N_SUBSET), progress=False)
    assert again["trained"] == []  # the datamodel from the files = the one from memory
    np.testing.assert_array_equal(np.load(digits_store.path(again["path"])), theta)
    with pytest.raises(ValueError, match="trained differently"):
        DM.train_subset_models(digits_data, digits_store, [0], fraction=0.3, progress=False)
    masks, logits = DM.load_subset_runs(digits_store, "DIGITS", digits_data.n_train)
    assert masks.shape == (N_SUBSET, digits_data.n_train) and masks.sum(1).tolist() == [
        721] * N_SUBSET
    assert logits.shape == (N_SUBSET, n_ex, 10)


def test_both_methods_end_to_end(digits_store, digits_data, datamodel):
    ids = range(4)
    for name in ("datamodel_matching", "datamodel_direct"):
        run = unlearn_store(digits_store, digits_data, FORGET_SET, name, ids, progress=False)
        assert run["written"] == list(ids)
        record = digits_store.read_json(
            f"{unlearned_folder('DIGITS', name, FORGET_SET)}/klom_unlearn.json")
        assert record["oracle_ids"] is None  # no oracle used: none is excluded from scoring
        assert record["datamodel"]["n_models"] == N_SUBSET
        result = score(digits_store, digits_data, FORGET_SET, name, n_splits=10, bins=5)
        assert result["n_unlearned"] == 4 and result["accuracy"]["test"] > 0.9
    # direct: the originals' logits plus the predicted (shrunk) shift, exactly
    forget = digits_store.forget_set("DIGITS", FORGET_SET)
    path = digits_store.path(datamodel["path"])
    raw = DM.forget_shift(DM.load_datamodel_rows(path, forget))
    shrunk = DM.predicted_shift(path, forget)
    assert record["datamodel"]["shrunk"] and datamodel["noise"]
    assert 0 < np.abs(shrunk).sum() < np.abs(raw).sum()
    original = digits_store.logits(full_models_folder("DIGITS"), "train", 2).numpy()
    for name, config, shift in (("datamodel_direct", None, shrunk),
                                ("direct_raw", {"shrink": False}, raw)):
        unlearn_store(digits_store, digits_data, FORGET_SET, "datamodel_direct", [2],
                      name=name, config=config, progress=False)
        direct = digits_store.logits(unlearned_folder("DIGITS", name, FORGET_SET),
                                     "train", 2).numpy()
        np.testing.assert_allclose(direct, original + shift[:digits_data.n_train], atol=1e-4)


def test_methods_need_a_datamodel(tmp_path, digits_data):
    data = UnlearnData.from_dataset(digits_data, np.arange(5))
    with pytest.raises(ValueError, match="datamodel_direct needs a datamodel"):
        datamodel_direct(torch.nn.Linear(64, 10), data, {}, generator=None)
    from klom_utils.train import train_models

    train_models(digits_data, tmp_path, [0], progress=False)
    with pytest.raises(FileNotFoundError, match="needs a datamodel: none at"):
        unlearn_store(tmp_path, digits_data, 1, "datamodel_matching", [0], progress=False)
    shift = np.zeros((digits_data.n_train + digits_data.n_val, 10), np.float32)
    full = UnlearnData.from_dataset(digits_data, np.arange(5), datamodel_shift=shift)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    out = datamodel_direct(model, full, {}, generator=None)
    assert isinstance(out, Outputs) and out.val_logits.shape == (digits_data.n_val, 10)


def test_cli_datamodels(digits_store, datamodel, capsys):
    assert main(["datamodels", "--dataset", "digits", "--store", str(digits_store.root),
                 "--models", f"0-{N_SUBSET - 1}", "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"digits datamodel from {N_SUBSET} subset models (trained 0 now")
    assert any(line.strip().startswith(f"forget set {FORGET_SET}, predicted vs actual")
               and "forget corr" in line for line in out)
    assert main(["datamodels", "--dataset", "digits", "--store", str(digits_store.root),
                 "--fraction", "2"]) == 1
    assert "fraction must be a number in (0, 1), got 2.0" in capsys.readouterr().err
    assert main(["datamodels", "--dataset", "digits", "--store", str(digits_store.root),
                 "--estimator", "difference", "--ridge", "0.5"]) == 1
    err = capsys.readouterr().err
    assert "--ridge 0.5 applies to --estimator regression only" in err and len(
        err.strip().splitlines()) == 1
    json.dumps(datamodel)  # the summary is JSON-ready


def test_datamodel_matching_moves_the_weights_deterministically(digits_data):
    from klom_utils.models import DigitsMLP
    from klom_utils.unlearning import default_config, get_method, model_generator

    rng = np.random.default_rng(0)
    shift = rng.normal(0, 1, (digits_data.n_train + digits_data.n_val, 10)).astype(np.float32)
    data = UnlearnData.from_dataset(digits_data, np.arange(20), datamodel_shift=shift)
    torch.manual_seed(0)
    model = DigitsMLP()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    spec = get_method("datamodel_matching")
    assert spec.needs_datamodel and not spec.needs_oracles
    config = {**default_config("datamodel_matching", "digits"), "epochs": 2}
    runs = [spec(model, data, dict(config), generator=model_generator(
        3, dataset="DIGITS", forget_set=1, method=spec.name)) for _ in range(2)]
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)  # the original is untouched
    changed = [k for k, v in runs[0].state_dict().items() if not torch.equal(v, before[k])]
    assert changed == list(before)  # every tensor moved
    for k, v in runs[0].state_dict().items():
        torch.testing.assert_close(v, runs[1].state_dict()[k], rtol=0, atol=0)


def test_cli_unlearn_with_a_datamodel_file(digits_store, datamodel, tmp_path, capsys):
    theta = np.load(digits_store.path(datamodel["path"]))
    np.save(tmp_path / "theta.npy", np.zeros_like(theta))  # a datamodel that predicts nothing
    args = ["unlearn", "--dataset", "digits", "--store", str(digits_store.root), "--forget-set",
            str(FORGET_SET), "--method", "datamodel_direct", "--models", "0-1", "--name",
            "direct_zero", "--datamodel", str(tmp_path / "theta.npy"), "--quiet"]
    assert main(args) == 0
    same = digits_store.logits(unlearned_folder("DIGITS", "direct_zero", FORGET_SET), "val", 1)
    original = digits_store.logits(full_models_folder("DIGITS"), "val", 1)
    torch.testing.assert_close(same, original)  # zero shift: the originals' outputs
    capsys.readouterr()
    assert main(args[:-3] + ["--datamodel", str(tmp_path / "missing.npy")]) == 1
    assert "needs a datamodel: none at" in capsys.readouterr().err


def test_cifar10_sized_datamodels_are_not_estimated_in_memory(tmp_path):
    from klom_utils.data import TensorDataset

    def split(n):
        return torch.zeros(n, 1, 1, 1, dtype=torch.uint8), torch.zeros(n, dtype=torch.long)

    (tx, ty), (vx, vy) = split(50_000), split(10_000)
    data = TensorDataset(name="CIFAR10", train_x=tx, train_y=ty, val_x=vx, val_y=vy,
                         classes=tuple("0123456789"), mean=(0.0,), std=(1.0,), scale=1.0)
    for dataset in (data, "cifar10"):  # by name: refused before any download
        with pytest.raises(ValueError, match=r"112 GiB in float32\) is too large to estimate"):
            DM.build_datamodel(dataset, tmp_path / "store", range(3), progress=False)
    assert not (tmp_path / "store").exists()  # nothing written


def test_inputs_are_checked_before_anything_is_written(digits_store, digits_data, datamodel,
                                                         tmp_path):
    with pytest.raises(ValueError, match="ridge must be a finite number > 0, got 0"):
        DM.build_datamodel(digits_data, tmp_path / "s", range(2), ridge=0, progress=False)
    assert not (tmp_path / "s").exists()
    with pytest.raises(FileNotFoundError, match=r"lacks subset models \[9999\]"):
        DM.load_subset_runs(digits_store, "DIGITS", digits_data.n_train, [0, 9999])
    with pytest.raises(ValueError, match="rows must be a 1-D array of integer indices"):
        DM.load_datamodel_rows(digits_store.path(datamodel["path"]), np.array([True, False]))
    # a datamodel of the wrong size is refused before the unlearned folder gets a record
    np.save(tmp_path / "small.npy", np.zeros((digits_data.n_train, 10, 10), np.float16))
    with pytest.raises(ValueError, match=r"covers 10 examples x 10 classes; DIGITS needs 1797"):
        unlearn_store(digits_store, digits_data, FORGET_SET, "datamodel_direct", [0],
                      name="direct_small", datamodel=tmp_path / "small.npy", progress=False)
    assert not digits_store.path(unlearned_folder("DIGITS", "direct_small", FORGET_SET)).exists()

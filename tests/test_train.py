"""Training into stores: determinism per model id, resumption, layout, oracles, errors,
the CIFAR-10 ResNet-9 recipe on tiny random data (CPU) and on a GPU where there is one."""

import json

import numpy as np
import pytest
import torch

from klom_utils import data, devices, forget_sets, ids, layout, models, stack, train
from klom_utils.store import open_store

FAST = train.default_config("digits", epochs=2, peak_epoch=1)
FULL = "full_models/DIGITS"


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()


def tiny_cifar(n_train=8, n_val=4, seed=0):
    """Random CIFAR-10-shaped data (uint8 3x32x32) under the name CIFAR10."""
    g = torch.Generator().manual_seed(seed)
    return data.TensorDataset(
        name="CIFAR10",
        train_x=torch.randint(0, 256, (n_train, 3, 32, 32), generator=g, dtype=torch.uint8),
        train_y=torch.randint(0, 10, (n_train,), generator=g),
        val_x=torch.randint(0, 256, (n_val, 3, 32, 32), generator=g, dtype=torch.uint8),
        val_y=torch.randint(0, 10, (n_val,), generator=g),
        classes=data.CIFAR10_CLASSES, mean=data.CIFAR10_MEAN, std=data.CIFAR10_STD)


def state(store, model_id, folder=FULL):
    return open_store(store).state_dict(folder, model_id)


# ------------------------------------------------------------------------------- determinism

def test_same_id_same_model_whatever_is_trained_with_it(tmp_path, digits):
    a, b = tmp_path / "a", tmp_path / "b"
    assert train.train_models(digits, a, range(0, 3), config=FAST, progress=False) == [0, 1, 2]
    assert train.train_models(digits, b, range(2, 5), config=FAST, progress=False) == [2, 3, 4]
    sa, sb = state(a, 2), state(b, 2)
    for k in sa:  # bit for bit: per-model generators, and batched math is per model
        assert torch.equal(sa[k], sb[k]), k
    assert not torch.equal(state(a, 1)["model.1.weight"], sa["model.1.weight"])
    one_at_a_time = tmp_path / "c"
    train.train_models(digits, one_at_a_time, [2], config=train.default_config(
        "digits", epochs=2, peak_epoch=1, stack=1), progress=False)
    assert all(torch.equal(sa[k], v) for k, v in state(one_at_a_time, 2).items())


def test_stacked_training_equals_plain_training(digits):
    init = stack.init_state_dict("digits_mlp", 11)
    sds, train_logits, val_logits = train.fit(digits, np.arange(digits.n_train), [init], [5],
                                              FAST, progress=False)
    ref_sd, ref_train, ref_val = train.fit_reference(digits, np.arange(digits.n_train), init, 5,
                                                     FAST)
    for k, v in ref_sd.items():
        torch.testing.assert_close(sds[0][k], v, atol=1e-5, rtol=0)
    torch.testing.assert_close(train_logits[0], ref_train, atol=1e-4, rtol=0)
    torch.testing.assert_close(val_logits[0], ref_val, atol=1e-4, rtol=0)


def test_thread_count_does_not_change_the_models(digits):
    """DIGITS trains on 2 threads by default: the same models as on 1 (and on 4), bit for bit."""
    import dataclasses

    inits = [stack.init_state_dict("digits_mlp", i) for i in range(8)]
    out = {}
    for threads in (1, 2, 4):
        config = dataclasses.replace(FAST, threads=threads, stack=8)
        out[threads] = train.fit(digits, np.arange(digits.n_train), inits, list(range(8)),
                                 config, progress=False)
    for threads in (2, 4):
        for a, b in zip(out[1][1:], out[threads][1:]):
            assert torch.equal(a, b), threads
        for sd_a, sd_b in zip(out[1][0], out[threads][0]):
            assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a), threads




def test_default_digits_model_reaches_95_percent(digits):
    init = [stack.init_state_dict("digits_mlp", s) for s in (1, 2)]
    _, _, val_logits = train.fit(digits, np.arange(digits.n_train), init, [1, 2],
                                 train.default_config("digits"), progress=False)
    accuracy = (val_logits.argmax(-1) == digits.val_y).float().mean(1)
    assert accuracy.min() >= 0.95, accuracy


def _cpu_autocast_enabled() -> bool:
    """Whether CPU autocast is on (torch >= 2.4 takes a device type; older has its own call)."""
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:
        return torch.is_autocast_cpu_enabled()


@pytest.mark.parametrize("arch", ["digits_mlp", "resnet9"])
def test_predictions_are_float32_without_autocast(monkeypatch, digits, arch):
    """Logits written to stores are computed without autocast, even where training steps use
    it (bf16 on CUDA, simulated here on the CPU), in float32 like stack.predict_logits."""
    entered = []

    def bf16_autocast(self):  # what training steps get on CUDA, here on the CPU
        entered.append(self.module.training)
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)

    monkeypatch.setattr(stack.ModelStack, "autocast", bf16_autocast)
    seen = []  # autocast state inside each forward in eval mode

    def hook(module, inputs, output):
        if not module.training:
            seen.append(_cpu_autocast_enabled())

    real_init = stack.ModelStack.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.module.register_forward_hook(hook)

    monkeypatch.setattr(stack.ModelStack, "__init__", init)
    if arch == "digits_mlp":
        d, cfg = digits, FAST
    else:
        d = tiny_cifar()
        cfg = train.default_config("cifar10", epochs=1, peak_epoch=0.5, batch_size=4, stack=1,
                                   eval_batch_size=8)
    inits = [stack.init_state_dict(arch, s) for s in (1, 2)][: 2 if arch == "digits_mlp" else 1]
    sds, train_logits, val_logits = train.fit(d, np.arange(d.n_train), inits,
                                              list(range(len(inits))), cfg, progress=False)
    assert entered and all(entered)  # training steps ran under (simulated) autocast ...
    assert seen and not any(seen)  # ... evaluation never did
    assert train_logits.dtype == val_logits.dtype == torch.float32
    for j, sd in enumerate(sds):  # the same numbers as a plain float32 forward
        model = models.load_model(sd, arch=arch).eval()
        with torch.no_grad():
            torch.testing.assert_close(val_logits[j], model(d.normalize(d.val_x)),
                                       atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- store layout

def test_store_layout_and_reading_back(tmp_path, digits):
    from klom_utils.metric import margins

    root = tmp_path / "store"
    train.train_models("digits", root, [0, 1], config=FAST, progress=False)
    store = open_store(root)
    names = sorted(p.name for p in (root / FULL).iterdir())
    last = FAST.epochs - 1
    assert names == sorted([f"sd_{i}____epoch_{last}.pt" for i in (0, 1)]
                           + [f"{s}_logits_{i}.pt" for i in (0, 1) for s in ("train", "val")]
                           + [f"{i}__{s}_margins_{last}.npy" for i in (0, 1) for s in ("train", "val")]
                           + [layout.TRAIN_RECORD, layout.COST_FILE])
    assert store.folders() == [FULL] and store.model_ids(FULL) == [0, 1]
    cost = store.read_json(f"{FULL}/{layout.COST_FILE}")  # what a comparison divides by
    assert cost["n_models"] == 2 and cost["seconds_per_model"] > 0
    assert cost["device"].startswith("cpu: ")
    val = store.margins(FULL, "val")
    assert val.shape == (2, 355) and val.dtype == np.float32
    assert store.margins(FULL, "train").shape == (2, 1442)
    logits = store.logits(FULL, "val", 1)
    assert logits.shape == (355, 10) and logits.dtype == torch.float32
    np.testing.assert_allclose(val[1], margins(logits.numpy(), digits.val_y.numpy()), rtol=1e-6)
    model = models.load_model(store.state_dict(FULL, 1), arch="digits_mlp")
    with torch.no_grad():
        torch.testing.assert_close(model(digits.normalize(digits.val_x)), logits)
    assert store.forget_set_ids("DIGITS") == [1, 2, 3]  # written with the first models
    record = json.loads((root / FULL / layout.TRAIN_RECORD).read_text())
    assert record["dataset"] == "DIGITS" and record["epochs"] == 2 and "stack" not in record


def test_oracles_leave_out_the_forget_set(tmp_path, digits):
    root = tmp_path / "store"
    assert train.train_models(digits, root, [0], forget_set=3, config=FAST, progress=False) == [0]
    store = open_store(root)
    folder = "oracles/DIGITS/forget_set_3"
    assert store.model_ids(folder) == [0]
    record = json.loads((root / folder / layout.TRAIN_RECORD).read_text())
    assert record["n_train_examples"] == 1442 - 50 and record["group"] == "forget_set_3"
    # a different group gets its own seeds
    train.train_models(digits, root, [0], config=FAST, progress=False)
    assert not torch.equal(state(root, 0)["model.1.weight"],
                           state(root, 0, folder)["model.1.weight"])


# ---------------------------------------------------------------------- resumption, sharding

def test_resumes_and_skips_finished_models(tmp_path, digits):
    root = tmp_path / "store"
    train.train_models(digits, root, [0, 1], config=FAST, progress=False)
    before = (root / FULL / "sd_0____epoch_1.pt").stat().st_mtime_ns
    (root / FULL / "1__val_margins_1.npy").unlink()  # model 1 was interrupted
    assert train.train_models(digits, root, range(0, 4), config=FAST, progress=False) == [1, 2, 3]
    assert (root / FULL / "sd_0____epoch_1.pt").stat().st_mtime_ns == before
    assert train.train_models(digits, root, range(0, 4), config=FAST, progress=False) == []
    assert open_store(root).model_ids(FULL) == [0, 1, 2, 3]


def test_disjoint_shards_fill_one_store(tmp_path, digits):
    root = tmp_path / "store"
    for shard in (range(0, 2), range(2, 3)):  # e.g. two tasks of a job array
        train.train_models(digits, root, shard, config=FAST, progress=False)
    whole = tmp_path / "whole"
    train.train_models(digits, whole, range(0, 3), config=FAST, progress=False)
    np.testing.assert_array_equal(open_store(root).margins(FULL, "val"),
                                  open_store(whole).margins(FULL, "val"))


def test_a_different_config_is_refused(tmp_path, digits):
    root = tmp_path / "store"
    train.train_models(digits, root, [0], config=FAST, progress=False)
    other = train.default_config("digits", epochs=3, peak_epoch=1)
    with pytest.raises(ValueError, match="epochs: store has 2, asked 3"):
        train.train_models(digits, root, [1], config=other, progress=False)
    # how many models train at once does not change them: allowed
    same = train.default_config("digits", epochs=2, peak_epoch=1, stack=1)
    assert train.train_models(digits, root, [1], config=same, progress=False) == [1]


# ------------------------------------------------------------------------------------- errors

def test_clear_errors(tmp_path, digits):
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        train.train_models("mnist", tmp_path / "s", [0], progress=False)
    root = tmp_path / "s"
    store = open_store(root, create=True)
    forget_sets.write_digits_forget_sets(store)
    store.write_forget_set("DIGITS", 9, [3, 5000])
    with pytest.raises(ValueError, match="forget set 9 of DIGITS.*5000.*outside"):
        train.train_models(digits, root, [0], forget_set=9, config=FAST, progress=False)
    with pytest.raises(FileNotFoundError, match="no forget set 4 for DIGITS"):
        train.train_models(digits, root, [0], forget_set=4, config=FAST, progress=False)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(PermissionError, match="cannot create"):
        train.train_models(digits, blocker / "store", [0], config=FAST, progress=False)
    with pytest.raises(ValueError, match="non-negative"):
        train.train_models(digits, root, [-1], config=FAST, progress=False)
    with pytest.raises(FileNotFoundError, match="CIFAR10.*download"):
        forget_sets.forget_indices(store, tiny_cifar(), 1)


def test_config_checks_and_helpers():
    with pytest.raises(ValueError, match="peak_epoch"):
        train.default_config("digits", peak_epoch=50)
    with pytest.raises(ValueError, match="stack"):
        train.default_config("digits", stack=0)
    with pytest.raises(ValueError, match="unknown arch"):
        train.default_config("digits", arch="vit")
    assert ids.parse_model_range("0-99") == range(0, 100)
    assert ids.parse_model_range("7") == range(7, 8)
    for bad in ("5-2", "a-b", "-3"):
        with pytest.raises(ValueError, match="model range"):
            ids.parse_model_range(bad)
    cfg = train.default_config("cifar10")
    assert (cfg.arch, cfg.epochs, cfg.batch_size, cfg.lr, cfg.peak_epoch) == ("resnet9", 24, 512, 0.4, 5)
    assert (cfg.momentum, cfg.weight_decay, cfg.label_smoothing) == (0.9, 5e-4, 0.0)
    per_epoch = 10
    assert train.lr_at(0, per_epoch, cfg) == 0.0
    assert train.lr_at(5 * per_epoch, per_epoch, cfg) == pytest.approx(0.4)
    assert train.lr_at(24 * per_epoch, per_epoch, cfg) == 0.0
    assert devices.resolve_device("cpu").type == "cpu"
    assert train.choose_stack(cfg, tiny_cifar(), "cpu", 10) == 1
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            devices.resolve_device("cuda")


# ------------------------------------------------------------------------- CIFAR-10 ResNet-9

CIFAR_TINY = train.default_config("cifar10", epochs=1, peak_epoch=0.5, batch_size=4, stack=1,
                                  eval_batch_size=8)


def test_resnet9_recipe_step_on_cpu(tmp_path):
    """The CIFAR-10 path (drop_last batches, triangular lr, writing a Hub-style store)."""
    d = tiny_cifar()
    root = tmp_path / "store"
    assert train.train_models(d, root, [0], config=CIFAR_TINY, device="cpu",
                              progress=False) == [0]
    store = open_store(root)
    sd = store.state_dict("full_models/CIFAR10", 0, epoch=0)
    from test_models import hub_entries

    assert [(k, tuple(v.shape), v.dtype) for k, v in sd.items()] == hub_entries()
    model = models.load_model(sd)
    assert int(model[0][1].num_batches_tracked) == 2  # 8 images, batch 4, one epoch
    logits = store.logits("full_models/CIFAR10", "train", 0)
    with torch.no_grad():
        torch.testing.assert_close(model(d.normalize(d.train_x)), logits, atol=1e-4, rtol=1e-4)
    assert store.margins("full_models/CIFAR10", "val").shape == (1, 4)


def test_resnet9_stacked_training_matches_one_at_a_time():
    d = tiny_cifar(n_train=4, n_val=2)
    cfg = train.default_config("cifar10", epochs=1, peak_epoch=0.5, batch_size=2,
                               eval_batch_size=4)
    inits = [stack.init_state_dict("resnet9", s) for s in (1, 2)]
    idx = np.arange(4)
    sds, tl, vl = train.fit(d, idx, inits, [3, 4], cfg, progress=False)
    for j in range(2):
        sd1, tl1, vl1 = train.fit(d, idx, inits[j:j + 1], [3 + j], cfg, progress=False)
        for k, v in sd1[0].items():
            torch.testing.assert_close(sds[j][k], v, atol=1e-4, rtol=1e-3)
        torch.testing.assert_close(vl[j], vl1[0], atol=1e-3, rtol=1e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_resnet9_on_gpu_bf16_channels_last(tmp_path):
    d = tiny_cifar(n_train=64, n_val=16)
    cfg = train.default_config("cifar10", epochs=2, peak_epoch=1, batch_size=16, stack="auto")
    assert train.choose_stack(cfg, d, "cuda", 4) in (1, 2, 4)
    assert train.train_models(d, tmp_path / "s", range(3), config=cfg, device="cuda",
                              progress=False) == [0, 1, 2]
    store = open_store(tmp_path / "s")
    assert np.isfinite(store.margins("full_models/CIFAR10", "train")).all()
    model = models.load_model(store.state_dict("full_models/CIFAR10", 2))
    assert model[0][0].weight.dtype == torch.float32


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_digits_on_gpu_matches_cpu(tmp_path, digits):
    train.train_models(digits, tmp_path / "g", [0], config=FAST, device="cuda", progress=False)
    train.train_models(digits, tmp_path / "c", [0], config=FAST, device="cpu", progress=False)
    np.testing.assert_allclose(open_store(tmp_path / "g").margins(FULL, "val"),
                               open_store(tmp_path / "c").margins(FULL, "val"), atol=5e-2)


# ---------------------------------------------------------------------------------- optimiser

"""Unlearning methods, their configs, and unlearn_store on small stores built here.

The session fixture ``digits_store`` (16 full models, 16 oracles of forget set 3 and 4 held-out
oracles with ids 1000..1003) is shared with test_evaluate, test_plots and test_cli_eval.
"""

import shutil
import tempfile

import numpy as np
import pytest
import torch

from klom_utils import unlearning as U
from klom_utils.data import TensorDataset, load_dataset
from klom_utils.layout import UNLEARN_RECORD, full_models_folder, unlearned_folder
from klom_utils.models import DigitsMLP, ResNet9, load_model
from klom_utils.oracles import held_out_oracle_ids
from klom_utils.stack import predict_logits
from klom_utils.store import open_store
from klom_utils.train import train_models
from klom_utils.unlearning import scrub as scrub_family
from klom_utils.unlearning.scrub import scrub as scrub_method

N_MODELS = 16
FORGET_SET = 3
HELD_OUT = [1000, 1001, 1002, 1003]
BUILTIN = ["do_nothing", "gradient_ascent", "gradient_descent", "neggrad_plus", "scrub",
           "oracle_matching"]


@pytest.fixture(scope="session")
def digits_data():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def digits_store(digits_data):
    """A DIGITS store: full models 0..15, oracles 0..15 and held-out 1000..1003 of set 3.

    It lives in its own temporary folder rather than pytest's numbered ones, which concurrent
    pytest sessions of the same user prune while a long session still uses them.
    """
    with tempfile.TemporaryDirectory(prefix="klom-eval-store-") as root:
        train_models(digits_data, root, range(N_MODELS), progress=False)
        train_models(digits_data, root, list(range(N_MODELS)) + HELD_OUT, forget_set=FORGET_SET,
                     progress=False)
        yield open_store(root)


def _params(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _synthetic(n_forget=12, n_retain=40, shape=(1, 8, 8), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_forget + n_retain, *shape, generator=g)
    y = torch.randint(0, 10, (n_forget + n_retain,), generator=g)
    t = torch.randn(n_forget + n_retain, 10, generator=g)
    return U.UnlearnData(forget_x=x[:n_forget], forget_y=y[:n_forget], retain_x=x[n_forget:],
                         retain_y=y[n_forget:], oracle_forget_logits=t[:n_forget],
                         oracle_retain_logits=t[n_forget:])


# ---------------------------------------------------------------------------- registry, configs

def test_registry_has_the_six_methods_with_defaults_for_both_datasets():
    assert set(BUILTIN) <= set(U.METHODS)
    for name in BUILTIN:
        for dataset in ("digits", "DIGITS", "cifar10"):
            assert isinstance(U.default_config(name, dataset), dict)
    assert U.get_method("oracle_matching").needs_oracles
    assert not U.get_method("scrub").needs_oracles
    assert U.default_config("gradient_ascent", "cifar10")["lr"] == 5e-8  # the authors' value


def test_config_overrides_take_the_default_types():
    cfg = U.resolve_config("scrub", "digits", ["lr=0.2", "epochs=4", "temperature=2"])
    assert cfg["lr"] == 0.2 and cfg["epochs"] == 4 and isinstance(cfg["epochs"], int)
    assert cfg["temperature"] == 2.0 and isinstance(cfg["temperature"], float)
    assert U.resolve_config("scrub", "digits", {"epochs": 3.0})["epochs"] == 3
    assert U.resolve_config("scrub", "digits", ["lr_milestones=2,4"])["lr_milestones"] == [2, 4]
    assert U.resolve_config("scrub", "digits", ["lr_milestones=[1]"])["lr_milestones"] == [1]
    assert U.resolve_config("scrub", "cifar10", ["lr_milestones="])["lr_milestones"] == []
    assert U.resolve_config("scrub", "digits", {"lr_milestones": (3,)})["lr_milestones"] == [3]
    with pytest.raises(ValueError, match="lr_milestones='2,x' is not a valid list"):
        U.resolve_config("scrub", "digits", ["lr_milestones=2,x"])
    U.default_config("scrub", "cifar10")["lr_milestones"].append(99)  # a deep copy
    assert U.default_config("scrub", "cifar10")["lr_milestones"] == [3, 5, 9]
    defaults = U.default_config("scrub", "digits")
    defaults["lr"] = 99.0  # a copy: the registry is unchanged
    assert U.default_config("scrub", "digits")["lr"] != 99.0


def test_config_errors_name_the_value_and_the_allowed_keys():
    with pytest.raises(ValueError, match=r"no config key 'learning_rate'.*'lr'"):
        U.resolve_config("gradient_ascent", "digits", ["learning_rate=0.1"])
    with pytest.raises(ValueError, match=r"epochs='1.5' is not a valid int"):
        U.resolve_config("gradient_ascent", "digits", ["epochs=1.5"])
    with pytest.raises(ValueError, match="key=value"):
        U.resolve_config("gradient_ascent", "digits", ["lr"])
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        U.get_method("nope")
    with pytest.raises(ValueError, match="no defaults for dataset 'MNIST'"):
        U.default_config("scrub", "mnist")


def test_unlearn_data_checks_shapes():
    with pytest.raises(ValueError, match="forget_x has 3 rows but forget_y has 2"):
        U.UnlearnData(forget_x=torch.zeros(3, 4), forget_y=torch.zeros(2, dtype=torch.long),
                      retain_x=torch.zeros(2, 4), retain_y=torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="forget set is empty"):
        U.UnlearnData(forget_x=torch.zeros(0, 4), forget_y=torch.zeros(0, dtype=torch.long),
                      retain_x=torch.zeros(2, 4), retain_y=torch.zeros(2, dtype=torch.long))


# ----------------------------------------------------------------------------------- methods

@pytest.mark.parametrize("name", BUILTIN)
def test_methods_change_the_weights_and_never_the_original(name):
    torch.manual_seed(0)
    model = DigitsMLP(hidden=32).eval()
    before = _params(model)
    config = U.resolve_config(name, "digits", {"epochs": 2} if name != "do_nothing" else None)
    gen = torch.Generator().manual_seed(1)
    out = U.get_method(name)(model, _synthetic(), config, generator=gen)
    assert out is not model and not out.training
    for k, v in _params(model).items():  # the original is untouched
        assert torch.equal(v, before[k])
    changed = [k for k, v in _params(out).items() if not torch.equal(v, before[k])]
    if name == "do_nothing":
        assert changed == []
    else:  # every layer moves: catches an optimiser built over another model's parameters
        assert sorted(changed) == sorted(before)


@pytest.mark.parametrize("name", ["gradient_ascent", "neggrad_plus", "scrub", "oracle_matching"])
def test_methods_move_resnet9_weights_not_only_batchnorm_statistics(name):
    torch.manual_seed(0)
    model = ResNet9().eval()
    before = _params(model)
    data = _synthetic(n_forget=4, n_retain=8, shape=(3, 16, 16))
    overrides = {"epochs": 1, "lr": 0.01}
    if name == "scrub":
        overrides["max_epochs"] = 1
    config = U.resolve_config(name, "cifar10", overrides)
    out = U.get_method(name)(model, data, config, generator=torch.Generator().manual_seed(1))
    conv = "0.0.weight"  # first convolution (a weight, not a BatchNorm buffer)
    assert not torch.equal(_params(out)[conv], before[conv])
    assert torch.equal(_params(model)[conv], before[conv])


def test_scrub_cifar10_defaults_are_the_bench_settings():
    cfg = U.default_config("scrub", "cifar10")
    assert (cfg["epochs"], cfg["max_epochs"], cfg["temperature"]) == (10, 3, 4.0)
    assert (cfg["gamma"], cfg["alpha"]) == (0.99, 0.1)
    assert (cfg["lr_milestones"], cfg["lr_decay"]) == ([3, 5, 9], 0.1)
    assert (cfg["forget_batch_size"], cfg["retain_batch_size"]) == (32, 64)
    assert 5e-5 <= cfg["lr"] <= 5e-3 and (cfg["momentum"], cfg["weight_decay"]) == (0.9, 5e-4)


def test_scrub_min_loss_is_gamma_ce_plus_alpha_kl_at_temperature():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 10, generator=g), torch.randn(6, 10, generator=g)
    y = torch.randint(0, 10, (6,), generator=g)
    cfg = {"gamma": 0.7, "alpha": 0.3, "temperature": 2.0}
    p_t, log_p_s = torch.softmax(t / 2, 1), torch.log_softmax(s / 2, 1)
    kl = (p_t * (p_t.log() - log_p_s)).sum(1).mean() * 4  # KL(teacher || student) * T^2
    ce = torch.nn.functional.cross_entropy(s, y)
    torch.testing.assert_close(scrub_family.scrub_min_loss(s, p_t, y, cfg), 0.7 * ce + 0.3 * kl)
    torch.testing.assert_close(scrub_family.scrub_min_loss(s, None, y, {**cfg, "alpha": 0.0}), 0.7 * ce)


def _scrub_config(**overrides):
    return U.resolve_config("scrub", "digits", {"lr_milestones": [], **overrides})


def test_frozen_outputs_are_what_per_model_batches_give_bit_for_bit():
    """A frozen stack's outputs computed once on every row, then read per model, equal its
    outputs on each model's batch (so SCRUB's teacher is not run at every step)."""
    from klom_utils.stack import ModelStack
    from klom_utils.unlearning.steps import frozen_outputs, rows_of, soften

    g = torch.Generator().manual_seed(0)
    singles = [DigitsMLP() for _ in range(5)]
    for m in singles:
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
    stack = ModelStack.from_state_dicts("digits_mlp", [m.state_dict() for m in singles]).eval()
    x = torch.randn(300, 64, generator=g)
    idx = torch.stack([torch.randperm(300, generator=g)[:32] for _ in range(5)])
    once = frozen_outputs(stack, x, batch_size=128)
    with torch.no_grad():
        direct = stack(x[idx])
    assert once.shape == (5, 300, 10) and torch.equal(rows_of(once, idx), direct)
    assert torch.equal(rows_of(soften(once, 4.0), idx), soften(direct, 4.0))


def test_scrub_without_kl_and_max_steps_is_fine_tuning_on_the_retain_set():
    torch.manual_seed(0)
    model, data = DigitsMLP(hidden=32), _synthetic(n_retain=100)
    cfg = _scrub_config(alpha=0.0, max_epochs=0, gamma=1.0, epochs=3, lr=0.05,
                        retain_batch_size=16)
    out = scrub_method(model, data, cfg, generator=torch.Generator().manual_seed(3))
    gd = U.resolve_config("gradient_descent", "digits", {"epochs": 3, "lr": 0.05,
                                                         "batch_size": 16})
    ref = U.gradient_descent(model, data, gd, generator=torch.Generator().manual_seed(3))
    a, b = _params(out), _params(ref)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same batches, the same steps
    # gamma scales the cross-entropy: without weight decay, gamma * CE at lr == CE at gamma * lr
    half = scrub_method(model, data, {**cfg, "gamma": 0.5, "weight_decay": 0.0},
                        generator=torch.Generator().manual_seed(3))
    ref = U.gradient_descent(model, data, {**gd, "lr": 0.025, "weight_decay": 0.0},
                             generator=torch.Generator().manual_seed(3))
    a, b = _params(half), _params(ref)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5)


def test_scrub_steps_max_then_min_with_the_lr_schedule(monkeypatch):
    """Max steps (on F, -KL) in the first max_epochs epochs, min steps (on R) in every epoch;
    the learning rate is x lr_decay from each milestone epoch on."""
    steps = []
    real_step = scrub_family.step

    def recording_step(opt, loss, *args):
        steps.append((opt.param_groups[0]["lr"], float(loss.detach())))
        return real_step(opt, loss, *args)

    monkeypatch.setattr(scrub_family, "step", recording_step)
    torch.manual_seed(0)
    data = _synthetic(n_forget=12, n_retain=40)  # one forget and one retain batch per epoch
    # lr 0.1: large enough that one max step and one min step move the student measurably
    # (at 0.01 the KL of the second max step is ~1e-7, its sign float noise)
    cfg = _scrub_config(lr=0.1, epochs=6, max_epochs=2, lr_milestones=[2, 4], lr_decay=0.1,
                        forget_batch_size=32, retain_batch_size=64)
    scrub_method(DigitsMLP(hidden=32), data, cfg, generator=torch.Generator().manual_seed(1))
    lrs = [lr for lr, _ in steps]
    expected = [0.1] * 4 + [1e-2] * 2 + [1e-3] * 2  # epochs 0, 1: max + min; then min only
    assert lrs == pytest.approx(expected)
    assert abs(steps[0][1]) < 1e-5  # the first max step: the student is still the teacher
    assert steps[2][1] < 0  # a later max step maximises a positive KL
    assert all(loss > 0 for _, loss in steps[1::2][:2] + steps[4:])  # min steps: CE + KL


def test_scrub_checks_its_config():
    data, model = _synthetic(), DigitsMLP(hidden=8)
    for bad, match in [({"gamma": -1.0}, r"gamma=-1.0 is out of range: expected a finite "
                                         r"number >= 0"),
                       ({"temperature": 0.0}, "temperature=0.0 is out of range"),
                       ({"lr_milestones": [-1]}, "lr_milestones=.-1. is out of range")]:
        with pytest.raises(ValueError, match=match):
            scrub_method(model, data, _scrub_config(**bad), generator=torch.Generator())


def test_methods_are_deterministic_given_the_generator():
    torch.manual_seed(0)
    model = DigitsMLP(hidden=32)
    data = _synthetic()
    runs = [U.unlearn_models("neggrad_plus", [model], data, dataset="digits", model_ids=[7])[0]
            for _ in range(2)]
    other = U.unlearn_models("neggrad_plus", [model], data, dataset="digits", model_ids=[8])[0]
    a, b, c = (_params(m) for m in (*runs, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_oracle_matching_needs_oracle_logits():
    data = _synthetic()
    data.oracle_forget_logits = data.oracle_retain_logits = None
    with pytest.raises(ValueError, match="held-out oracles"):
        U.unlearn_models("oracle_matching", [DigitsMLP(hidden=8)], data, dataset="digits")


# ------------------------------------------------------------------------------ unlearn_store

def test_unlearn_store_writes_the_layout_and_resumes(digits_store, digits_data):
    # the store is shared by the session: start from no do_nothing models, whatever ran before
    shutil.rmtree(digits_store.path(unlearned_folder("DIGITS", "do_nothing", FORGET_SET)),
                  ignore_errors=True)
    run = U.unlearn_store(digits_store, digits_data, FORGET_SET, "do_nothing", range(4),
                          progress=False)
    folder = unlearned_folder("DIGITS", "do_nothing", FORGET_SET)
    assert run["folder"] == folder and run["written"] == [0, 1, 2, 3]
    assert all(digits_store.has_model(folder, i) for i in range(4))
    record = digits_store.read_json(f"{folder}/{UNLEARN_RECORD}")
    assert record["method"] == "do_nothing" and record["oracle_ids"] is None
    # do nothing reproduces the originals' outputs
    full = full_models_folder("DIGITS")
    np.testing.assert_allclose(digits_store.margins(folder, "val", model_ids=[2]),
                               digits_store.margins(full, "val", model_ids=[2]), atol=1e-5)
    again = U.unlearn_store(digits_store, digits_data, FORGET_SET, "do_nothing", range(6),
                            progress=False)
    assert again["skipped"] == [0, 1, 2, 3] and again["written"] == [4, 5]


def test_unlearn_store_refuses_to_mix_configs(digits_store, digits_data):
    U.unlearn_store(digits_store, digits_data, FORGET_SET, "gradient_descent", [0],
                    config={"epochs": 1}, name="gd_mix", progress=False)
    with pytest.raises(ValueError, match=r"config.epochs: store has 1, asked 2"):
        U.unlearn_store(digits_store, digits_data, FORGET_SET, "gradient_descent", [1],
                        config={"epochs": 2}, name="gd_mix", progress=False)


def test_unlearn_store_errors(digits_store, digits_data):
    with pytest.raises(FileNotFoundError, match=r"no full models \[99\]"):
        U.unlearn_store(digits_store, digits_data, FORGET_SET, "do_nothing", [99], progress=False)
    with pytest.raises(FileNotFoundError, match="needs held-out oracles of forget set 2"):
        U.unlearn_store(digits_store, digits_data, 2, "oracle_matching", [0], progress=False)
    with pytest.raises(ValueError, match="method name"):
        U.unlearn_store(digits_store, digits_data, FORGET_SET, "do_nothing", [0], name="a/b")
    # options a method would ignore are errors, before anything is written
    with pytest.raises(ValueError, match=r"datamodel \(--datamodel\) was given, but scrub does "
                                         "not use it"):
        U.unlearn_store(digits_store, digits_data, FORGET_SET, "scrub", [0], name="ignored",
                        datamodel="theta.npy", progress=False)
    with pytest.raises(ValueError, match="oracle_ids .* but do_nothing does not use it"):
        U.unlearn_store(digits_store, digits_data, FORGET_SET, "do_nothing", [0], name="ignored",
                        oracle_ids=[1000], progress=False)
    assert not digits_store.path(unlearned_folder("DIGITS", "ignored", FORGET_SET)).exists()


def test_gradient_ascent_lowers_forget_margins(digits_store, digits_data):
    ids = range(8)
    for name in ("do_nothing", "gradient_ascent"):
        U.unlearn_store(digits_store, digits_data, FORGET_SET, name, ids, progress=False)
    forget = digits_store.forget_set("DIGITS", FORGET_SET)
    before = digits_store.margins(unlearned_folder("DIGITS", "do_nothing", FORGET_SET), "train",
                                  model_ids=ids)[:, forget]
    after = digits_store.margins(unlearned_folder("DIGITS", "gradient_ascent", FORGET_SET),
                                 "train", model_ids=ids)[:, forget]
    assert after.mean() < before.mean() - 0.5
    assert (after.mean(1) < before.mean(1)).all()  # for every model


def test_oracle_matching_records_the_held_out_oracles(digits_store, digits_data):
    run = U.unlearn_store(digits_store, digits_data, FORGET_SET, "oracle_matching", [0],
                          progress=False)
    record = digits_store.read_json(f"{run['folder']}/{UNLEARN_RECORD}")
    assert record["oracle_ids"] == HELD_OUT
    assert held_out_oracle_ids(digits_store, "DIGITS", FORGET_SET) == HELD_OUT


def test_hub_style_resnet9_checkpoints(tmp_path):
    """Hub-like CIFAR10 store: ResNet-9 state dicts with the ``model.`` prefix."""
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(
        name="CIFAR10", train_x=torch.randint(0, 256, (12, 3, 16, 16), generator=g,
                                              dtype=torch.uint8),
        train_y=torch.randint(0, 10, (12,), generator=g), val_x=torch.randint(
            0, 256, (4, 3, 16, 16), generator=g, dtype=torch.uint8),
        val_y=torch.randint(0, 10, (4,), generator=g), classes=tuple("abcdefghij"),
        mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    store = open_store(tmp_path / "hub", create=True)
    store.write_forget_set("CIFAR10", 1, [0, 5, 7])
    full = store.path(full_models_folder("CIFAR10"))
    full.mkdir(parents=True)
    for i in range(2):
        torch.manual_seed(i)
        sd = {f"model.{k}": v for k, v in ResNet9().state_dict().items()}
        torch.save(sd, full / f"sd_{i}____epoch_23.pt")
    run = U.unlearn_store(store, data, 1, "gradient_ascent", [0, 1], config={"lr": 1e-3},
                          progress=False, save_checkpoints=True)
    folder = run["folder"]
    assert run["written"] == [0, 1]
    assert store.logits(folder, "train", 1).shape == (12, 10)
    reloaded = load_model(store.state_dict(folder, 1), arch="auto")
    assert isinstance(reloaded, ResNet9)


# ------------------------------------------------------------------------- your own method

def test_user_defined_method_end_to_end(digits_store, digits_data):
    from klom_utils.evaluate import score

    @U.register_method("shrink_test", {"factor": 0.9}, replace=True)
    def shrink(model, data, config, *, generator):
        """Scale the last layer (a toy method)."""
        import copy

        model = copy.deepcopy(model)
        with torch.no_grad():
            list(model.parameters())[-2].mul_(config["factor"])
        return model.eval()

    try:
        assert U.default_config("shrink_test", "digits") == {"factor": 0.9}
        U.unlearn_store(digits_store, digits_data, FORGET_SET, "shrink_test", range(N_MODELS),
                        config=["factor=0.5"], progress=False)
        record = score(digits_store, digits_data, FORGET_SET, "shrink_test")
        assert record["n_unlearned"] == N_MODELS and record["forget"]["count"] == 50

        def plain(model, data, config, *, generator):  # passed directly, not registered
            return U.do_nothing(model, data, config, generator=generator)

        run = U.unlearn_store(digits_store, digits_data, FORGET_SET, plain, [0, 1],
                              progress=False)
        assert run["folder"].endswith("/plain/forget_set_3")
        assert score(digits_store, digits_data, FORGET_SET, "plain")["n_unlearned"] == 2
    finally:
        U.METHODS.pop("shrink_test", None)


# ------------------------------------------------------------------------------ stacked methods

BASELINES = ["random_labels", "salun", "l1_sparse", "eu_k", "cf_k", "noisy_descent"]
ALL_BUILTIN = BUILTIN + ["datamodel_matching", "datamodel_direct"] + BASELINES
#: Small settings: every method does a few steps of each kind.
SMALL = {"gradient_ascent": {"epochs": 2, "max_grad_norm": 0.5},
         "gradient_descent": {"epochs": 1, "batch_size": 256},
         "neggrad_plus": {"epochs": 2, "max_grad_norm": 1.0},
         "scrub": {"epochs": 2, "max_epochs": 1},
         "oracle_matching": {"epochs": 2},
         "datamodel_matching": {"epochs": 2},
         "random_labels": {"epochs": 1}, "salun": {"epochs": 1}, "l1_sparse": {"epochs": 2},
         "eu_k": {"epochs": 1, "k": 2}, "cf_k": {"epochs": 1}, "noisy_descent": {"epochs": 1}}


@pytest.fixture(scope="module")
def digits_unlearn_data(digits_data):
    g = torch.Generator().manual_seed(0)
    n = digits_data.n_train + digits_data.n_val
    return U.UnlearnData.from_dataset(
        digits_data, np.arange(0, 400, 8), oracle_train_logits=torch.randn(
            digits_data.n_train, 10, generator=g),
        datamodel_shift=0.1 * torch.randn(n, 10, generator=g))


def _same(a, b) -> bool:
    if isinstance(a, U.Outputs):
        return torch.equal(a.train_logits, b.train_logits) and torch.equal(a.val_logits,
                                                                           b.val_logits)
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", ALL_BUILTIN)
def test_a_model_unlearned_in_a_stack_equals_it_unlearned_alone(name, digits_unlearn_data):
    """Bit for bit on the CPU: own data order and generator per model, per-model losses,
    gradient clipping per model, an optimiser whose update is the same at any place in the
    stack."""
    from klom_utils.stack import init_state_dict

    models = [load_model(init_state_dict("digits_mlp", s), arch="digits_mlp") for s in (4, 5, 6)]
    kwargs = dict(dataset="digits", config=SMALL.get(name), forget_set=3)
    stacked = U.unlearn_models(name, models, digits_unlearn_data, model_ids=[7, 8, 9], **kwargs)
    assert U.get_method(name).stacked
    for j, (model, i) in enumerate(zip(models, [7, 8, 9])):
        alone = U.unlearn_models(name, [model], digits_unlearn_data, model_ids=[i], **kwargs)
        assert _same(stacked[j], alone[0]), (name, j)
        direct = U.get_method(name)(model, digits_unlearn_data,
                                    U.resolve_config(name, "digits", SMALL.get(name)),
                                    generator=U.model_generator(i, dataset="DIGITS",
                                                                forget_set=3, method=name))
        assert _same(direct, alone[0])  # the single-model call is a stack of one
    if name != "datamodel_direct":  # models differ from each other: no mixing up of models
        assert not _same(stacked[0], stacked[1])
    in_chunks = U.unlearn_models(name, models, digits_unlearn_data, model_ids=[7, 8, 9],
                                 stack=2, **kwargs)
    assert all(_same(a, b) for a, b in zip(in_chunks, stacked))


@pytest.mark.parametrize("name", ["scrub", "oracle_matching"])
def test_resnet9_stacks_match_alone_within_rounding(name):
    """ResNet-9 stacks use grouped convolutions (a stack of one: a plain ResNet-9), so stacked
    and alone agree to float rounding (SGD: 1e-6 in the weights; Adam's first steps can flip
    the sign of a near-zero gradient's update, so a few weights differ by up to 2 * lr)."""
    from klom_utils.stack import init_state_dict

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(12, 3, 16, 16, generator=g), torch.randint(0, 10, (12,), generator=g)
    t = torch.randn(12, 10, generator=g)
    data = U.UnlearnData(forget_x=x[:4], forget_y=y[:4], retain_x=x[4:], retain_y=y[4:],
                         oracle_forget_logits=t[:4], oracle_retain_logits=t[4:])
    models = [load_model(init_state_dict("resnet9", s)) for s in (1, 2)]
    cfg = {"epochs": 1, "lr": 0.01, **({"max_epochs": 1} if name == "scrub" else {})}
    stacked = U.unlearn_models(name, models, data, dataset="cifar10", config=cfg)
    for j, model in enumerate(models):
        alone = U.unlearn_models(name, [model], data, dataset="cifar10", config=cfg,
                                 model_ids=[j])[0]
        a, b = stacked[j].state_dict(), alone.state_dict()
        if name == "scrub":
            for k in a:
                torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0)
        torch.testing.assert_close(predict_logits(stacked[j], x), predict_logits(alone, x),
                                   atol=1e-2 if name == "oracle_matching" else 1e-5, rtol=0)


def test_unlearn_store_stacks_resume_and_equal_one_at_a_time(digits_store, digits_data):
    kwargs = dict(config={"epochs": 2, "max_epochs": 1}, progress=False)
    folders = {}
    for how, stack in (("s1", 1), ("s3", 3)):
        name = f"scrub_stack_{how}"
        shutil.rmtree(digits_store.path(unlearned_folder("DIGITS", name, FORGET_SET)),
                      ignore_errors=True)
        first = U.unlearn_store(digits_store, digits_data, FORGET_SET, "scrub", [0, 1],
                                name=name, stack=stack, **kwargs)
        run = U.unlearn_store(digits_store, digits_data, FORGET_SET, "scrub", range(5),
                              name=name, stack=stack, **kwargs)
        assert first["written"] == [0, 1] and run["skipped"] == [0, 1]
        assert run["written"] == [2, 3, 4]
        folders[how] = run["folder"]
        record = digits_store.read_json(f"{run['folder']}/{UNLEARN_RECORD}")
        assert set(record) == {"method", "dataset", "forget_set", "config", "seed",
                               "oracle_ids"}  # the record is as before: no stack size in it
    for i in range(5):
        for split in ("train", "val"):
            assert torch.equal(digits_store.logits(folders["s1"], split, i),
                               digits_store.logits(folders["s3"], split, i))
    with pytest.raises(ValueError, match="stack must be a positive integer or 'auto', got 0"):
        U.unlearn_store(digits_store, digits_data, FORGET_SET, "scrub", [0], stack=0)


def test_user_methods_may_opt_in_to_stacks(digits_store, digits_data):
    from klom_utils.stack import ModelStack

    seen = []

    @U.register_method("stacked_shrink_test", {"factor": 0.5}, stacked=True, replace=True)
    def stacked_shrink(models, data, config, *, generators):
        """Scale each model's weights by factor times a random number of its own."""
        seen.append(models.m)
        out = models.copy()
        with torch.no_grad():
            for p in out.parameters():
                scale = torch.stack([config["factor"] * torch.rand((), generator=g)
                                     for g in generators])
                p.mul_(scale.repeat_interleave(p.shape[0] // models.m).view(
                    -1, *[1] * (p.dim() - 1)))
        return out.eval()

    try:
        run = U.unlearn_store(digits_store, digits_data, FORGET_SET, "stacked_shrink_test",
                              range(4), progress=False)
        assert seen == [4] and run["written"] == [0, 1, 2, 3]
        model = load_model(digits_store.state_dict(full_models_folder("DIGITS"), 2),
                           arch="auto")
        alone = stacked_shrink(model, None, {"factor": 0.5}, generator=U.model_generator(
            2, dataset="DIGITS", forget_set=FORGET_SET, method="stacked_shrink_test"))
        assert seen == [4, 1] and isinstance(alone, DigitsMLP)
        assert torch.equal(predict_logits(alone, digits_data.normalize(digits_data.val_x)),
                           digits_store.logits(run["folder"], "val", 2))
        assert U.get_method(stacked_shrink) is U.METHODS["stacked_shrink_test"]
        stack = ModelStack.of([model, model])
        with pytest.raises(ValueError, match="needs generators"):
            stacked_shrink(stack, None, {"factor": 0.5})
        with pytest.raises(ValueError, match="1 generators for a stack of 2"):
            U.METHODS["stacked_shrink_test"].on_stack(stack, None, {}, generators=[None])
    finally:
        U.METHODS.pop("stacked_shrink_test", None)
    def one_at_a_time(model, data, config, *, generator):
        return model

    with pytest.raises(ValueError, match="works one model at a time"):
        U.get_method(one_at_a_time).on_stack(stack, None, {}, generators=[None, None])


def test_model_stacks_check_what_they_hold():
    from klom_utils.stack import ModelStack

    with pytest.raises(ValueError, match=r"cannot stack 2 models of types \['Linear'\]"):
        ModelStack.of([torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)])
    with pytest.raises(ValueError, match="at least one model"):
        ModelStack.of([])
    assert ModelStack.arch_of([DigitsMLP(hidden=8), DigitsMLP(hidden=16)]) is None
    one = ModelStack.of([torch.nn.Linear(3, 2)])  # any single module: wrapped
    assert one.arch is None and one(torch.zeros(1, 5, 3)).shape == (1, 5, 2)
    with pytest.raises(ValueError, match="batches for 2 models, the stack has 1"):
        one(torch.zeros(2, 5, 3))


@pytest.mark.parametrize("method, item, match", [
    ("gradient_ascent", "lr=nan", "lr=nan is out of range: expected a finite number > 0"),
    ("gradient_ascent", "lr=inf", "lr=inf is out of range"),
    ("gradient_ascent", "epochs=-1", "epochs=-1 is out of range: expected a finite number >= 1"),
    ("gradient_descent", "batch_size=0", "batch_size=0 is out of range"),
    ("neggrad_plus", "alpha=1.5", r"alpha=1.5 is out of range: .* >= 0.0 and <= 1.0"),
    ("oracle_matching", "lr_decay=0", "lr_decay=0.0 is out of range"),
    ("scrub", "momentum=1.5", "momentum=1.5 is out of range"),
])
def test_config_ranges_are_checked_before_anything_is_written(tmp_path, method, item, match):
    with pytest.raises(ValueError, match=match):
        U.resolve_config(method, "digits", [item])
    # through unlearn_store: nothing is written, so the corrected command runs
    from klom_utils.train import train_models

    train_models("digits", tmp_path, [0], device="cpu", progress=False)
    with pytest.raises(ValueError, match=match):
        U.unlearn_store(tmp_path, "digits", 1, method, [0], config=[item], progress=False,
                        oracle_ids=[0])
    assert not (tmp_path / "unlearned").exists()


def test_the_former_module_still_names_everything():
    """Code written against klom_utils.unlearn (plugins, notebooks) runs unchanged."""
    from klom_utils import unlearn, unlearning
    from klom_utils.unlearning.scrub import scrub

    assert unlearn.register_method is unlearning.register_method
    assert unlearn.unlearn_store is unlearning.unlearn_store and unlearn.scrub is scrub
    assert unlearn.CONFIG_FILE == UNLEARN_RECORD and unlearn.HELD_OUT_ORACLE_START == 1000
    assert set(unlearn.METHODS) >= {"do_nothing", "scrub", "datamodel_matching"}

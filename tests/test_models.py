"""Models: ResNet-9 checkpoint compatibility (the Hub's key list), stacked variants, loading."""

import numpy as np
import pytest
import torch

from klom_utils import models
from klom_utils.models import CheckpointError, load_model

# The entries of a royrin/KLOM-models ResNet-9 checkpoint (reference/resnet9_state_dict.txt):
# key, shape, dtype, exactly as saved.
HUB_RESNET9_ENTRIES = """\
model.0.0.weight (64, 3, 3, 3) float32
model.0.1.weight (64,) float32
model.0.1.bias (64,) float32
model.0.1.running_mean (64,) float32
model.0.1.running_var (64,) float32
model.0.1.num_batches_tracked () int64
model.1.0.weight (128, 64, 5, 5) float32
model.1.1.weight (128,) float32
model.1.1.bias (128,) float32
model.1.1.running_mean (128,) float32
model.1.1.running_var (128,) float32
model.1.1.num_batches_tracked () int64
model.2.module.0.0.weight (128, 128, 3, 3) float32
model.2.module.0.1.weight (128,) float32
model.2.module.0.1.bias (128,) float32
model.2.module.0.1.running_mean (128,) float32
model.2.module.0.1.running_var (128,) float32
model.2.module.0.1.num_batches_tracked () int64
model.2.module.1.0.weight (128, 128, 3, 3) float32
model.2.module.1.1.weight (128,) float32
model.2.module.1.1.bias (128,) float32
model.2.module.1.1.running_mean (128,) float32
model.2.module.1.1.running_var (128,) float32
model.2.module.1.1.num_batches_tracked () int64
model.3.0.weight (256, 128, 3, 3) float32
model.3.1.weight (256,) float32
model.3.1.bias (256,) float32
model.3.1.running_mean (256,) float32
model.3.1.running_var (256,) float32
model.3.1.num_batches_tracked () int64
model.5.module.0.0.weight (256, 256, 3, 3) float32
model.5.module.0.1.weight (256,) float32
model.5.module.0.1.bias (256,) float32
model.5.module.0.1.running_mean (256,) float32
model.5.module.0.1.running_var (256,) float32
model.5.module.0.1.num_batches_tracked () int64
model.5.module.1.0.weight (256, 256, 3, 3) float32
model.5.module.1.1.weight (256,) float32
model.5.module.1.1.bias (256,) float32
model.5.module.1.1.running_mean (256,) float32
model.5.module.1.1.running_var (256,) float32
model.5.module.1.1.num_batches_tracked () int64
model.6.0.weight (128, 256, 3, 3) float32
model.6.1.weight (128,) float32
model.6.1.bias (128,) float32
model.6.1.running_mean (128,) float32
model.6.1.running_var (128,) float32
model.6.1.num_batches_tracked () int64
model.9.weight (10, 128) float32
"""


def hub_entries():
    out = []
    for line in HUB_RESNET9_ENTRIES.strip().splitlines():
        key, rest = line.split(" ", 1)
        shape, dtype = rest.rsplit(" ", 1)
        shape = tuple(int(v) for v in shape.strip("()").split(",") if v.strip())
        out.append((key, shape, getattr(torch, dtype)))
    return out


def fake_hub_checkpoint(seed=0):
    """A state dict shaped exactly like the Hub's checkpoints (random values, prefix model.)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape, dtype in hub_entries():
        if dtype == torch.int64:
            sd[key] = torch.tensor(2346, dtype=dtype)
        elif key.endswith("running_var"):
            sd[key] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[key] = torch.randn(shape, generator=g) * 0.1
    return sd


# ---------------------------------------------------------------------------------- ResNet-9

def test_resnet9_state_dict_matches_the_hub_exactly():
    sd = models.ResNet9().state_dict()
    ours = [("model." + k, tuple(v.shape), v.dtype) for k, v in sd.items()]
    assert ours == hub_entries()  # same keys, order, shapes and dtypes
    n_params = sum(p.numel() for p in models.ResNet9().parameters())
    assert n_params == 2274880


def test_resnet9_forward_and_scale():
    model = models.ResNet9().eval()
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert isinstance(model[10], models.Mul) and model[10].weight == 0.2


@pytest.mark.parametrize("prefix", ["model.", "module.model.", "_orig_mod.model.",
                                    "module._orig_mod.model.", ""])
def test_load_model_accepts_known_prefixes(prefix):
    sd = {prefix + k[len("model."):]: v for k, v in fake_hub_checkpoint().items()}
    model = load_model(sd, arch="resnet9")
    assert not model.training
    torch.testing.assert_close(model[0][0].weight, sd[prefix + "0.0.weight"])
    assert int(model[6][1].num_batches_tracked) == 2346


def test_load_model_from_a_file(tmp_path):
    sd = fake_hub_checkpoint(1)
    path = tmp_path / "sd_3____epoch_23.pt"
    torch.save(sd, path)
    model = load_model(path)
    x = torch.randn(2, 3, 32, 32)
    again = load_model(str(path))
    torch.testing.assert_close(model(x), again(x))
    with pytest.raises(FileNotFoundError, match="sd_4____epoch_23.pt"):
        load_model(tmp_path / "sd_4____epoch_23.pt")


def test_load_model_names_missing_and_unexpected_keys():
    sd = fake_hub_checkpoint()
    del sd["model.5.module.1.1.running_var"]
    with pytest.raises(CheckpointError, match=r"missing keys \['5\.module\.1\.1\.running_var'\]"):
        load_model(sd)
    sd = fake_hub_checkpoint()
    sd["model.9.bias"] = torch.zeros(10)
    with pytest.raises(CheckpointError, match=r"unexpected keys \['9\.bias'\]"):
        load_model(sd)
    sd = fake_hub_checkpoint()
    sd["model.9.weight"] = torch.zeros(10, 64)
    with pytest.raises(CheckpointError, match=r"9\.weight: \(10, 64\)"):
        load_model(sd)
    with pytest.raises(CheckpointError, match="list"):
        load_model([1, 2])
    with pytest.raises(ValueError, match="unknown arch 'vit'"):
        load_model(fake_hub_checkpoint(), arch="vit")


def test_stacked_resnet9_equals_separate_models():
    torch.manual_seed(0)
    singles = [models.ResNet9() for _ in range(2)]
    sds = [m.state_dict() for m in singles]
    for sd in sds:  # non-trivial BN statistics
        for k in sd:
            if k.endswith("running_mean"):
                sd[k].normal_()
    for m, sd in zip(singles, sds):
        m.load_state_dict(sd)
    stacked = models.StackedResNet9(2)
    stacked.load_state_dict(models.stack_state_dicts(sds))
    x = torch.randn(2, 4, 3, 32, 32)  # one batch per model
    xs = x.transpose(0, 1).reshape(4, 6, 32, 32)
    for train in (True, False):
        for m in singles + [stacked]:
            m.train(train)
        out = stacked(xs)
        assert out.shape == (4, 2, 10)
        for i, m in enumerate(singles):
            torch.testing.assert_close(out[:, i], m(x[i]), atol=1e-4, rtol=1e-4)
    back = models.unstack_state_dict(stacked.state_dict(), 2)
    for sd_back, m in zip(back, singles):
        for k, v in m.state_dict().items():
            torch.testing.assert_close(sd_back[k], v)


# ---------------------------------------------------------------------------------- DIGITS MLP

def test_stacked_mlp_equals_digits_mlps():
    torch.manual_seed(0)
    singles = [models.DigitsMLP(hidden=16) for _ in range(3)]
    stacked = models.StackedMLP(3, hidden=16)
    stacked.load_stacked_state_dict(models.stack_state_dicts([m.state_dict() for m in singles]))
    x = torch.randn(3, 5, 64)
    shared = torch.randn(7, 64)
    out, out_shared = stacked(x), stacked(shared)
    for i, m in enumerate(singles):
        torch.testing.assert_close(out[i], m(x[i]))
        torch.testing.assert_close(out_shared[i], m(shared))
    for i, sd in enumerate(models.unstack_state_dict(stacked.stacked_state_dict(), 3, "model.")):
        model = load_model(sd, arch="digits_mlp")
        assert isinstance(model, models.DigitsMLP) and model[1].out_features == 16
        torch.testing.assert_close(model(shared), singles[i](shared))
        assert isinstance(load_model(sd, arch="auto"), models.DigitsMLP)


def test_build_model_and_infer_arch():
    assert isinstance(models.build_model("digits_mlp"), models.DigitsMLP)
    assert models.infer_arch(fake_hub_checkpoint()) == "resnet9"
    with pytest.raises(ValueError, match="unknown arch"):
        models.build_model("resnet18")
    with pytest.raises(CheckpointError, match="cannot tell"):
        models.infer_arch({"foo.weight": torch.zeros(1)})


def test_stack_unstack_round_trip_keeps_scalars():
    sds = [{"a": torch.full((2, 3), float(i)), "n": torch.tensor(5)} for i in range(4)]
    stacked = models.stack_state_dicts(sds)
    assert stacked["a"].shape == (8, 3) and int(stacked["n"]) == 5
    back = models.unstack_state_dict(stacked, 4)
    assert all(torch.equal(b["a"], s["a"]) and int(b["n"]) == 5 for b, s in zip(back, sds))
    np.testing.assert_equal(back[2]["a"].numpy(), 2.0)

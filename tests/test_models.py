"""Models: ResNet-9 and ResNet-18 checkpoint compatibility (the Hub's key lists), stacked
variants, loading."""

from pathlib import Path

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
        models.build_model("resnet50")
    with pytest.raises(CheckpointError, match="cannot tell"):
        models.infer_arch({"foo.weight": torch.zeros(1)})


def test_stack_unstack_round_trip_keeps_scalars():
    sds = [{"a": torch.full((2, 3), float(i)), "n": torch.tensor(5)} for i in range(4)]
    stacked = models.stack_state_dicts(sds)
    assert stacked["a"].shape == (8, 3) and int(stacked["n"]) == 5
    back = models.unstack_state_dict(stacked, 4)
    assert all(torch.equal(b["a"], s["a"]) and int(b["n"]) == 5 for b, s in zip(back, sds))
    np.testing.assert_equal(back[2]["a"].numpy(), 2.0)


# ---------------------------------------------------------------------------------- ResNet-18

# The entries of a royrin/KLOM-models LIVING-17 checkpoint (reference/resnet18_state_dict.txt,
# torchvision's resnet18 with fc = Linear(512, 17)): key, shape, dtype, exactly as saved.
RESNET18_ENTRIES = Path(__file__).parent / "data" / "resnet18_state_dict.txt"


def resnet18_entries():
    out = []
    for line in RESNET18_ENTRIES.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, rest = line.split(" ", 1)
            shape, dtype = rest.rsplit(" ", 1)
            shape = tuple(int(v) for v in shape.strip("()").split(",") if v.strip())
            out.append((key, shape, getattr(torch, dtype)))
    return out


def fake_living17_checkpoint(seed=0, prefix=""):
    """A state dict shaped exactly like the Hub's LIVING-17 checkpoints (random values)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape, dtype in resnet18_entries():
        if dtype == torch.int64:
            sd[prefix + key] = torch.tensor(1234, dtype=dtype)
        elif key.endswith("running_var"):
            sd[prefix + key] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[prefix + key] = torch.randn(shape, generator=g) * 0.05
    return sd


def test_resnet18_state_dict_matches_the_hub_exactly():
    ours = [(k, tuple(v.shape), v.dtype) for k, v in models.ResNet18(17).state_dict().items()]
    assert ours == resnet18_entries()  # same keys, order, shapes and dtypes
    # torchvision's resnet18 has 11,689,512 parameters with 1000 classes; 513 per class
    n_params = sum(p.numel() for p in models.ResNet18(17).parameters())
    assert n_params == 11_689_512 - 513 * (1000 - 17)


@pytest.mark.parametrize("prefix", ["", "model.", "module.", "_orig_mod.module."])
def test_load_resnet18_strict_with_known_prefixes(prefix):
    sd = fake_living17_checkpoint(prefix=prefix)
    model = load_model(sd, arch="resnet18", num_classes=17)
    assert isinstance(model, models.ResNet18) and not model.training
    torch.testing.assert_close(model.layer3[0].downsample[0].weight,
                               sd[prefix + "layer3.0.downsample.0.weight"])
    assert int(model.bn1.num_batches_tracked) == 1234
    assert models.infer_arch(sd) == "resnet18"
    assert isinstance(load_model(sd, arch="auto"), models.ResNet18)


def test_load_resnet18_names_bad_keys_and_class_counts(tmp_path):
    sd = fake_living17_checkpoint()
    del sd["layer2.0.downsample.1.running_mean"]
    with pytest.raises(CheckpointError,
                       match=r"resnet18: missing keys \['layer2\.0\.downsample\.1\.running_mean'\]"):
        load_model(sd, arch="resnet18")
    sd = fake_living17_checkpoint()
    sd["fc.extra"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"unexpected keys \['fc\.extra'\]"):
        load_model(sd, arch="resnet18")
    with pytest.raises(CheckpointError, match=r"fc\.weight: \(17, 512\) \(expected \(10, 512\)\)"):
        load_model(fake_living17_checkpoint(), arch="resnet18", num_classes=10)
    with pytest.raises(ValueError, match="num_classes must be a positive integer.*0"):
        load_model(fake_living17_checkpoint(), arch="resnet18", num_classes=0)
    with pytest.raises(CheckpointError, match="missing keys"):  # a ResNet-9 is no ResNet-18
        load_model(fake_hub_checkpoint(), arch="resnet18")
    path = tmp_path / "sd_0____epoch_24.pt"
    torch.save(fake_living17_checkpoint(3), path)
    assert load_model(path, arch="resnet18").fc.out_features == 17


def _reference_resnet18(sd, x):
    """torchvision's resnet18 forward written out with torch.nn.functional (eval mode)."""
    import torch.nn.functional as F

    def bn(prefix, t):
        return F.batch_norm(t, sd[prefix + ".running_mean"], sd[prefix + ".running_var"],
                            sd[prefix + ".weight"], sd[prefix + ".bias"], False, 0.1, 1e-5)

    x = F.relu(bn("bn1", F.conv2d(x, sd["conv1.weight"], stride=2, padding=3)))
    x = F.max_pool2d(x, 3, 2, 1)
    for layer in range(1, 5):
        for block in range(2):
            p = f"layer{layer}.{block}"
            stride = 2 if layer > 1 and block == 0 else 1
            out = F.relu(bn(p + ".bn1", F.conv2d(x, sd[p + ".conv1.weight"], stride=stride,
                                                 padding=1)))
            out = bn(p + ".bn2", F.conv2d(out, sd[p + ".conv2.weight"], padding=1))
            if p + ".downsample.0.weight" in sd:
                x = bn(p + ".downsample.1",
                       F.conv2d(x, sd[p + ".downsample.0.weight"], stride=stride))
            x = F.relu(out + x)
    return F.linear(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1), sd["fc.weight"], sd["fc.bias"])


def test_resnet18_forward_known_output():
    # zero convolutions, BN (mean 0, var 1, weight 1, bias 0.5): every BN outputs 0.5, so each
    # block outputs 0.5 + its shortcut: the stem 0.5, then 1.0 and 1.5 per layer (a downsample
    # resets the shortcut to 0.5); pooled features are all 1.5, logits 1.5 * row sums + bias
    sd = fake_living17_checkpoint()
    for k, v in sd.items():
        if k.endswith(("conv1.weight", "conv2.weight", "downsample.0.weight")):
            sd[k] = torch.zeros_like(v)
        elif k.endswith(("running_mean", "bias")) and not k.startswith("fc"):
            sd[k] = torch.full_like(v, 0.5 if k.endswith("bias") else 0.0)
        elif k.endswith(("running_var", "weight")) and not k.startswith("fc"):
            sd[k] = torch.ones_like(v) - (1e-5 if k.endswith("running_var") else 0.0)
    model = load_model(sd, arch="resnet18")
    out = model(torch.randn(2, 3, 64, 64))
    expected = 1.5 * sd["fc.weight"].sum(1) + sd["fc.bias"]
    torch.testing.assert_close(out, expected.expand(2, 17), rtol=1e-5, atol=1e-5)
    # random weights: the same as the functional reference, at two input sizes
    sd = fake_living17_checkpoint(5)
    model = load_model(sd, arch="resnet18")
    for size in (32, 96):
        x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(size))
        with torch.no_grad():
            torch.testing.assert_close(model(x), _reference_resnet18(sd, x), rtol=1e-4,
                                       atol=1e-5)


def test_resnet18_matches_torchvision_when_installed():
    tv = pytest.importorskip("torchvision")
    ref = tv.models.resnet18()
    ref.fc = torch.nn.Linear(512, 17)
    sd = fake_living17_checkpoint(2)
    ref.load_state_dict(sd, strict=True)
    ours = load_model(sd, arch="resnet18", num_classes=17)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref.eval()(x))
    # the same initialisation scheme: matching per-tensor statistics
    torch.manual_seed(0)
    fresh = models.ResNet18(17).state_dict()
    torch.manual_seed(0)
    tv_fresh = tv.models.resnet18(num_classes=17).state_dict()
    for k in ("conv1.weight", "layer4.1.conv2.weight", "fc.weight"):
        assert fresh[k].std().item() == pytest.approx(tv_fresh[k].std().item(), rel=0.05), k

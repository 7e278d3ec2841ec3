"""The faithful RepNet: published layout, loading, forward shapes, ResNet v2 details, bad files."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgecount.errors import EdgecountError
from edgecount.model.faithful import (
    ResNet50V2Encoder, TemporalConv3d, build_faithful, faithful_config, load_faithful,
)

LAYOUT_JSON = Path(__file__).parents[2] / "shared" / "repnet" / "checkpoint-layout.json"
PUBLISHED_TENSORS = 249
PUBLISHED_NUMEL = 25_690_112  # every tensor of the state dict, num_batches_tracked counted as 1


def published_layout(period_classes: int = 32) -> dict[str, tuple[int, ...]]:
    """{name: shape} of the published PyTorch RepNet, written out from the architecture."""
    out: dict[str, tuple[int, ...]] = {}

    def conv(name, cout, cin, k, bias):
        out[f"{name}.weight"] = (cout, cin, k, k)
        if bias:
            out[f"{name}.bias"] = (cout,)

    def bn(name, c):
        for p in ("weight", "bias", "running_mean", "running_var"):
            out[f"{name}.{p}"] = (c,)
        out[f"{name}.num_batches_tracked"] = ()

    conv("encoder.stem.conv", 64, 3, 7, True)
    cin = 64
    for i, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 3))):
        for j in range(blocks):
            p = f"encoder.stages.{i}.blocks.{j}"
            if j == 0:
                conv(f"{p}.downsample.conv", 4 * width, cin, 1, True)
            bn(f"{p}.norm1", cin)
            conv(f"{p}.conv1", width, cin, 1, False)
            bn(f"{p}.norm2", width)
            conv(f"{p}.conv2", width, width, 3, False)
            bn(f"{p}.norm3", width)
            conv(f"{p}.conv3", 4 * width, width, 1, True)
            cin = 4 * width
    out["temporal_conv.0.weight"] = (512, 1024, 3, 3, 3)
    out["temporal_conv.0.bias"] = (512,)
    bn("temporal_conv.1", 512)
    out["tsm_conv.0.weight"] = (32, 1, 3, 3)
    out["tsm_conv.0.bias"] = (32,)
    pos = 1 if period_classes == 32 else 512
    for head, n_out in (("period_length_head", period_classes), ("periodicity_head", 1)):
        t = f"{head}.0"
        out[f"{t}.pos_encoding"] = (1, 64, pos)
        out[f"{t}.input_projection.weight"] = (512, 2048)
        out[f"{t}.input_projection.bias"] = (512,)
        out[f"{t}.transformer_layer.self_attn.in_proj_weight"] = (1536, 512)
        out[f"{t}.transformer_layer.self_attn.in_proj_bias"] = (1536,)
        for lin in ("self_attn.out_proj", "linear1", "linear2"):
            out[f"{t}.transformer_layer.{lin}.weight"] = (512, 512)
            out[f"{t}.transformer_layer.{lin}.bias"] = (512,)
        for norm in ("norm1", "norm2"):
            out[f"{t}.transformer_layer.{norm}.weight"] = (512,)
            out[f"{t}.transformer_layer.{norm}.bias"] = (512,)
        for idx, o in ((1, 512), (3, 512), (5, n_out)):
            out[f"{head}.{idx}.weight"] = (o, 512)
            out[f"{head}.{idx}.bias"] = (o,)
    return out


def shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def fake_state(layout: dict[str, tuple[int, ...]], random: bool = True, seed: int = 0):
    """Tensors of the given names/shapes; random=False gives tiny files (stride-0 views)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in layout.items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(1000 + len(state), dtype=torch.long)
        elif not random:
            state[name] = torch.ones(1).expand(shape)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=g) + 0.5
        else:
            state[name] = torch.randn(shape, generator=g)
    return state


@pytest.fixture(scope="module")
def model32():
    return build_faithful(32).eval()


# --- layout ------------------------------------------------------------------------------

def test_layout_matches_published(model32):
    expected = published_layout(32)
    state = model32.state_dict()
    assert shapes(state) == expected
    assert list(state) == list(expected)  # same order as the published file, too
    assert len(state) == PUBLISHED_TENSORS
    assert sum(v.numel() for v in state.values()) == PUBLISHED_NUMEL


def test_layout_matches_shared_json():
    if not LAYOUT_JSON.exists():
        pytest.skip(f"{LAYOUT_JSON} not present")
    spec = json.loads(LAYOUT_JSON.read_text())["pytorch_state_dict"]
    from_json = {k: tuple(v) for k, v in spec["tensors"].items()}
    assert from_json == published_layout(32)
    assert spec["num_tensors"] == PUBLISHED_TENSORS
    assert spec["num_parameters"] == PUBLISHED_NUMEL


def test_64_class_layout():
    assert shapes(build_faithful(64).state_dict()) == published_layout(64)


def test_configs():
    c32, c64 = faithful_config(32), faithful_config(64)
    assert (c32.period_classes, c32.period_offset, c32.pos_encoding_dim) == (32, 1, 1)
    assert (c64.period_classes, c64.period_offset, c64.pos_encoding_dim) == (64, 0, 512)
    assert c32.temperature == pytest.approx(13.544) and not c32.learn_temperature
    with pytest.raises(ValueError):
        faithful_config(48)


# --- loading -----------------------------------------------------------------------------

@pytest.mark.parametrize("classes", [32, 64])
def test_load_random_published_layout(tmp_path, classes):
    state = fake_state(published_layout(classes), seed=classes)
    path = tmp_path / f"repnet{classes}.pth"
    torch.save(state, path)
    model = load_faithful(path)
    assert not model.training
    assert model.cfg.period_classes == classes
    assert model.cfg.period_offset == (1 if classes == 32 else 0)
    loaded = model.state_dict()
    assert list(loaded) == list(state)
    for name, tensor in state.items():
        assert torch.equal(loaded[name], tensor), name


# --- forward -----------------------------------------------------------------------------

def test_forward_window_shapes(model32):
    g = torch.Generator().manual_seed(1)
    window = torch.randint(0, 256, (1, 64, 112, 112, 3), dtype=torch.uint8, generator=g)
    with torch.inference_mode():
        period, periodicity = model32(window)
    assert period.shape == (1, 64, 32)
    assert periodicity.shape == (1, 64)
    assert torch.isfinite(period).all() and torch.isfinite(periodicity).all()


def test_encoder_output_shape(model32):
    frames = torch.randint(0, 256, (3, 112, 112, 3), dtype=torch.uint8)
    with torch.inference_mode():
        feats = model32.encode(frames)
    assert feats.shape == (3, 1024, 7, 7)
    assert torch.isfinite(feats).all()


def test_64_class_window_head():
    model = build_faithful(64).eval()
    with torch.inference_mode():
        period, periodicity = model.window_head(torch.randn(1, 64, 1024, 7, 7))
    assert period.shape == (1, 64, 64) and periodicity.shape == (1, 64)
    assert torch.isfinite(period).all() and torch.isfinite(periodicity).all()


# --- ResNet v2 / temporal-layer details, checked numerically -------------------------------

def _randomize_bn(bn: nn.BatchNorm2d, g: torch.Generator) -> None:
    c = bn.num_features
    bn.weight.data = torch.rand(c, generator=g) + 0.5
    bn.bias.data = torch.randn(c, generator=g)
    bn.running_mean.copy_(torch.randn(c, generator=g))
    bn.running_var.copy_(torch.rand(c, generator=g) + 0.5)


def test_stride_two_block_shortcut_is_subsampled_raw_input():
    enc = ResNet50V2Encoder().eval()
    g = torch.Generator().manual_seed(2)
    # Stride 2 sits in the last block of conv2 and conv3 (Keras stack2), nowhere else.
    strides = {(i, j): blk.conv2.stride for i, st in enumerate(enc.stages)
               for j, blk in enumerate(st.blocks)}
    assert {k for k, s in strides.items() if s == (2, 2)} == {(0, 2), (1, 3)}
    assert all(s in ((1, 1), (2, 2)) for s in strides.values())
    block = enc.stages[0].blocks[2]
    assert block.downsample is None
    for bn in (block.norm1, block.norm2, block.norm3):
        _randomize_bn(bn, g)
    nn.init.zeros_(block.conv3.weight)
    nn.init.zeros_(block.conv3.bias)
    x = torch.randn(2, 256, 28, 28, generator=g)
    with torch.no_grad():
        out = block(x)
        preact = F.relu(block.norm1(x))
    assert out.shape == (2, 256, 14, 14)
    assert torch.equal(out, x[:, :, ::2, ::2])  # 1x1 max-pool stride 2 over the raw input
    assert not torch.allclose(out, preact[:, :, ::2, ::2])


def test_stem_pool_pads_with_zeros_and_input_is_scaled():
    enc = ResNet50V2Encoder().eval()
    nn.init.zeros_(enc.stem.conv.weight)
    nn.init.constant_(enc.stem.conv.bias, -1.0)
    seen = {}
    enc.stem.conv.register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
    frames = torch.zeros(1, 112, 112, 3, dtype=torch.uint8)
    frames[0, :56] = 255
    with torch.no_grad():
        out = enc.stem(enc.stem.conv.weight.new_zeros(1, 3, 112, 112))
        enc(frames)
    assert out.shape == (1, 64, 28, 28)
    # Keras: ZeroPadding2D(1) then a valid 3x3/2 pool: windows touching the top or left
    # pad see 0 > -1; with PyTorch's -inf padding they would all be -1.
    assert (out[:, :, 0, :] == 0).all() and (out[:, :, :, 0] == 0).all()
    assert (out[:, :, 1:, 1:] == -1).all()
    x = seen["x"]
    assert x.shape == (1, 3, 112, 112)
    assert (x[:, :, :56] == 1).all() and (x[:, :, 56:] == -1).all()


def test_batchnorm_eps():
    enc = ResNet50V2Encoder()
    eps = {m.eps for m in enc.modules() if isinstance(m, nn.BatchNorm2d)}
    assert eps == {1.001e-5}
    assert TemporalConv3d()[1].eps == 1e-3


def test_temporal_conv_dilation_and_spatial_max():
    tc = TemporalConv3d(1, 1).eval()
    nn.init.zeros_(tc[0].weight)
    nn.init.zeros_(tc[0].bias)
    tc[0].weight.data[0, 0, 2, 1, 1] = 1.0  # last temporal tap, spatial centre: x[t + 3]
    x = torch.randn(2, 10, 1, 3, 3, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = tc(x)
    assert out.shape == (2, 10, 1)
    shifted = torch.zeros_like(x)
    shifted[:, :-3] = x[:, 3:]
    expected = F.relu(shifted / (1 + 1e-3) ** 0.5).amax(dim=(3, 4))
    torch.testing.assert_close(out, expected)


# --- bad weights files -------------------------------------------------------------------

def _expect_error(path: Path, *fragments: str) -> str:
    with pytest.raises(EdgecountError) as info:
        load_faithful(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "\n" not in msg and "\r" not in msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


def _small_file(tmp_path: Path) -> Path:
    path = tmp_path / "small.pth"
    torch.save({"a": torch.randn(64, 64), "b": torch.arange(10)}, path)
    return path


def test_missing_file(tmp_path):
    _expect_error(tmp_path / "nope.pth", "does not exist")


def test_directory(tmp_path):
    _expect_error(tmp_path, "directory")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    _expect_error(path, "not a readable PyTorch state dict")


def test_truncated_file(tmp_path):
    path = _small_file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _expect_error(path, "not a readable PyTorch state dict")


def test_garbage_file(tmp_path):
    path = tmp_path / "weights.pth"
    path.write_text("this is not a checkpoint\n" * 20)
    _expect_error(path, "not a readable PyTorch state dict")


@pytest.mark.parametrize("obj", [[1, 2, 3], torch.zeros(3), {}, {"state_dict": {"w": torch.zeros(1)}, "epoch": 3}],
                         ids=["list", "tensor", "empty-dict", "training-checkpoint"])
def test_not_a_state_dict(tmp_path, obj):
    path = tmp_path / "weights.pth"
    torch.save(obj, path)
    _expect_error(path, "not a state dict")


def test_pickled_module(tmp_path):
    path = tmp_path / "module.pth"
    torch.save(nn.Linear(2, 2), path)
    _expect_error(path, "not a plain state dict")


def test_missing_unexpected_and_misshapen_tensors(tmp_path):
    state = fake_state(published_layout(32), random=False)
    for name in ("encoder.stem.conv.weight", "tsm_conv.0.bias", "encoder.stages.1.blocks.2.conv3.bias"):
        del state[name]
    state["encoder.stem.norm.weight"] = torch.zeros(64)
    state["temporal_conv.0.bias"] = torch.zeros(256)
    path = tmp_path / "bad-layout.pth"
    torch.save(state, path)
    msg = _expect_error(path, "3 tensors missing", "encoder.stem.conv.weight",
                        "1 unexpected tensors (encoder.stem.norm.weight)",
                        "temporal_conv.0.bias (256,) instead of (512,)")
    assert len(msg) < 600


def test_only_some_tensors(tmp_path):
    path = _small_file(tmp_path)
    _expect_error(path, "249 tensors missing", "2 unexpected tensors")


def test_unknown_period_classes(tmp_path):
    layout = published_layout(32)
    layout["period_length_head.5.weight"] = (48, 512)
    layout["period_length_head.5.bias"] = (48,)
    path = tmp_path / "repnet48.pth"
    torch.save(fake_state(layout, random=False), path)
    _expect_error(path, "48 period classes")

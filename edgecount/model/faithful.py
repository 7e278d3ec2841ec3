"""The published RepNet, layer for layer, so its PyTorch weights load with ``strict=True``.

Encoder: Keras ``ResNet50V2`` (pre-activation) cut after ``conv4_block3``, with the
Keras quirks that matter for the published weights:

* the stem conv, the 1x1 ``_0`` shortcut convs and the 1x1 ``_3`` convs carry a bias;
* the stride 2 of a stage sits in the LAST block of the previous stage
  (``conv2_block3``, ``conv3_block4``): there the 3x3 conv has stride 2 and the
  shortcut is a 1x1 max-pool with stride 2 over the raw block input;
* BatchNorm eps 1.001e-5;
* the stem max-pool pads with zeros, not -inf (Keras ``ZeroPadding2D`` + valid pool).

Temporal layer: Conv3d 1024 -> 512 (kernel 3, dilation (3, 1, 1), "same"),
BatchNorm3d (eps 1e-3), ReLU, global max over space.

Two released variants: ckpt-88 (32 period classes, period = argmax + 1,
positional embedding (1, 64, 1)), the one converted to PyTorch, and ckpt-70
(64 classes, period = argmax, positional embedding (1, 64, 512)).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from edgecount.errors import EdgecountError
from edgecount.model.repnet import HeadConfig, RepNet

RESNET_BN_EPS = 1.001e-5
TEMPORAL_BN_EPS = 1e-3

# (bottleneck width, blocks) of the stages kept: conv2_x, conv3_x, conv4_block1..3.
RESNET_STAGES = ((64, 3), (128, 4), (256, 3))
# Stride of the last block of each kept stage (Keras stack2 puts stride1=2 there;
# conv4's stride-2 block is conv4_block6, which is cut away).
RESNET_LAST_STRIDES = (2, 2, 1)

PERIOD_HEAD_KEY = "period_length_head.5.weight"
VARIANTS = (32, 64)


class Stem(nn.Module):
    """ZeroPadding(3) + conv 7x7 s2 (bias) + ZeroPadding(1) + max-pool 3x3 s2."""

    def __init__(self, out_channels: int = 64):
        super().__init__()
        self.conv = nn.Conv2d(3, out_channels, 7, stride=2, padding=3, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        # Keras pads the conv output with zeros before a valid pool: not PyTorch's -inf.
        return F.max_pool2d(F.pad(x, (1, 1, 1, 1)), 3, stride=2)


class Downsample(nn.Module):
    """The 1x1 ``_0`` shortcut conv (with bias) of a stage's first block, on the pre-activation."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class PreActBottleneck(nn.Module):
    """Keras ``block2``: pre-activation bottleneck of ResNet v2."""

    def __init__(self, in_channels: int, width: int, stride: int = 1, conv_shortcut: bool = False):
        super().__init__()
        out_channels = 4 * width
        self.stride = stride
        # Registered before norm1 to keep the published state-dict order.
        self.downsample = Downsample(in_channels, out_channels, stride) if conv_shortcut else None
        self.norm1 = nn.BatchNorm2d(in_channels, eps=RESNET_BN_EPS)  # preact_bn
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(width, eps=RESNET_BN_EPS)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.norm3 = nn.BatchNorm2d(width, eps=RESNET_BN_EPS)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        preact = F.relu(self.norm1(x))
        if self.downsample is not None:
            shortcut = self.downsample(preact)
        elif self.stride > 1:
            shortcut = x[:, :, :: self.stride, :: self.stride]  # MaxPooling2D(1, strides=stride)(x)
        else:
            shortcut = x
        y = F.relu(self.norm2(self.conv1(preact)))
        y = F.relu(self.norm3(self.conv2(y)))
        return shortcut + self.conv3(y)


class Stage(nn.Module):
    def __init__(self, in_channels: int, width: int, blocks: int, last_stride: int):
        super().__init__()
        layers = []
        for j in range(blocks):
            stride = last_stride if j == blocks - 1 else 1
            layers.append(PreActBottleneck(in_channels if j == 0 else 4 * width, width, stride,
                                           conv_shortcut=j == 0))
        self.blocks = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class ResNet50V2Encoder(nn.Module):
    """Keras ResNet50V2 up to ``conv4_block3_out``: (N, H, W, 3) uint8 RGB -> (N, 1024, H/16, W/16).

    Pixels are scaled to [-1, 1] as (x - 127.5) / 127.5 inside. The output is the
    raw residual sum of ``conv4_block3`` (ResNet v2 has no BN/ReLU after a block).
    """

    out_channels = 1024

    def __init__(self):
        super().__init__()
        self.stem = Stem(64)
        stages, in_channels = [], 64
        for (width, blocks), last_stride in zip(RESNET_STAGES, RESNET_LAST_STRIDES):
            stages.append(Stage(in_channels, width, blocks, last_stride))
            in_channels = 4 * width
        self.stages = nn.Sequential(*stages)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected frames of shape (N, H, W, 3), got {tuple(frames.shape)}")
        x = (frames.permute(0, 3, 1, 2).float() - 127.5) / 127.5
        return self.stages(self.stem(x))


class TemporalConv3d(nn.Sequential):
    """Conv3d + BatchNorm3d (as ``temporal_conv.0`` / ``.1``), ReLU, max over space.

    (B, T, C, H, W) -> (B, T, 512).
    """

    def __init__(self, in_channels: int = 1024, out_channels: int = 512):
        super().__init__(
            nn.Conv3d(in_channels, out_channels, 3, padding=(3, 1, 1), dilation=(3, 1, 1)),
            nn.BatchNorm3d(out_channels, eps=TEMPORAL_BN_EPS),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features.transpose(1, 2)  # (B, C, T, H, W)
        x = F.relu(self[1](self[0](x)))
        return x.amax(dim=(3, 4)).transpose(1, 2)  # (B, T, C)


def faithful_config(period_classes: int = 32) -> HeadConfig:
    """Head sizes of a released variant: 32 classes (ckpt-88) or 64 (ckpt-70)."""
    if period_classes == 32:
        return HeadConfig(period_classes=32, period_offset=1, pos_encoding_dim=1)
    if period_classes == 64:
        return HeadConfig(period_classes=64, period_offset=0, pos_encoding_dim=512)
    raise ValueError(f"RepNet was released with 32 or 64 period classes, not {period_classes}")


def build_faithful(period_classes: int = 32) -> RepNet:
    """The published RepNet with freshly initialised weights (train mode)."""
    return RepNet(ResNet50V2Encoder(), TemporalConv3d(), faithful_config(period_classes))


def _names(keys: list[str], limit: int = 3) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (", ..." if len(keys) > limit else "")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise EdgecountError(f"weights file {path} does not exist")
    if path.is_dir():
        raise EdgecountError(f"weights file {path} is a directory, not a file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError:
        raise EdgecountError(f"weights file {path} cannot be read: permission denied") from None
    except pickle.UnpicklingError as exc:
        if "weights only load failed" in str(exc).lower():
            raise EdgecountError(
                f"weights file {path} holds pickled Python objects, not a plain state dict "
                f"(save model.state_dict() instead)") from exc
        raise EdgecountError(f"weights file {path} is not a readable PyTorch state dict") from exc
    except Exception as exc:  # torch raises many types on truncated or corrupt files
        raise EdgecountError(
            f"weights file {path} is not a readable PyTorch state dict (truncated or corrupt?)") from exc
    if not isinstance(obj, dict) or not obj:
        raise EdgecountError(
            f"weights file {path} is not a state dict (got {type(obj).__name__}, "
            f"expected a dict of tensors)")
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        hint = " (a training checkpoint? save its 'state_dict' alone)" if "state_dict" in obj else ""
        raise EdgecountError(
            f"weights file {path} is not a state dict: {len(bad)} entries are not tensors "
            f"({_names(bad)}){hint}")
    return obj


def _check_layout(path: Path, state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} instead of {tuple(v.shape)}"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensors missing ({_names(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors ({_names(unexpected)})")
    if wrong:
        problems.append(f"{len(wrong)} tensors of the wrong shape ({_names(wrong)})")
    if problems:
        raise EdgecountError(f"weights file {path}: " + "; ".join(problems)
                             + " - not the published RepNet layout")


def load_faithful(path: str | Path) -> RepNet:
    """Load the published PyTorch RepNet weights (a plain state dict) into an eval-mode model.

    The variant (32 or 64 period classes) is read from ``period_length_head.5.weight``.
    Any problem with the file raises ``EdgecountError`` with one line naming it.
    """
    path = Path(path)
    state = _read_state_dict(path)
    head = state.get(PERIOD_HEAD_KEY)
    classes = int(head.shape[0]) if head is not None and head.ndim == 2 else 32
    if classes not in VARIANTS:
        raise EdgecountError(
            f"weights file {path}: {PERIOD_HEAD_KEY} has {classes} period classes; "
            f"the released RepNet has 32 or 64")
    model = build_faithful(classes)
    _check_layout(path, state, model.state_dict())
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as exc:  # e.g. a dtype that cannot be copied
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgecountError(f"weights file {path} does not load: {first}") from exc
    return model.eval()

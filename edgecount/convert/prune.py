"""Structured pruning with torch-pruning: channels are removed, not masked.

What is pruned (every width that is internal to a block, so the per-frame
features and the head's input keep their shapes):

* default model: the expansion channels of every MBConv block of the
  EfficientNet-Lite0 trunk (expand conv, its depthwise conv and the project
  conv's input) and the projection's reduced channels; the 256-d embedding and
  the residual temporal conv (0.01 GMAC per window) are kept;
* faithful RepNet: the two inner widths of every ResNet bottleneck, and the
  output channels of the 3D temporal conv (with its BatchNorm), i.e. the
  embedding dimension the TSM is computed from.

Filters are ranked by the L2 norm of their weights (per coupled group) and
widths rounded to multiples of 8 for the SIMD kernels.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from edgecount.model.repnet import RepNet

ROUND_TO = 8


def _encoder_keep(model: RepNet) -> list[nn.Module]:
    """Layers whose output channels must stay: the residual streams and the embedding."""
    from edgecount.model.default import FrameEncoder

    enc = model.encoder
    if isinstance(enc, FrameEncoder):
        net = enc.trunk.net
        return [net._conv_stem, enc.projection.linear] + [b._project_conv for b in net._blocks]
    return [enc.stem.conv] + [m for name, m in enc.named_modules()
                              if name.endswith(("conv3", "downsample.conv"))]


def _kept(channels: int, ratio: float) -> int:
    return max(ROUND_TO, int(round(channels * (1 - ratio) / ROUND_TO)) * ROUND_TO)


def _prune_inner(module: nn.Module, example: torch.Tensor, ratio: float, keep: list[nn.Module]) -> None:
    """Prune every coupled group of ``module`` except the outputs of ``keep``."""
    import torch_pruning as tp

    tp.pruner.MetaPruner(module, example, importance=tp.importance.GroupMagnitudeImportance(p=2),
                         pruning_ratio=ratio, ignored_layers=keep, round_to=ROUND_TO).step()


def _prune_outputs(module: nn.Module, layer: nn.Module, example: torch.Tensor, ratio: float) -> None:
    """Prune the output channels of ``layer``, which are ``module``'s own outputs (MetaPruner
    leaves those alone)."""
    import torch_pruning as tp

    graph = tp.DependencyGraph().build_dependency(module, example_inputs=example)
    channels = layer.weight.shape[0]
    group = graph.get_pruning_group(layer, tp.prune_conv_out_channels, idxs=list(range(channels)))
    weakest = tp.importance.GroupMagnitudeImportance(p=2)(group).argsort()
    drop = weakest[:channels - _kept(channels, ratio)].tolist()
    graph.get_pruning_group(layer, tp.prune_conv_out_channels, idxs=drop).prune()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def prune(model: RepNet, ratio: float, frame_size: int) -> RepNet:
    """A pruned copy of ``model``: ``ratio`` of each prunable width removed."""
    from edgecount.model.faithful import TemporalConv3d

    student = copy.deepcopy(model).eval()
    frames = torch.randint(0, 256, (2, frame_size, frame_size, 3), dtype=torch.uint8)
    _prune_inner(student.encoder, frames, ratio, _encoder_keep(student))
    if isinstance(student.temporal_conv, TemporalConv3d):
        with torch.no_grad():
            features = student.encode(frames[:1]).unsqueeze(0).repeat(1, 8, 1, 1, 1)
        _prune_outputs(student.temporal_conv, student.temporal_conv[0], features, ratio)
    return student

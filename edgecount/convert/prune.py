"""Structured pruning with torch-pruning: channels are removed, not masked.

What is pruned (widths inside the encoder and the temporal layer, so the
per-frame features and the head's input keep their shapes):

* default model: the expansion channels of every MBConv block of the
  EfficientNet-Lite0 trunk (expand conv, its depthwise conv and the project
  conv's input) and the projection's reduced channels; the 256-d embedding and
  the residual temporal conv (0.01 GMAC per window) are kept;
* faithful RepNet: the two inner widths of every ResNet bottleneck, the stem's
  output and the residual streams of ``conv2_x`` and ``conv3_x`` (256 and 512
  channels between blocks; ``conv4_x``'s 1024-channel stream is the encoder's
  output and stays), and the output channels of the 3D temporal conv (with its
  BatchNorm), i.e. the embedding dimension the TSM is computed from. With the
  streams kept, the 1x1 convs on them were most of a pruned encoder's time
  (prune 0.8: 10-12x faster than PyTorch per window; with them pruned, prune
  0.5 is 11-14x and 0.8 22-30x, ``tools/window_latency.py``). The temporal
  conv (44 of the 80 GMAC of a window) is also factorised on its input side: its 1024 input
  channels are projected by a 1x1x1 conv onto the top principal directions
  (uncentred, so zero padding stays exact) of the encoder's features on the
  calibration frames, keeping ``1 - ratio`` of them, and the 3x3x3 conv runs on
  that projection (its weights are the original ones times the projection).

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
    """Layers whose output channels must stay: the default encoder's residual streams and
    embedding; the faithful encoder's last residual stream (its 1024-channel output)."""
    from edgecount.model.default import FrameEncoder

    enc = model.encoder
    if isinstance(enc, FrameEncoder):
        net = enc.trunk.net
        return [net._conv_stem, enc.projection.linear] + [b._project_conv for b in net._blocks]
    return [m for name, m in enc.stages[-1].named_modules() if name.endswith(("conv3", "downsample.conv"))]


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


def factorize_input(conv: nn.Conv3d, features: torch.Tensor, rank: int) -> nn.Sequential:
    """``conv`` as a 1x1x1 projection onto the top-``rank`` uncentred principal directions
    of ``features`` (N, C, ...), then ``conv`` on the projection."""
    x = features.movedim(1, -1).reshape(-1, features.shape[1]).double()
    basis = torch.linalg.eigh(x.T @ x).eigenvectors[:, -rank:].float()  # (C, rank)
    project = nn.Conv3d(conv.in_channels, rank, 1, bias=False)
    reduced = nn.Conv3d(rank, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation)
    with torch.no_grad():
        project.weight.copy_(basis.T.reshape(rank, -1, 1, 1, 1))
        reduced.weight.copy_(torch.einsum("oc...,cr->or...", conv.weight, basis))
        reduced.bias.copy_(conv.bias)
    return nn.Sequential(project, reduced)


def prune(model: RepNet, ratio: float, frames: torch.Tensor) -> RepNet:
    """A pruned copy of ``model``: ``ratio`` of each prunable width removed; ``frames``
    (N, S, S, 3) uint8 calibration frames for the faithful temporal conv's projection."""
    from edgecount.model.faithful import TemporalConv3d

    student = copy.deepcopy(model).eval()
    _prune_inner(student.encoder, frames[:2], ratio, _encoder_keep(student))
    temporal = student.temporal_conv
    if isinstance(temporal, TemporalConv3d):
        with torch.no_grad():
            features = torch.cat([model.encode(frames[i:i + 16]) for i in range(0, len(frames), 16)])
        _prune_outputs(temporal, temporal[0], features[None, :8], ratio)
        temporal[0] = factorize_input(temporal[0], features, _kept(temporal[0].in_channels, ratio))
    return student

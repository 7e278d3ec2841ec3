"""Export of a PyTorch RepNet to a model directory that runs without torch:
``encoder.onnx`` (frames -> per-frame features), ``head.onnx`` (a window of
features -> period logits, periodicity logits) and ``manifest.json``.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from edgecount.model.repnet import RepNet
from edgecount.runtime.manifest import Manifest

OPSET = 17


class _WindowHead(nn.Module):
    def __init__(self, model: RepNet):
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.window_head(features)


def export_onnx(module: nn.Module, example: torch.Tensor, path: Path, input_name: str,
                output_names: list[str], batch_axis_name: str = "n") -> None:
    """Export ``module`` to one self-contained ONNX file with a dynamic first axis."""
    dynamic = {input_name: {0: batch_axis_name}} | {name: {0: batch_axis_name} for name in output_names}
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused transformer op has no ONNX form
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), (example,), str(path), input_names=[input_name],
                              output_names=output_names, dynamic_axes=dynamic, opset_version=OPSET,
                              dynamo=False)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def export_model_dir(model: RepNet, out: Path, name: str, frame_size: int = 112) -> Manifest:
    """Write encoder.onnx, head.onnx and manifest.json for ``model`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    frames = torch.randint(0, 256, (2, frame_size, frame_size, 3), dtype=torch.uint8)
    export_onnx(model.encoder, frames, out / "encoder.onnx", "frames", ["features"])
    with torch.no_grad():
        feature_shape = list(model.encode(frames).shape[1:])
    cfg = model.cfg
    window = torch.randn(1, cfg.num_frames, *feature_shape)
    if len(feature_shape) == 1:
        window = nn.functional.normalize(window, dim=-1)
    export_onnx(_WindowHead(model), window, out / "head.onnx", "features",
                ["period_logits", "periodicity_logits"], "b")
    manifest = Manifest(
        name=name, format="onnx", precision="fp32", frame_size=frame_size,
        num_frames=cfg.num_frames, period_classes=cfg.period_classes,
        period_offset=cfg.period_offset, feature_shape=feature_shape,
    )
    manifest.save(out)
    return manifest

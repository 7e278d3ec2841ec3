"""The fp32 formats: checked ONNX files, and OpenVINO IR converted from them."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from edgecount.errors import EdgecountError
from edgecount.model.repnet import RepNet
from edgecount.runtime.manifest import FORMATS, Manifest

OV_HINTS = {"fp32": "f32", "bf16": "bf16"}  # OpenVINO INFERENCE_PRECISION_HINT per precision


def model_files(folder: Path, fmt: str) -> list[Path]:
    """Every file of a model directory of format ``fmt`` (IR weights included)."""
    files = [folder / name for name in FORMATS[fmt]]
    if fmt == "openvino":
        files += [p.with_suffix(".bin") for p in files]
    return files + [folder / "manifest.json"]


def check_onnx(path: Path) -> None:
    """onnx.checker on the file, and no external data beside it."""
    import onnx

    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path), load_external_data=False)
    external = [t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise EdgecountError(f"{path.name} stores {len(external)} tensors outside the file")


def write_onnx(model: RepNet, folder: Path, name: str) -> Manifest:
    """Export ``model`` to encoder.onnx + head.onnx in ``folder`` and check both files."""
    from edgecount.export import export_model_dir
    from edgecount.model.default import FRAME_SIZE

    manifest = export_model_dir(model, folder, name, frame_size=FRAME_SIZE)
    for file in manifest.files():
        check_onnx(folder / file)
    return manifest


def cpu_has_bf16() -> bool:
    """Whether OpenVINO can run bf16 natively on this CPU."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def write_openvino(onnx_folder: Path, folder: Path, precision: str = "fp32") -> Manifest:
    """Convert an ONNX model directory to OpenVINO IR (.xml/.bin); ``bf16`` stores fp16
    weights and runs with the bf16 inference hint, ``fp32`` keeps fp32 and the f32 hint."""
    import openvino as ov

    folder.mkdir(parents=True, exist_ok=True)
    source = Manifest.load(onnx_folder)
    for onnx_name, ir_name in zip(source.files(), FORMATS["openvino"]):
        ov.save_model(ov.convert_model(str(onnx_folder / onnx_name)), str(folder / ir_name),
                      compress_to_fp16=precision == "bf16")
    manifest = replace(source, format="openvino", precision=precision,
                       extra=source.extra | {"inference_precision": OV_HINTS[precision]})
    manifest.save(folder)
    return manifest

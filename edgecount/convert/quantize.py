"""INT8 post-training quantization of a model directory, calibrated on real frames:
ONNX Runtime static quantization (QDQ) for ONNX, NNCF for OpenVINO.

The encoder is calibrated on frames, the head on windows of the fp32 encoder's
features. What stays in floating point, and why:

* the TSM's distance matmul and softmax and the attention's matmuls and softmax
  (``is_sensitive``): a softmax over 64 frames amplifies a small error in its
  logits, and these ops are a negligible share of the compute;
* the encoder's input normalisation and first conv when the normalisation is
  per channel (``channel_normalised_input``; the default model's ImageNet mean
  and std): three channels with different ranges under one per-tensor INT8
  scale (2.7 of the default encoder's 61 MMAC per frame). Measured with ONNX
  Runtime on held-out synthetic clips with the trained default model, the
  window-centred feature cosine to fp32 (the frame-to-frame changes the head
  counts; see verify.centred_cosines) was 0.71 mean / 0.25 worst with the first
  conv in INT8 and 0.98 / 0.93 without it, and the count moved by 7.4 vs 1.5 on
  average. The faithful RepNet's scalar (x - 127.5) / 127.5 keeps the pixels on
  one grid of 256 levels: its stem conv in INT8 moved the centred cosine of the
  (random-weight) INT8 encoder by 0.003 and took 9 ms instead of 14-21 ms in
  bf16 (OpenVINO profile, pruned 0.8, 2 threads, encoder about 90 ms);
* the encoder's output tail after its last matmul (``output_tail``; the default
  model's bias add and L2 normalisation of the embedding): NNCF rounded the
  embedding to one 8-bit grid before normalising it, and the centred cosine of
  OpenVINO INT8 on 8 held-out synthetic clips was 0.954 with it, 0.979 without
  (ONNX Runtime 0.971 either way);
* (NNCF) per-channel activation ranges: NNCF's default for the inputs of
  depthwise convs. Calibrated on a few clips, a channel that is rarely active
  there gets a tiny range (0.06 of 6) and is clipped on other videos: the
  centred cosine on held-out synthetic clips was 0.79 mean with NNCF's defaults,
  0.96 with per-tensor ranges and 0.97 with per-tensor ranges from the min/max
  of all calibration frames (ONNX Runtime's scheme, 0.98 there), which
  ``quantize_openvino`` uses;
* the whole head, when its INT8 version picks another period class than the fp32
  head on more than 1% of the frames of the calibration windows (same fp32
  features in): measured on the trained default model, whose window-centred
  embeddings make the head very sensitive, agreement was 0.82. The default
  model's head is a small share of a window's compute; the faithful RepNet's
  (its 3D conv) is not, and there the check decides.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from edgecount.convert.calibration import head_windows
from edgecount.convert.verify import Pipeline, RuntimePipeline
from edgecount.runtime.manifest import Manifest

CALIBRATION_BATCH = 16  # frames per encoder calibration sample (ONNX Runtime)
MAX_FRAMES = 480  # frames the encoder is calibrated on, spread over the clips
HEAD_AGREEMENT = 0.99  # INT8 head kept only if its period classes agree this often with fp32


def is_sensitive(op_type: str, name: str) -> bool:
    """A MatMul/Softmax of the TSM (a top-level node of the head) or of the attention."""
    return op_type in ("MatMul", "Softmax") and ("self_attn" in name or name.count("/") == 1)


class Op(NamedTuple):
    """A node of a graph, in graph order."""

    type: str
    name: str
    channel_constant: bool = False  # an elementwise op with a per-channel (not scalar) constant operand


ELEMENTWISE = ("Add", "Sub", "Mul", "Div", "Subtract", "Multiply", "Divide")
CONV = ("Conv", "Convolution")  # ONNX and OpenVINO names
COMPUTE = CONV + ("Gemm", "MatMul")


def onnx_ops(graph) -> list[Op]:
    """The nodes of an ONNX graph."""
    sizes = {t.name: int(np.prod(t.dims)) for t in graph.initializer}
    sizes |= {n.output[0]: int(np.prod(a.t.dims)) for n in graph.node if n.op_type == "Constant"
              for a in n.attribute if a.name == "value"}
    return [Op(n.op_type, n.name, n.op_type in ELEMENTWISE and any(sizes.get(i, 1) > 1 for i in n.input))
            for n in graph.node]


def openvino_ops(model) -> list[Op]:
    """The nodes of an OpenVINO model."""
    def channel_constant(op) -> bool:
        return op.get_type_name() in ELEMENTWISE and any(
            i.get_source_output().get_node().get_type_name() == "Constant" and int(np.prod(i.get_shape())) > 1
            for i in op.inputs())

    return [Op(op.get_type_name(), op.get_friendly_name(), channel_constant(op)) for op in model.get_ordered_ops()]


def channel_normalised_input(ops: list[Op]) -> list[str]:
    """Names of ``ops`` up to the first convolution when the input is normalised per channel
    before it, else none. A scalar normalisation (the faithful RepNet's (x - 127.5) / 127.5)
    keeps the 256 pixel levels on one grid that INT8 holds almost exactly."""
    names, per_channel = [], False
    for op in ops:
        names.append(op.name)
        per_channel |= op.channel_constant
        if op.type in CONV:
            return names if per_channel else []
    return []


def output_tail(ops: list[Op]) -> list[str]:
    """Names of ``ops`` after the last convolution or matmul: the default encoder's L2
    normalisation of its embedding (bias add, ReduceL2, Clip, Div). In INT8 the embedding
    would be rounded to one per-tensor grid of 256 levels before it is normalised."""
    last = max((i for i, op in enumerate(ops) if op.type in COMPUTE), default=len(ops))
    return [op.name for op in ops[last + 1:]]


def kept_nodes(ops: list[Op], encoder: bool) -> list[str]:
    """The nodes of a graph's ``ops`` to leave in floating point."""
    sensitive = [op.name for op in ops if is_sensitive(op.type, op.name)]
    return sensitive + (channel_normalised_input(ops) + output_tail(ops) if encoder else [])


def _batches(data: np.ndarray, size: int) -> list[np.ndarray]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def _spread(frames: np.ndarray) -> np.ndarray:
    return frames[np.linspace(0, len(frames) - 1, min(len(frames), MAX_FRAMES)).round().astype(int)]


def quantize_onnx_file(src: Path, dst: Path, input_name: str, samples: list[np.ndarray], encoder: bool,
                       also_kept: Callable[[list[Op]], list[str]] | None = None,
                       activation_bits: int = 8) -> list[str]:
    """ONNX Runtime static INT8 (QDQ, per-channel weights, uint8 activations) of the graph ``src``
    into ``dst``, calibrated on ``samples`` of its input; returns the nodes left in floating point.
    ``also_kept`` names more nodes to leave in floating point and ``activation_bits`` 16 gives
    16-bit activations (both for measuring where the error comes from, tools/int8_error.py)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{input_name: s} for s in samples])

        def get_next(self) -> dict | None:
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / src.name
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        graph = onnx.load(str(pre), load_external_data=False).graph
        ops = onnx_ops(graph)
        exclude = kept_nodes(ops, encoder) + (also_kept(ops) if also_kept else [])
        activations = {8: QuantType.QUInt8, 16: QuantType.QUInt16}[activation_bits]
        quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=activations, weight_type=QuantType.QInt8, nodes_to_exclude=exclude)
    return exclude


def encoder_samples(frames: np.ndarray, batch: int) -> list[np.ndarray]:
    """Calibration inputs of an encoder: at most MAX_FRAMES frames spread over ``frames``, in batches."""
    return _batches(_spread(frames), batch)


def quantize_onnx(src: Path, dst: Path, frames: np.ndarray, windows: np.ndarray) -> Manifest:
    """ONNX Runtime static INT8 of the ONNX model directory ``src`` into ``dst``."""
    manifest = Manifest.load(src)
    dst.mkdir(parents=True, exist_ok=True)
    encoder, head = manifest.files()
    kept = {Path(encoder).stem: quantize_onnx_file(src / encoder, dst / encoder, "frames",
                                                   encoder_samples(frames, CALIBRATION_BATCH), True),
            Path(head).stem: quantize_onnx_file(src / head, dst / head, "features", _batches(windows, 1), False)}
    out = replace(manifest, precision="int8", extra=manifest.extra | {"kept_higher_precision": kept})
    out.save(dst)
    return out


def quantize_openvino(src: Path, dst: Path, frames: np.ndarray, windows: np.ndarray,
                      inference_precision: str = "f32") -> Manifest:
    """NNCF INT8 of an OpenVINO fp32 directory ``src`` into ``dst``; the layers left in
    floating point run at ``inference_precision`` (f32 or bf16)."""
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    manifest = Manifest.load(src)
    dst.mkdir(parents=True, exist_ok=True)
    core = ov.Core()
    kept = {}
    for file, samples in zip(manifest.files(), (encoder_samples(frames, 1), _batches(windows, 1))):
        model = core.read_model(str(src / file))
        encoder = file == manifest.files()[0]
        exclude = kept_nodes(openvino_ops(model), encoder)
        kept[Path(file).stem] = exclude
        quantized = nncf.quantize(
            model, nncf.Dataset(samples), subset_size=len(samples),
            ignored_scope=nncf.IgnoredScope(names=exclude, validate=False),
            # bias correction crashes on the faithful head (a reshape of its (1, 64, 1) positional embedding)
            advanced_parameters=AdvancedQuantizationParameters(
                disable_bias_correction=not encoder,
                activations_quantization_params=QuantizationParameters(per_channel=False),
                activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX),
        )
        ov.save_model(quantized, str(dst / file), compress_to_fp16=False)
    out = replace(manifest, precision="int8", extra=manifest.extra | {
        "kept_higher_precision": kept, "inference_precision": inference_precision})
    out.save(dst)
    return out


def keep_fp32_head(src: Path, dst: Path, agreement: float) -> None:
    """Put the fp32 head of ``src`` back into the INT8 directory ``dst`` and say so in its manifest."""
    manifest = Manifest.load(dst)
    head = Path(manifest.files()[1])
    for suffix in {head.suffix, ".bin"} if manifest.format == "openvino" else {head.suffix}:
        shutil.copy2(src / head.with_suffix(suffix), dst / head.with_suffix(suffix))
    kept = manifest.extra["kept_higher_precision"] | {
        "head": [f"all of it (INT8 period agreement {agreement:.3f} < {HEAD_AGREEMENT})"]}
    manifest.extra = manifest.extra | {"kept_higher_precision": kept}
    manifest.save(dst)


def head_agreement(reference: Pipeline, other: Pipeline, windows: np.ndarray) -> float:
    """Fraction of frames whose period class is the same from both heads, on the same features."""
    same = [reference.head(w[None])[0].argmax(-1) == other.head(w[None])[0].argmax(-1) for w in windows]
    return float(np.mean(same))


def quantize(src: Path, dst: Path, clips: list[np.ndarray], threads: int, inference_precision: str = "f32") -> Manifest:
    """INT8 of the fp32 model directory ``src`` (ONNX Runtime or NNCF, by its format) into ``dst``:
    the encoder calibrated on the frames of ``clips``, the head on windows of the fp32 encoder's
    features (strides 1..4 and synthetic repetitions); the whole head stays fp32 when its INT8
    version agrees on the period class less often than HEAD_AGREEMENT."""
    fp32 = RuntimePipeline(src, threads)
    windows = head_windows([fp32.encode(c) for c in clips], fp32.model.num_frames)
    frames = np.concatenate(clips)
    if fp32.model.manifest.format == "onnx":
        quantize_onnx(src, dst, frames, windows)
    else:
        quantize_openvino(src, dst, frames, windows, inference_precision)
    probe = windows[np.linspace(0, len(windows) - 1, min(len(windows), 32)).astype(int)]
    agreement = head_agreement(fp32, RuntimePipeline(dst, threads), probe)
    if agreement < HEAD_AGREEMENT:
        keep_fp32_head(src, dst, agreement)
    return Manifest.load(dst)

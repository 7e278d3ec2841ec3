"""What the benchmarks and ``tools/bench_table.py`` share: the variants (each model in
every backend and precision ``edgecount convert`` makes), a PyTorch stand-in with the
runtime's interface, deterministic inputs, the warm-up, and machine facts.

Variants are built with the converter's own functions (``edgecount.convert``:
``write_onnx``, ``write_openvino``, ``quantize`` (with its fp32-head check),
``prune``), calibrated like ``edgecount convert`` does on the shipped sample clip.
Pruned variants are pruned but not fine-tuned (``--finetune-seconds 0``): the
fine-tune changes weights, not shapes, so their speed is that of the shipped
pruned model; their accuracy is not (see README).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.videos import moving_square  # noqa: F401  (the benchmarks' synthetic clip, shared with the tests)

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_S = 0.98  # the seed's PyTorch RepNet, one 64-frame window on an i5 laptop
MODELS = ("repnet", "default")  # the faithful RepNet (random weights: timing only) and the default model
BASELINE = "torch-fp32"
PRUNE_RATIO = 0.5

# variant -> (how it is made, OpenVINO INFERENCE_PRECISION_HINT set explicitly, or None)
VARIANTS: dict[str, tuple[str, str | None]] = {
    "torch-fp32": ("torch", None),
    "onnx-fp32": ("onnx", None),
    "onnx-int8": ("onnx-int8", None),
    "openvino-fp32": ("openvino", "f32"),
    "openvino-bf16": ("openvino-bf16", "bf16"),
    "openvino-int8": ("openvino-int8", "f32"),
    "openvino-int8-bf16": ("openvino-int8", "bf16"),  # same IR, the float layers in bf16
    "pruned-onnx-fp32": ("pruned-onnx", None),
    "pruned-openvino-int8": ("pruned-openvino-int8", "f32"),
}
# What each variant is, in the words of `edgecount convert`.
CONVERT_ARGS = {
    "torch-fp32": "(PyTorch, eval mode)",
    "onnx-fp32": "--format onnx --precision fp32",
    "onnx-int8": "--format onnx --precision int8",
    "openvino-fp32": "--format openvino --precision fp32",
    "openvino-bf16": "--format openvino --precision bf16",
    "openvino-int8": "--format openvino --precision int8",
    "openvino-int8-bf16": "--format openvino --precision int8-bf16",
    "pruned-onnx-fp32": f"--prune {PRUNE_RATIO} --format onnx --precision fp32",
    "pruned-openvino-int8": f"--prune {PRUNE_RATIO} --format openvino --precision int8",
}
# The cheap benchmarks that run in CI with --benchmark-disable -m smoke: (model, variant).
SMOKE_WINDOW = {("default", "torch-fp32"), ("default", "onnx-fp32")}
SMOKE_LIVE = {("default", "onnx-fp32")}
# Frames read from the sample clip for INT8 and pruning, of which the first two thirds
# are fitted to, as in edgecount convert: for the default model as many as convert reads
# (its quva-dev scores are reported); for the faithful RepNet (random weights, speed
# only) 32 instead of 128: the same quantized graph, built faster.
CALIBRATION_FRAMES = {"default": 240, "repnet": 32}
SEED = 0


def needs_bf16(variant: str) -> bool:
    return VARIANTS[variant][1] == "bf16"


def cpu_has_bf16() -> bool:
    from edgecount.convert.formats import cpu_has_bf16 as has

    return has()


# --- inputs -------------------------------------------------------------------------


def sample_frames(n: int, size: int = 112) -> np.ndarray:
    """The first ``n`` frames of the shipped sample clip as model input (RGB uint8),
    the clip repeated if it is shorter."""
    from edgecount.convert.calibration import load_clips, sample_clip

    frames = load_clips([sample_clip()], size, n, 1)[0]
    return np.concatenate([frames] * -(-n // len(frames)))[:n]


def write_long_video(path: Path, seconds: float, fps: float = 30.0, size: tuple[int, int] = (120, 160)) -> Path:
    """A video of ``seconds`` of a square bouncing with a slowly varying period (mp4v)."""
    import cv2

    h, w = size
    n = int(seconds * fps)
    cycle = moving_square(600, 20, size)  # 20 s at 30 fps (30 whole periods), looped
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    try:
        for i in range(n):
            writer.write(cycle[i % len(cycle)])
    finally:
        writer.release()
    return path


# --- models -------------------------------------------------------------------------


def torch_source(kind: str, weights: Path | None = None):
    """The eval-mode PyTorch model of ``kind`` and a description of its weights:
    ``weights``, else the shipped ones (default model; an untrained head if absent),
    else random seeded weights (the faithful RepNet: timing only)."""
    import torch

    from edgecount.convert.source import load_source

    torch.manual_seed(SEED)
    return load_source(kind, weights)


def weights_fingerprint(kind: str, weights: Path | None = None) -> str:
    """What the variants of ``kind`` are made from, to reuse kept variants safely."""
    import edgecount

    parts = [kind, edgecount.__version__, f"prune={PRUNE_RATIO}", f"seed={SEED}", str(CALIBRATION_FRAMES[kind])]
    if weights is None and kind == "default":
        from edgecount.convert.source import shipped_default_weights

        weights = shipped_default_weights()
    if weights is not None:
        w = Path(weights)
        parts.append(hashlib.sha256(w.read_bytes()).hexdigest() if w.is_file() else "untrained")
    for name in ("convert/quantize.py", "convert/calibration.py", "convert/prune.py", "convert/formats.py",
                 "export.py", "model/repnet.py", "model/default.py", "model/faithful.py"):
        parts.append(hashlib.sha256((ROOT / "edgecount" / name).read_bytes()).hexdigest()[:16])
    return "|".join(parts)


@functools.lru_cache(maxsize=None)
def _torch_model_class():
    from edgecount.runtime.model import RepetitionModel, WindowOutputs, window_outputs

    class TorchModel(RepetitionModel):
        """A PyTorch RepNet behind the interface of ``RepetitionModel`` (``encode``,
        ``window``, ``manifest``...), so that the same benchmark code and the live path
        (which takes a RepetitionModel) run it."""

        def __init__(self, model, name: str, frame_size: int = 112):  # no model directory: no super().__init__
            import torch

            from edgecount.runtime.manifest import Manifest

            self.torch = torch
            self.model = model.eval()
            self.folder = Path(f"torch:{name}")
            cfg = model.cfg
            with torch.no_grad():
                shape = list(model.encode(torch.zeros(1, frame_size, frame_size, 3, dtype=torch.uint8)).shape[1:])
            self.manifest = Manifest(name=name, format="onnx", precision="fp32", frame_size=frame_size,
                                     num_frames=cfg.num_frames, period_classes=cfg.period_classes,
                                     period_offset=cfg.period_offset, feature_shape=shape)

        def _tensor(self, x: np.ndarray):
            if not x.flags.writeable or not x.flags.c_contiguous:  # ring buffer views are read-only
                x = np.array(x)
            return self.torch.from_numpy(x)

        def encode(self, frames: np.ndarray) -> np.ndarray:
            with self.torch.no_grad():
                return self.model.encode(self._tensor(frames)).numpy()

        def window(self, features: np.ndarray) -> WindowOutputs:
            with self.torch.no_grad():
                logits, periodicity = self.model.window_head(self._tensor(features.astype(np.float32, copy=False)))
            return window_outputs(logits.numpy(), periodicity.numpy())

    return TorchModel


def TorchModel(model, name: str, frame_size: int = 112):  # noqa: N802 - a class made on first use
    """A PyTorch RepNet as a ``RepetitionModel`` (see ``_torch_model_class``)."""
    return _torch_model_class()(model, name, frame_size)


@dataclass
class Built:
    """A variant ready to run: a model directory (None for PyTorch) and its OpenVINO hint."""

    model: str
    variant: str
    folder: Path | None
    hint: str | None
    weights: str
    size_bytes: int
    parameters: int

    def open(self, threads: int):
        """A fresh runnable model (RepetitionModel or TorchModel) on ``threads`` threads."""
        if self.folder is None:
            raise ValueError("torch variants are opened by VariantFactory.open")
        from edgecount.runtime.model import RepetitionModel

        return RepetitionModel(self.folder, threads=threads, precision=self.hint)


def _model_bytes(folder: Path) -> int:
    from edgecount.convert.formats import model_files
    from edgecount.runtime.manifest import Manifest

    return sum(f.stat().st_size for f in model_files(folder, Manifest.load(folder).format)[:-1] if f.is_file())


class VariantFactory:
    """Builds each (model, variant) once, on demand, into ``workdir``; reuses a
    variant already there when it was made from the same sources (fingerprint)."""

    def __init__(self, workdir: Path, threads: int, log: Callable[[str], None] = lambda s: None,
                 weights: dict[str, Path | None] | None = None):
        self.workdir = Path(workdir)
        self.weights_files = weights or {}
        self.threads = threads
        self.log = log
        self._torch: dict[str, tuple] = {}
        self._pruned: dict[str, object] = {}
        self._clips: dict[str, np.ndarray] = {}
        self._built: dict[tuple[str, str], Built] = {}
        self._runners: dict[tuple[str, str, int], object] = {}
        self.build_seconds: dict[str, float] = {}

    # sources
    def torch_model(self, kind: str):
        if kind not in self._torch:
            self._torch[kind] = torch_source(kind, self.weights_files.get(kind))
        return self._torch[kind][0]

    def weights(self, kind: str) -> str:
        self.torch_model(kind)
        return self._torch[kind][1]

    def calibration_frames(self, kind: str) -> np.ndarray:
        """The frames INT8 and pruning are fitted to: those of the sample clip that
        ``edgecount convert`` calibrates on (it holds the last third out to verify on)."""
        from edgecount.convert.calibration import hold_out

        if kind not in self._clips:
            self._clips[kind] = hold_out([sample_frames(CALIBRATION_FRAMES[kind])])[0][0]
        return self._clips[kind]

    def pruned_model(self, kind: str):
        if kind not in self._pruned:
            import torch

            from edgecount.convert.prune import prune

            frames = self.calibration_frames(kind)
            pick = np.linspace(0, len(frames) - 1, min(len(frames), 128)).astype(int)
            torch.manual_seed(SEED)
            self._pruned[kind] = prune(self.torch_model(kind), PRUNE_RATIO, torch.from_numpy(frames[pick])).eval()
        return self._pruned[kind]

    def fingerprint(self, kind: str) -> str:
        return weights_fingerprint(kind, self.weights_files.get(kind))

    # directories
    def _dir(self, kind: str, step: str) -> Path:
        return self.workdir / f"{kind}-{step}"

    def _fresh(self, folder: Path, kind: str) -> bool:
        stamp = folder / "bench-source.txt"
        return stamp.is_file() and stamp.read_text() == self.fingerprint(kind) and \
            (folder / "manifest.json").is_file()

    def _make(self, kind: str, step: str, build: Callable[[Path], None]) -> Path:
        folder = self._dir(kind, step)
        if self._fresh(folder, kind):
            return folder
        if folder.exists():
            shutil.rmtree(folder)
        start = time.perf_counter()
        self.log(f"building {kind} {step}")
        build(folder)
        (folder / "bench-source.txt").write_text(self.fingerprint(kind))
        self.build_seconds[f"{kind}-{step}"] = round(time.perf_counter() - start, 1)
        return folder

    def step(self, kind: str, step: str) -> Path:
        from edgecount.convert.formats import write_onnx, write_openvino
        from edgecount.convert.quantize import quantize

        name = f"{kind}-{step}"
        if step == "onnx":
            return self._make(kind, step, lambda d: write_onnx(self.torch_model(kind), d, name))
        if step == "pruned-onnx":
            return self._make(kind, step, lambda d: write_onnx(self.pruned_model(kind), d, name))
        if step in ("openvino", "pruned-openvino"):
            src = self.step(kind, step.replace("openvino", "onnx"))
            return self._make(kind, step, lambda d: write_openvino(src, d, "fp32"))
        if step == "openvino-bf16":
            src = self.step(kind, "onnx")
            return self._make(kind, step, lambda d: write_openvino(src, d, "bf16"))
        if step in ("onnx-int8", "openvino-int8", "pruned-openvino-int8"):
            src = self.step(kind, step.replace("-int8", ""))
            return self._make(kind, step, lambda d: quantize(src, d, [self.calibration_frames(kind)], self.threads))
        raise ValueError(f"unknown build step {step}")

    def get(self, kind: str, variant: str) -> Built:
        key = (kind, variant)
        if key not in self._built:
            step, hint = VARIANTS[variant]
            if step == "torch":
                from edgecount.convert.prune import count_parameters

                model = self.torch_model(kind)
                size = sum(t.numel() * t.element_size() for t in model.state_dict().values())
                built = Built(kind, variant, None, None, self.weights(kind), size, count_parameters(model))
            else:
                folder = self.step(kind, step)
                from edgecount.convert.prune import count_parameters

                source = self.pruned_model(kind) if step.startswith("pruned") else self.torch_model(kind)
                built = Built(kind, variant, folder, hint, self.weights(kind), _model_bytes(folder),
                              count_parameters(source))
            self._built[key] = built
        return self._built[key]

    def open(self, kind: str, variant: str, threads: int, cache: bool = True):
        """A runnable model of the variant on ``threads`` threads; with ``cache`` opened
        once per session (what warmed it up carries over; the live benchmarks share
        it), else a fresh one the caller lets go of (a faithful-RepNet session holds
        hundreds of MB). For torch the process-wide thread count is set on every call."""
        built = self.get(kind, variant)
        if built.folder is None:
            import torch

            torch.set_num_threads(threads)
        key = (kind, variant, threads)
        if key in self._runners:
            return self._runners[key]
        runner = TorchModel(self.torch_model(kind), f"{kind}-{variant}") if built.folder is None \
            else built.open(threads)
        if cache:
            self._runners[key] = runner
        return runner


# --- timing -------------------------------------------------------------------------


def warm_up(fn: Callable[[], object], seconds: float, min_calls: int = 3) -> dict:
    """Call ``fn`` for at least ``seconds`` and ``min_calls`` times (torch's first
    seconds in a process can be 50x slower); what it took, for ``extra_info``."""
    start = time.perf_counter()
    calls, last = 0, 0.0
    while calls < min_calls or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        fn()
        last = time.perf_counter() - t
        calls += 1
    return {"warmup_calls": calls, "warmup_s": round(time.perf_counter() - start, 3),
            "warmup_last_s": round(last, 6)}


# --- machine ------------------------------------------------------------------------

ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8",
             "avx_vnni")


def machine_info() -> dict:
    """CPU model, cores, instruction sets that matter for the runtimes, load, versions."""
    info: dict = {"cpu_model": platform.processor() or platform.machine(), "logical_cpus": os.cpu_count(),
                  "machine": platform.machine()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        if model:
            info["cpu_model"] = model.group(1).strip()
        flags = set(re.search(r"^flags\s*:\s*(.+)$", text, re.M).group(1).split())
        info["isa"] = [f for f in ISA_FLAGS if f in flags]
        cores = {(m.group(1), m.group(2)) for m in re.finditer(
            r"physical id\s*:\s*(\d+)[\s\S]*?core id\s*:\s*(\d+)", text)}
        if cores:
            info["physical_cores"] = len(cores)
        mhz = re.search(r"^cpu MHz\s*:\s*([\d.]+)$", text, re.M)
        if mhz:
            info["cpu_mhz"] = float(mhz.group(1))
    except (OSError, AttributeError):
        pass
    try:
        info["affinity_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        info["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        pass
    versions = {}
    for mod in ("torch", "onnxruntime", "openvino", "nncf", "numpy"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - an absent or broken package is just not listed
            pass
    info["versions"] = versions
    return info


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def dumps(obj) -> str:
    return json.dumps(obj, indent=1, sort_keys=True)

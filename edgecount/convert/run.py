"""``edgecount convert``: PyTorch model -> (pruned) ONNX / OpenVINO (fp32, bf16, INT8)
model directory, each step verified against the original on real frames and timed."""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgecount.convert.calibration import calibration_videos, hold_out, load_clips
from edgecount.convert.options import ConvertOptions
from edgecount.convert.report import Row, folder_size, table
from edgecount.convert.verify import Outputs, Pipeline, RuntimePipeline, TorchPipeline, compare, run_pipeline
from edgecount.convert.verify import window_latency, with_noise
from edgecount.errors import EdgecountError
from edgecount.runtime.manifest import Manifest

if TYPE_CHECKING:
    from edgecount.model.repnet import HeadConfig

# Frames per calibration clip and clips used, per source model (the faithful one is 40x slower).
CLIP_FRAMES = {"default": 240, "repnet": 128}
MAX_CLIPS = {"default": 6, "repnet": 3}
COUNT_WARNING = 0.5  # a converted model whose count of a calibration clip moves this much is flagged
NOISE_VARIANT = "pytorch fp32, +-1 noise"  # the original on frames with +-1 grey level of random noise


@dataclass
class Result:
    """What a conversion wrote and measured."""

    manifest: Manifest
    rows: list[Row]

    def report(self, out: Path) -> str:
        m = self.manifest
        pruned = f", pruned {m.extra['prune_ratio']}" if m.extra.get("prune_ratio") else ""
        lines = [f"edgecount convert: {m.extra['source']} (weights: {m.extra['weights']}) -> "
                 f"{m.format} {m.precision}{pruned}",
                 table(self.rows),
                 "window: one window of frames encoded + the head, median after warm-up; |d ...|: largest "
                 "difference from the PyTorch original on held-out calibration frames (logits; count of a clip); "
                 f"'{NOISE_VARIANT}': the original itself on those frames with +-1 grey level of random noise, "
                 "for scale"]
        moved = self.rows[-1].agreement.count_max_diff if self.rows[-1].agreement else 0.0
        noise = next((r.agreement.count_max_diff for r in self.rows if r.variant == NOISE_VARIANT), None)
        if moved >= COUNT_WARNING:
            scale = "" if noise is None else f" (the original's own count moved by {noise:.2f} with the noise)"
            lines.append(f"warning: the count of a calibration clip moved by {moved:.2f}{scale}: check this model "
                         "with `edgecount eval` on videos like yours before relying on it")
        kept = m.extra.get("kept_higher_precision", {})
        if kept:
            parts = [f"{role}: {v[0]}" if v and v[0].startswith("all") else f"{role}: {len(v)} nodes"
                     for role, v in kept.items()]
            lines.append("kept in floating point: " + "; ".join(parts) + " (listed in manifest.json)")
        if m.extra.get("bf16_available") and "bf16" not in m.extra.get("inference_precision", ""):
            lines.append("this CPU runs bf16: --format openvino --precision bf16 (or int8-bf16) is faster, "
                         "see the '@bf16' row")
        lines.append(f"wrote {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")
        return "\n".join(lines)


class _Checker:
    """Runs a pipeline on the held-out calibration clips and times one window, against the original."""

    def __init__(self, clips: list[np.ndarray], cfg: HeadConfig, reference: Pipeline):
        self.clips, self.num_frames = clips, cfg.num_frames
        self.periods = np.arange(cfg.period_classes) + cfg.period_offset
        frames = np.concatenate(clips)[:self.num_frames]
        self.window = np.concatenate([frames, np.repeat(frames[-1:], self.num_frames - len(frames), axis=0)])
        self.reference: Outputs = self._run(reference)

    def _run(self, pipeline: Pipeline) -> Outputs:
        return run_pipeline(pipeline, self.clips, self.num_frames, self.periods)

    def row(self, variant: str, pipeline: Pipeline, size: int, params: int, original: bool = False) -> Row:
        agreement = None if original else compare(self.reference, self._run(pipeline))
        return Row(variant, size, params, window_latency(pipeline, self.window), agreement)

    def noise_row(self, pipeline: Pipeline, original: Row) -> Row:
        """The original on the held-out clips with +-1 grey level of random noise: how far its own
        outputs and counts move under a change of the video nobody can see (the scale for the rest)."""
        agreement = compare(self.reference, run_pipeline(pipeline, with_noise(self.clips), self.num_frames,
                                                         self.periods))
        return Row(NOISE_VARIANT, original.size_bytes, original.parameters, original.latency, agreement)


def calibration_split(videos: list[Path], source: str, size: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The clips of ``videos`` that a conversion of ``source`` (default, repnet) calibrates on,
    and the ones it verifies on."""
    return hold_out(load_clips(videos, size, CLIP_FRAMES[source], MAX_CLIPS[source]))


def _tensor_bytes(model) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def _install(work: Path, out: Path, force: bool) -> None:
    """Copy the files of ``work`` into ``out``, replacing only model files already there."""
    from edgecount.convert.formats import model_files

    if out.exists() and force:
        for fmt in ("onnx", "openvino"):
            for f in model_files(out, fmt):
                f.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    for f in work.iterdir():
        shutil.copy2(f, out / f.name)


def convert(opts: ConvertOptions, log: Callable[[str], None] = lambda s: None) -> Result:
    """Run the conversion of ``opts``; every user error is an EdgecountError."""
    opts.check()
    videos = calibration_videos(opts.calibration)

    import torch

    from edgecount.convert.formats import cpu_has_bf16, model_files, write_onnx, write_openvino
    from edgecount.convert.prune import count_parameters
    from edgecount.convert.source import load_source
    from edgecount.model.default import FRAME_SIZE
    from edgecount.runtime.backends import default_threads

    threads = opts.threads or default_threads()
    torch.set_num_threads(threads)
    bf16 = opts.format == "openvino" and cpu_has_bf16()
    if "bf16" in opts.precision and not bf16:
        raise EdgecountError("this CPU has no native bf16: use --precision fp32 or int8")
    model, weights = load_source(opts.model, opts.weights)
    clips, held_out = calibration_split(videos, opts.model, FRAME_SIZE)
    log(f"calibration: {sum(len(c) for c in clips)} frames from {len(clips)} clip(s), "
        f"{sum(len(c) for c in held_out)} held out to verify on")
    check = _Checker(held_out, model.cfg, TorchPipeline(model))
    params = count_parameters(model)
    rows = [check.row("pytorch fp32", TorchPipeline(model), _tensor_bytes(model), params, original=True)]
    rows.append(check.noise_row(TorchPipeline(model), rows[0]))
    extra: dict = {"source": opts.model, "weights": weights, "bf16_available": bf16}
    if opts.prune:
        from edgecount.convert.distill import distill
        from edgecount.convert.prune import prune

        log(f"pruning {opts.prune:g} of the prunable channels, then {opts.finetune_seconds:g} s of recovery")
        frames = np.concatenate(clips)
        student = prune(model, opts.prune, torch.from_numpy(frames[np.linspace(0, len(frames) - 1, 128).astype(int)]))
        extra |= {"prune_ratio": opts.prune,
                  "recovery": distill(student, model, clips, opts.finetune_seconds).to_dict()}
        model, params = student, count_parameters(student)
        rows.append(check.row(f"pytorch pruned {opts.prune:g}", TorchPipeline(model), _tensor_bytes(model), params))

    def runtime_row(variant: str, folder: Path, hint: str | None = None) -> Row:
        size = folder_size(model_files(folder, Manifest.load(folder).format)[:-1])
        return check.row(variant, RuntimePipeline(folder, threads, hint), size, params)

    name = opts.model + (f"-pruned{opts.prune:g}" if opts.prune else "") + f"-{opts.format}-{opts.precision}"
    with tempfile.TemporaryDirectory(prefix="edgecount-convert-") as tmp:
        work = Path(tmp)
        log("exporting ONNX")
        write_onnx(model, work / "onnx", name)
        current = work / "onnx"
        rows.append(runtime_row("onnx fp32", current))
        if opts.format == "openvino":
            log("converting to OpenVINO IR")
            write_openvino(current, work / "openvino")
            current = work / "openvino"
            rows.append(runtime_row("openvino fp32", current))
            if bf16:
                rows.append(runtime_row("openvino fp32 @bf16", current, "bf16"))
            if opts.precision == "bf16":
                write_openvino(work / "onnx", work / "openvino-bf16", "bf16")
                current = work / "openvino-bf16"
                rows.append(runtime_row("openvino bf16", current))
        if opts.precision.startswith("int8"):
            log("quantizing to INT8")
            from edgecount.convert.quantize import quantize

            quantize(current, work / "int8", clips, threads, "bf16" if opts.precision == "int8-bf16" else "f32")
            current = work / "int8"
            rows.append(runtime_row(f"{opts.format} {opts.precision}", current))
        manifest = Manifest.load(current)
        manifest.extra = manifest.extra | extra | {
            "threads": threads, "verification": [r.to_dict(rows[0].latency) for r in rows]}
        manifest.save(current)
        _install(current, Path(opts.out), opts.force)
    return Result(manifest, rows)

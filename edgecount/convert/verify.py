"""Verification of a converted model against the PyTorch original on real frames
(features, head logits and the count of each clip), and the latency of one window
(encode its frames, then run the head)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edgecount.convert.calibration import stride_windows
from edgecount.counting import StreamCounter
from edgecount.runtime.model import window_outputs

ENCODE_BATCH = 32
MAX_WINDOWS = 24  # per verification, spread over the clips and strides


class Pipeline(Protocol):
    """Frames -> features -> head logits, whatever runs it."""

    def encode(self, frames: np.ndarray) -> np.ndarray: ...

    def head(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class TorchPipeline:
    """A PyTorch RepNet in eval mode."""

    def __init__(self, model):
        self.model = model.eval()

    def encode(self, frames: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return np.concatenate([self.model.encode(torch.from_numpy(frames[i:i + ENCODE_BATCH])).numpy()
                                   for i in range(0, len(frames), ENCODE_BATCH)])

    def head(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.no_grad():
            period, periodicity = self.model.window_head(torch.from_numpy(features))
        return period.numpy(), periodicity.numpy()


class RuntimePipeline:
    """A model directory run by ONNX Runtime or OpenVINO (``precision``: OpenVINO hint)."""

    def __init__(self, folder: Path, threads: int | None = None, precision: str | None = None):
        from edgecount.runtime.model import RepetitionModel

        self.model = RepetitionModel(folder, threads=threads, precision=precision)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        return np.concatenate([self.model.encode(frames[i:i + ENCODE_BATCH])
                               for i in range(0, len(frames), ENCODE_BATCH)])

    def head(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        period, periodicity = self.model.head.run(np.ascontiguousarray(features, dtype=np.float32))
        return period, periodicity


@dataclass
class Outputs:
    """Features of the verification frames, head logits of their windows, counts of the clips."""

    features: list[np.ndarray]  # (N, ...) per clip
    period: np.ndarray  # (W, T, C)
    periodicity: np.ndarray  # (W, T)
    counts: np.ndarray  # (clips,) as `edgecount count` counts them


def clip_count(pipeline: Pipeline, features: np.ndarray, periods: np.ndarray, num_frames: int) -> float:
    """The count of one clip from its features, by the counting procedure of ``edgecount count``."""
    counter = StreamCounter(lambda w: window_outputs(*pipeline.head(w)), periods, num_frames, keep_frames=False)
    counter.add(features)
    return counter.final().count


def run_pipeline(pipeline: Pipeline, clips: list[np.ndarray], num_frames: int, periods: np.ndarray) -> Outputs:
    """Encode every clip, run the head on its windows at strides 1..4 and count it
    (``periods``: the period in frames of each class)."""
    feats = [pipeline.encode(clip) for clip in clips]
    windows = np.concatenate([stride_windows(f, num_frames) for f in feats])
    pick = np.linspace(0, len(windows) - 1, min(len(windows), MAX_WINDOWS)).round().astype(int)
    outs = [pipeline.head(windows[i:i + 1]) for i in pick]
    counts = np.array([clip_count(pipeline, f, periods, num_frames) for f in feats])
    return Outputs(feats, np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs]), counts)


def with_noise(clips: list[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """``clips`` of uint8 frames with +-1 grey level of uniform random noise on every value:
    a change of the video nobody can see, the scale for a converted model's differences."""
    rng = np.random.default_rng(seed)
    return [(c + rng.integers(-1, 2, c.shape)).clip(0, 255).astype(np.uint8) for c in clips]


def centred_cosines(a: np.ndarray, b: np.ndarray, window: int) -> np.ndarray:
    """Cosine of each frame's features in ``a`` and ``b`` after removing the mean of its
    window (consecutive windows of ``window`` frames): what stays of the frame-to-frame
    changes that repetitions are made of. A raw cosine hides their loss (0.998 raw was
    0.71 centred for an INT8 encoder that changed the counts)."""
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    out = []
    for start in range(0, len(a), window):
        u, v = a[start:start + window], b[start:start + window]
        u, v = u - u.mean(0), v - v.mean(0)
        out.append((u * v).sum(1) / np.maximum(np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1), 1e-12))
    return np.concatenate(out)


@dataclass
class Agreement:
    """How close a converted model's outputs are to the original's."""

    period_logits_max_diff: float
    periodicity_max_diff: float
    period_argmax_agree: float  # fraction of frames with the same period class
    periodic_agree: float  # fraction of frames on the same side of periodicity 0.5
    feature_cos_mean: float | None  # window-centred (centred_cosines); None when the shapes differ
    feature_cos_min: float | None
    count_max_diff: float  # largest difference of a clip's count

    def to_dict(self) -> dict:
        return {k: None if v is None else round(v, 5) for k, v in asdict(self).items()}


def compare(reference: Outputs, other: Outputs) -> Agreement:
    """Agreement of ``other`` with ``reference`` (same clips, same windows)."""
    cos_mean = cos_min = None
    if all(a.shape == b.shape for a, b in zip(reference.features, other.features)):
        cos = np.concatenate([centred_cosines(a, b, reference.period.shape[1])
                              for a, b in zip(reference.features, other.features)])
        cos_mean, cos_min = float(cos.mean()), float(cos.min())
    return Agreement(
        period_logits_max_diff=float(np.abs(reference.period - other.period).max()),
        periodicity_max_diff=float(np.abs(reference.periodicity - other.periodicity).max()),
        period_argmax_agree=float((reference.period.argmax(-1) == other.period.argmax(-1)).mean()),
        periodic_agree=float(((reference.periodicity > 0) == (other.periodicity > 0)).mean()),
        feature_cos_mean=cos_mean, feature_cos_min=cos_min,
        count_max_diff=float(np.abs(reference.counts - other.counts).max()),
    )


def window_latency(pipeline: Pipeline, frames: np.ndarray, repeats: int = 3, warmup: int = 1) -> float:
    """Median seconds to encode one window of frames (T, S, S, 3) and run the head on it."""
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        pipeline.head(pipeline.encode(frames)[None])
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return float(np.median(times))

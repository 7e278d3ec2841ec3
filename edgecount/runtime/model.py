"""A model directory loaded for inference: per-frame encoder and window head."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from edgecount.errors import EdgecountError
from edgecount.runtime.backends import Session, open_session
from edgecount.runtime.manifest import Manifest


def default_model_dir() -> Path:
    """The trained default model shipped inside the package."""
    return Path(str(resources.files("edgecount") / "assets" / "default"))


@dataclass
class WindowOutputs:
    """Per-frame outputs of a batch of windows, as probabilities."""

    period_probs: np.ndarray  # (B, T, C) softmax over period classes
    periodicity: np.ndarray  # (B, T) sigmoid


def window_outputs(period_logits: np.ndarray, periodicity_logits: np.ndarray) -> WindowOutputs:
    """The head's logits as probabilities: softmax over period classes, sigmoid of periodicity."""
    logits = period_logits - period_logits.max(-1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(-1, keepdims=True)
    return WindowOutputs(probs, 1.0 / (1.0 + np.exp(-periodicity_logits)))


class RepetitionModel:
    """Runs a model directory: ``encode`` frames, then ``window`` over their features."""

    def __init__(self, folder: Path | str | None = None, threads: int | None = None,
                 precision: str | None = None):
        self.folder = Path(folder) if folder else default_model_dir()
        self.manifest = Manifest.load(self.folder)
        enc, head = self.manifest.files()
        fmt = self.manifest.format
        # OpenVINO's inference precision hint written by `edgecount convert` (f32, bf16).
        precision = precision or self.manifest.extra.get("inference_precision")
        self.encoder: Session = open_session(self.folder / enc, fmt, threads, precision)
        self.head: Session = open_session(self.folder / head, fmt, threads, precision)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def num_frames(self) -> int:
        return self.manifest.num_frames

    @property
    def frame_size(self) -> int:
        return self.manifest.frame_size

    def periods(self) -> np.ndarray:
        """Period in frames of each class."""
        return np.arange(self.manifest.period_classes) + self.manifest.period_offset

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB frames -> (N, *feature_shape) float32 features."""
        size = self.frame_size
        if frames.dtype != np.uint8 or frames.shape[1:] != (size, size, 3):
            raise EdgecountError(f"encoder expects uint8 frames of {size}x{size}x3, got {frames.shape}")
        return self.encoder.run(np.ascontiguousarray(frames))[0]

    def window(self, features: np.ndarray) -> WindowOutputs:
        """(B, T, *feature_shape) features -> per-frame period probabilities and periodicity."""
        return window_outputs(*self.head.run(np.ascontiguousarray(features, dtype=np.float32)))

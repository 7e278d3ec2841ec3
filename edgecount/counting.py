"""Counting from per-frame features: multi-stride windows, streamed.

Frames are encoded once; each stride ``s`` samples every s-th frame's features
into 64-frame windows that overlap by half, and the head's per-frame outputs
are averaged where windows overlap. Following the released RepNet procedure,
the stride with the highest mean score sqrt(periodicity * period confidence)
is kept, and the count is the sum over frames of 1 / period where the frame is
periodic.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgecount.runtime.model import WindowOutputs

MIN_PERIOD = 2  # frames; shorter periods are not trusted (aliasing)


@dataclass
class CountingConfig:
    """Settings of the counting procedure."""

    strides: tuple[int, ...] = (1, 2, 3, 4, 6, 8)
    periodicity_threshold: float = 0.5
    min_score: float = 0.2
    median_width: int = 5
    hop: int = 32  # window start step in sampled frames (64-frame windows overlap by half)
    min_windows_frames: int = 32  # a stride > 1 needs this many sampled frames
    batch: int = 8


@dataclass
class StrideResult:
    """Per-sampled-frame outputs of one stride."""

    stride: int
    period: np.ndarray  # period in sampled frames
    confidence: np.ndarray
    periodicity: np.ndarray

    @property
    def score(self) -> np.ndarray:
        conf = np.where(self.period >= MIN_PERIOD, self.confidence, 0.0)
        return np.sqrt(self.periodicity * conf)


@dataclass
class _Track:
    """Windows of one stride: sampled features, pending windows, accumulated outputs."""

    stride: int
    window: int
    hop: int
    buffer: list[np.ndarray] = field(default_factory=list)
    buffer_start: int = 0  # sampled index of buffer[0]
    sampled: int = 0
    next_start: int = 0
    covered: int = 0  # sampled frames covered by the windows so far
    outputs: list[tuple[int, int, WindowOutputs]] = field(default_factory=list)

    def add(self, feature: np.ndarray) -> None:
        self.buffer.append(feature)
        self.sampled += 1

    def ready(self, final: bool) -> list[tuple[int, np.ndarray, int]]:
        """Windows (start, features, valid length) that can run now.

        Full windows start every ``hop`` sampled frames; at the end, one more
        window aligned to the last frame covers the tail (padded only when the
        whole video is shorter than a window).
        """
        found = []
        while self.sampled >= self.next_start + self.window:
            found.append(self._take(self.next_start))
            self.covered = self.next_start + self.window
            self.next_start += self.hop
        if final and self.covered < self.sampled:
            found.append(self._take(max(0, self.sampled - self.window)))
            self.covered = self.sampled
        drop = max(0, self.sampled - self.window) - self.buffer_start
        if drop > 0:
            del self.buffer[:drop]
            self.buffer_start += drop
        return found

    def _take(self, start: int) -> tuple[int, np.ndarray, int]:
        rows = self.buffer[start - self.buffer_start:start - self.buffer_start + self.window]
        valid = len(rows)
        rows = rows + [rows[-1]] * (self.window - valid)
        return start, np.stack(rows), valid

    def result(self, classes_to_period: np.ndarray) -> StrideResult:
        """Overlap-averaged per-sampled-frame outputs."""
        n = self.sampled
        probs = np.zeros((n, len(classes_to_period)))
        periodicity = np.zeros(n)
        weight = np.zeros(n)
        for start, valid, out in self.outputs:
            probs[start:start + valid] += out.period_probs[:valid]
            periodicity[start:start + valid] += out.periodicity[:valid]
            weight[start:start + valid] += 1
        probs /= weight[:, None]
        periodicity /= weight
        return StrideResult(self.stride, classes_to_period[probs.argmax(-1)].astype(float),
                            probs.max(-1), periodicity)


def median_filter(x: np.ndarray, width: int) -> np.ndarray:
    """Median over a centred window of odd ``width`` (edges use the shrunken window)."""
    if width <= 1 or len(x) == 0:
        return x
    half = width // 2
    padded = np.pad(x, half, mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, width), axis=-1)


@dataclass
class CountResult:
    """The count of a video and its per-frame evidence."""

    count: float
    frames: int
    stride: int
    period_frames: np.ndarray  # per frame, NaN where not periodic
    periodicity: np.ndarray  # per frame, 0..1
    running_count: np.ndarray  # per frame
    scores: dict[int, float]


class StreamCounter:
    """Feed per-frame features in order with ``add``; ``finish`` returns the count.

    ``run_windows`` runs the head on a batch of windows (B, T, *feature_shape).
    """

    def __init__(self, run_windows: Callable[[np.ndarray], WindowOutputs], periods: np.ndarray,
                 window: int = 64, config: CountingConfig | None = None):
        self.config = config or CountingConfig()
        self.run_windows = run_windows
        self.periods = periods
        self.tracks = [_Track(s, window, self.config.hop) for s in self.config.strides]
        self.frames = 0
        self.pending: list[tuple[_Track, int, np.ndarray, int]] = []

    def add(self, features: np.ndarray) -> None:
        """Features of the next frames, (N, *feature_shape)."""
        for feature in features:
            for track in self.tracks:
                if self.frames % track.stride == 0:
                    track.add(feature)
            self.frames += 1
        self._schedule(final=False)

    def _schedule(self, final: bool) -> None:
        for track in self.tracks:
            if final and track.stride > 1 and track.sampled < self.config.min_windows_frames:
                continue
            for start, feats, valid in track.ready(final):
                self.pending.append((track, start, feats, valid))
        while len(self.pending) >= self.config.batch or (final and self.pending):
            batch, self.pending = self.pending[:self.config.batch], self.pending[self.config.batch:]
            out = self.run_windows(np.stack([feats for _, _, feats, _ in batch]))
            for i, (track, start, _, valid) in enumerate(batch):
                track.outputs.append((start, valid, WindowOutputs(out.period_probs[i], out.periodicity[i])))

    def finish(self) -> CountResult:
        """Run the remaining windows and combine the strides into one count."""
        self._schedule(final=True)
        results = [t.result(self.periods) for t in self.tracks if t.outputs]
        return combine(results, self.frames, self.config)


def combine(results: list[StrideResult], frames: int, config: CountingConfig) -> CountResult:
    """Pick the stride with the best mean score and count with it."""
    scores = {r.stride: float(r.score.mean()) for r in results}
    best = max(results, key=lambda r: scores[r.stride])
    periodic = best.periodicity > config.periodicity_threshold
    periodic &= best.period >= MIN_PERIOD
    rate = np.where(periodic, 1.0 / best.period, 0.0)  # repetitions per sampled frame
    rate = median_filter(rate, config.median_width)
    if scores[best.stride] < config.min_score:
        rate = np.zeros_like(rate)
    s = best.stride
    per_frame = np.repeat(rate / s, s)[:frames]
    per_frame = np.pad(per_frame, (0, frames - len(per_frame)), mode="edge")
    period = np.repeat(np.where(periodic, best.period * s, np.nan), s)[:frames]
    period = np.pad(period, (0, frames - len(period)), mode="edge")
    periodicity = np.repeat(best.periodicity, s)[:frames]
    periodicity = np.pad(periodicity, (0, frames - len(periodicity)), mode="edge")
    running = np.cumsum(per_frame)
    return CountResult(float(running[-1]) if frames else 0.0, frames, s, period, periodicity,
                       running, scores)

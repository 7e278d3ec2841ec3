"""Counting from per-frame features: multi-stride windows, streamed.

Frames are encoded once; each stride ``s`` samples every s-th frame's features
into 64-frame windows that overlap by half, and the head's per-frame outputs
are averaged where windows overlap. Following the released RepNet procedure,
the stride with the highest mean score sqrt(periodicity * period confidence)
is kept, and the count is the sum over frames of 1 / period where the frame is
periodic.

A sampled frame settles once no later window can cover it; its outputs are then
folded into running sums (score, median-filtered rate), so memory stays bounded
however long the stream and an estimate of the count so far (``running``) costs
O(window), not O(frames). The per-frame evidence of a whole video is kept only
when asked for (``keep_frames``, needed by ``finish``).
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

    def periodic(self, config: CountingConfig) -> np.ndarray:
        return (self.periodicity > config.periodicity_threshold) & (self.period >= MIN_PERIOD)

    def rate(self, config: CountingConfig) -> np.ndarray:
        """Repetitions per sampled frame, before the median filter."""
        return np.where(self.periodic(config), 1.0 / self.period, 0.0)

    @classmethod
    def concat(cls, parts: list[StrideResult]) -> StrideResult:
        return cls(parts[0].stride, *(np.concatenate([getattr(p, name) for p in parts])
                                      for name in ("period", "confidence", "periodicity")))


def median_filter(x: np.ndarray, width: int) -> np.ndarray:
    """Median over a centred window of odd ``width`` (edges use the shrunken window)."""
    if width <= 1 or len(x) == 0:
        return x
    half = width // 2
    padded = np.pad(x, half, mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, width), axis=-1)


class _Overlap:
    """Sums of window outputs over the sampled frames [start, start + len), for averaging."""

    def __init__(self, classes: int, start: int = 0):
        self.start = start
        self.probs = np.zeros((0, classes))
        self.periodicity = np.zeros(0)
        self.weight = np.zeros(0)

    def __len__(self) -> int:
        return len(self.weight)

    def add(self, start: int, valid: int, out: WindowOutputs) -> None:
        """Add one window's outputs (period_probs (T, C), periodicity (T,)) from ``start``."""
        i = start - self.start
        grow = i + valid - len(self)
        if grow > 0:
            self.probs = np.concatenate([self.probs, np.zeros((grow, self.probs.shape[1]))])
            self.periodicity = np.concatenate([self.periodicity, np.zeros(grow)])
            self.weight = np.concatenate([self.weight, np.zeros(grow)])
        self.probs[i:i + valid] += out.period_probs[:valid]
        self.periodicity[i:i + valid] += out.periodicity[:valid]
        self.weight[i:i + valid] += 1

    def copy(self) -> _Overlap:
        other = _Overlap(self.probs.shape[1], self.start)
        other.probs, other.periodicity, other.weight = self.probs.copy(), self.periodicity.copy(), self.weight.copy()
        return other

    def pop(self, end: int, stride: int, classes_to_period: np.ndarray) -> StrideResult:
        """Average and remove the frames before ``end``."""
        k = end - self.start
        result = self.average(stride, classes_to_period, k)
        self.probs, self.periodicity, self.weight = self.probs[k:], self.periodicity[k:], self.weight[k:]
        self.start = end
        return result

    def average(self, stride: int, classes_to_period: np.ndarray, k: int | None = None) -> StrideResult:
        """Overlap-averaged outputs of the first ``k`` frames (all by default)."""
        weight = self.weight[:k]
        probs = self.probs[:k] / weight[:, None]
        periodicity = self.periodicity[:k] / weight
        return StrideResult(stride, classes_to_period[probs.argmax(-1)].astype(float), probs.max(-1),
                            periodicity)


@dataclass
class _Settled:
    """The settled sampled frames of one stride, folded into sums.

    ``rate_sum`` holds the median-filtered rates of frames [0, frames - half)
    (later ones still depend on unsettled neighbours); ``context`` keeps the raw
    rates of frames [frames - 2 half, frames) to filter them once those arrive.
    """

    config: CountingConfig
    frames: int = 0
    score_sum: float = 0.0
    rate_sum: float = 0.0
    context: np.ndarray = field(default_factory=lambda: np.zeros(0))
    history: list[StrideResult] | None = None  # the settled outputs themselves, if kept

    def add(self, part: StrideResult) -> None:
        half = self.config.median_width // 2
        end = self.frames + len(part.period)
        filtered, raw = self._filtered(part, max(0, end - half))
        self.rate_sum += float(filtered.sum())
        self.score_sum += float(part.score.sum())
        self.context = raw[len(raw) - (end - max(0, end - 2 * half)):]  # frames end - 2 half ..
        self.frames = end
        if self.history is not None:
            self.history.append(part)

    def total(self, tail: StrideResult) -> tuple[float, float, float]:
        """Sum of the filtered rates, the last frame's filtered rate and the score
        sum when the unsettled frames, to the end of the stream, are ``tail``."""
        filtered, _ = self._filtered(tail, self.frames + len(tail.period))
        last = float(filtered[-1]) if len(filtered) else 0.0
        return self.rate_sum + float(filtered.sum()), last, self.score_sum + float(tail.score.sum())

    def _filtered(self, part: StrideResult, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Filtered rates of frames [frames - half, end) given the frames that follow
        the settled ones (``part``), and the raw rates they were filtered from."""
        half = self.config.median_width // 2
        raw = np.concatenate([self.context, part.rate(self.config)])
        first = max(0, self.frames - 2 * half)  # frame of raw[0]
        lo = max(0, self.frames - half)
        return median_filter(raw, self.config.median_width)[lo - first:end - first], raw


@dataclass
class _Track:
    """Windows of one stride: sampled features, pending windows, accumulated outputs."""

    stride: int
    window: int
    hop: int
    overlap: _Overlap
    settled: _Settled
    buffer: list[np.ndarray] = field(default_factory=list)
    buffer_start: int = 0  # sampled index of buffer[0]
    sampled: int = 0
    next_start: int = 0
    covered: int = 0  # sampled frames covered by the windows so far

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
            found.append(self.tail())
            self.covered = self.sampled
        drop = max(0, self.sampled - self.window) - self.buffer_start
        if drop > 0:
            del self.buffer[:drop]
            self.buffer_start += drop
        return found

    def tail(self) -> tuple[int, np.ndarray, int]:
        """The window aligned to the last sampled frame."""
        return self._take(max(0, self.sampled - self.window))

    def _take(self, start: int) -> tuple[int, np.ndarray, int]:
        rows = self.buffer[start - self.buffer_start:start - self.buffer_start + self.window]
        valid = len(rows)
        rows = rows + [rows[-1]] * (self.window - valid)
        return start, np.stack(rows), valid

    def settle(self, end: int, classes_to_period: np.ndarray) -> None:
        """Fold the frames before ``end``, which no window will cover any more."""
        if end > self.overlap.start:
            self.settled.add(self.overlap.pop(end, self.stride, classes_to_period))


@dataclass
class Estimate:
    """The count so far (or of the whole stream) and the latest frame's evidence."""

    count: float
    frames: int
    stride: int
    period: float  # period of the latest frame in frames, NaN if not periodic
    periodicity: float
    scores: dict[int, float]


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


Window = tuple[int, int, WindowOutputs]  # start, valid length, outputs of one window


class StreamCounter:
    """Feed per-frame features in order with ``add``; ``finish`` returns the count.

    ``run_windows`` runs the head on a batch of windows (B, T, *feature_shape).
    ``running`` estimates the count so far at any point; ``final`` is the count of
    the whole stream without per-frame evidence, so ``keep_frames`` may be off.
    """

    def __init__(self, run_windows: Callable[[np.ndarray], WindowOutputs], periods: np.ndarray,
                 window: int = 64, config: CountingConfig | None = None, keep_frames: bool = True):
        self.config = config or CountingConfig()
        self.run_windows = run_windows
        self.periods = periods
        self.tracks = [_Track(s, window, self.config.hop, _Overlap(len(periods)),
                              _Settled(self.config, history=[] if keep_frames else None))
                       for s in self.config.strides]
        self.frames = 0
        self.pending: list[tuple[_Track, int, np.ndarray, int]] = []
        self._tails: dict[int, tuple[int, Window]] = {}  # stride -> (sampled, its tail window)

    def add(self, features: np.ndarray) -> None:
        """Features of the next frames, (N, *feature_shape)."""
        for feature in features:
            for track in self.tracks:
                if self.frames % track.stride == 0:
                    track.add(feature)
            self.frames += 1
        self._schedule(final=False)

    def running(self) -> Estimate:
        """The count if the stream ended now; later frames may still revise it.

        The tail windows ``finish`` would run are run now but not kept (only
        re-run for strides that sampled a new frame since the last call).
        """
        self._schedule(final=False, flush=True)
        stale = [t for t in self._eligible() if t.covered < t.sampled
                 and self._tails.get(t.stride, (-1,))[0] != t.sampled]
        for track, window in zip(stale, self._run([(t, *t.tail()) for t in stale])):
            self._tails[track.stride] = (track.sampled, window)
        extra = {t.stride: self._tails[t.stride][1] for t in self._eligible() if t.covered < t.sampled}
        return self._estimate(extra)[0]

    def final(self) -> Estimate:
        """Run the remaining windows; the count of the whole stream."""
        self._schedule(final=True)
        return self._estimate({})[0]

    def finish(self) -> CountResult:
        """Run the remaining windows and combine the strides into one count, per frame."""
        self._schedule(final=True)
        estimate, tails = self._estimate({})
        track = next(t for t in self.tracks if t.stride == estimate.stride)
        if track.settled.history is None:
            raise RuntimeError("StreamCounter.finish() needs keep_frames=True; use final()")
        best = StrideResult.concat(track.settled.history + [tails[estimate.stride]])
        return _per_frame(best, estimate, self.config)

    def _eligible(self) -> list[_Track]:
        """Tracks with enough sampled frames to count at the end of the stream."""
        return [t for t in self.tracks if t.stride == 1 or t.sampled >= self.config.min_windows_frames]

    def _schedule(self, final: bool, flush: bool = False) -> None:
        for track in self._eligible() if final else self.tracks:
            for start, feats, valid in track.ready(final):
                self.pending.append((track, start, feats, valid))
        while len(self.pending) >= self.config.batch or ((final or flush) and self.pending):
            batch, self.pending = self.pending[:self.config.batch], self.pending[self.config.batch:]
            for (track, *_), (start, valid, out) in zip(batch, self._run(batch)):
                track.overlap.add(start, valid, out)
        for track in self.tracks:
            waiting = [start for t, start, _, _ in self.pending if t is track]
            track.settle(min([max(0, track.sampled - track.window), *waiting]), self.periods)

    def _run(self, windows: list[tuple[_Track, int, np.ndarray, int]]) -> list[Window]:
        if not windows:
            return []
        out = self.run_windows(np.stack([feats for _, _, feats, _ in windows]))
        return [(start, valid, WindowOutputs(out.period_probs[i], out.periodicity[i]))
                for i, (_, start, _, valid) in enumerate(windows)]

    def _estimate(self, extra: dict[int, Window]) -> tuple[Estimate, dict[int, StrideResult]]:
        """Combine the strides, with one more window per stride from ``extra``: pick
        the stride with the best mean score and count with it."""
        sums, tails = {}, {}
        for track in self.tracks:
            overlap = track.overlap
            if track.stride in extra:
                overlap = overlap.copy()
                overlap.add(*extra[track.stride])
            if track.settled.frames == 0 and len(overlap) == 0:
                continue
            tails[track.stride] = overlap.average(track.stride, self.periods)
            sums[track.stride] = track.settled.total(tails[track.stride])
        if not sums:
            return Estimate(0.0, self.frames, 1, float("nan"), 0.0, {}), tails
        sampled = {t.stride: t.sampled for t in self.tracks}
        scores = {s: score_sum / sampled[s] for s, (_, _, score_sum) in sums.items()}
        s = max(scores, key=scores.get)
        rate_sum, last_rate, _ = sums[s]
        # The last sampled frame stands for the frames up to the end only.
        last_share = (self.frames - (sampled[s] - 1) * s) / s
        count = rate_sum - last_rate * (1 - last_share) if scores[s] >= self.config.min_score else 0.0
        tail = tails[s]
        period = float(tail.period[-1] * s) if tail.periodic(self.config)[-1] else float("nan")
        return Estimate(count, self.frames, s, period, float(tail.periodicity[-1]), scores), tails


def _per_frame(best: StrideResult, estimate: Estimate, config: CountingConfig) -> CountResult:
    """Spread the chosen stride's outputs over the frames."""
    frames, s = estimate.frames, best.stride
    rate = median_filter(best.rate(config), config.median_width)
    if estimate.scores[s] < config.min_score:
        rate = np.zeros_like(rate)

    def spread(x: np.ndarray) -> np.ndarray:
        return np.repeat(x, s)[:frames]

    period = np.where(best.periodic(config), best.period * s, np.nan)
    return CountResult(estimate.count, frames, s, spread(period), spread(best.periodicity),
                       np.cumsum(spread(rate / s)), estimate.scores)

"""The streaming multi-stride counting procedure, with a stand-in head."""
from __future__ import annotations

import numpy as np
import pytest

from edgecount.counting import CountingConfig, StreamCounter, median_filter
from edgecount.runtime.model import WindowOutputs

PERIODS = np.arange(32) + 1  # class k -> period k + 1 (as the default model)


def head_for(period_of_frame, periodic_of_frame=lambda i: True, seen=None):
    """A head that reads the frame index from the feature and answers the truth
    (in sampled frames of the window's stride, found from consecutive indices)."""

    def run(windows: np.ndarray) -> WindowOutputs:
        b, t = windows.shape[:2]
        probs = np.full((b, t, len(PERIODS)), 1e-3)
        periodicity = np.zeros((b, t))
        for i in range(b):
            idx = windows[i, :, 0].astype(int)
            stride = max(int(np.diff(idx).max()), 1) if t > 1 else 1
            if seen is not None:
                seen.append(idx)
            for j, f in enumerate(idx):
                p = period_of_frame(f) / stride
                if 1 <= round(p) <= len(PERIODS):  # out of range: no confident class
                    probs[i, j, round(p) - 1] = 1.0
                periodicity[i, j] = 1.0 if periodic_of_frame(f) else 0.0
        return WindowOutputs(probs / probs.sum(-1, keepdims=True), periodicity)

    return run


def feed(counter: StreamCounter, frames: int, chunk: int = 17) -> None:
    for start in range(0, frames, chunk):
        idx = np.arange(start, min(start + chunk, frames), dtype=np.float32)
        counter.add(idx[:, None])


@pytest.mark.parametrize("period,frames", [(8, 400), (5, 333), (20, 1000), (3, 90)])
def test_constant_period_is_counted(period, frames):
    counter = StreamCounter(head_for(lambda f: period), PERIODS, config=CountingConfig(strides=(1,)))
    feed(counter, frames)
    result = counter.finish()
    assert result.count == pytest.approx(frames / period, rel=0.02)
    assert result.frames == frames
    assert np.allclose(result.period_frames, period)
    assert result.running_count[-1] == pytest.approx(result.count)


def test_every_frame_is_covered_and_windows_overlap():
    seen: list[np.ndarray] = []
    counter = StreamCounter(head_for(lambda f: 8, seen=seen), PERIODS, config=CountingConfig(strides=(1, 3)))
    feed(counter, 500)
    counter.finish()
    stride1 = [w for w in seen if np.diff(w).max() == 1]
    covered = np.zeros(500, bool)
    for w in stride1:
        covered[w] = True
    assert covered.all()
    starts = sorted(int(w[0]) for w in stride1)
    assert starts[:3] == [0, 32, 64]
    assert starts[-1] == 500 - 64  # the tail window is aligned to the last frame, not padded
    stride3 = [w for w in seen if np.diff(w).max() == 3]
    assert stride3 and all(np.all(np.diff(w) == 3) for w in stride3)


def test_short_video_pads_one_window():
    counter = StreamCounter(head_for(lambda f: 4), PERIODS)
    feed(counter, 40)
    result = counter.finish()
    assert result.count == pytest.approx(10, rel=0.05)
    assert set(result.scores) == {1}  # strides > 1 have too few frames


def test_memory_stays_bounded():
    counter = StreamCounter(head_for(lambda f: 6), PERIODS)
    for start in range(0, 5000, 50):
        counter.add(np.arange(start, start + 50, dtype=np.float32)[:, None])
        assert all(len(t.buffer) <= t.window + t.hop for t in counter.tracks)


def test_stride_choice_counts_long_periods():
    """A period of 100 frames is beyond the 32 classes at stride 1: a larger stride must win."""
    counter = StreamCounter(head_for(lambda f: 100), PERIODS)
    feed(counter, 1200)
    result = counter.finish()
    assert result.stride >= 4
    assert result.count == pytest.approx(12, abs=1)


def test_not_periodic_counts_zero():
    counter = StreamCounter(head_for(lambda f: 8, lambda f: False), PERIODS)
    feed(counter, 300)
    assert counter.finish().count == 0


def test_periodic_middle_only():
    counter = StreamCounter(head_for(lambda f: 10, lambda f: 100 <= f < 300), PERIODS,
                            config=CountingConfig(strides=(1,), min_score=0.0))
    feed(counter, 400)
    result = counter.finish()
    assert result.count == pytest.approx(20, abs=1)
    assert np.isnan(result.period_frames[:90]).all() and np.isnan(result.period_frames[310:]).all()


def test_median_filter():
    x = np.array([0, 0, 5, 0, 0, 1, 1, 1], float)
    assert median_filter(x, 3).tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    assert median_filter(x, 1) is x

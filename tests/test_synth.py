"""Tests of the synthetic repetition generator (tools/synth.py)."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from tools import synth
from tools.synth import FootagePool, SynthConfig, make_clip, make_long_clip

FOOTAGE = Path(__file__).resolve().parents[2] / "shared" / "footage" / "clips"
CLEAN = SynthConfig(augment=0.0, max_jitter=0.0)


def _moving_texture(seed: int, frames: int = 80, shape: tuple[int, int] = (144, 192)) -> np.ndarray:
    """Non-repeating clip: a smooth colour texture panning steadily, with a drifting square."""
    rng = np.random.default_rng(seed)
    h, w = shape
    small = rng.integers(0, 256, (h // 8, w // 4, 3), dtype=np.uint8)
    texture = cv2.resize(small, (2 * w, h), interpolation=cv2.INTER_CUBIC)
    clip = np.empty((frames, h, w, 3), np.uint8)
    for i in range(frames):
        clip[i] = texture[:, i:i + w]
        x, y = 10 + i, 20 + i // 2
        clip[i, y:y + 30, x:x + 30] = (255, 255, 255)
    return clip


@pytest.fixture(scope="module")
def pool() -> FootagePool:
    return FootagePool.from_arrays([_moving_texture(s) for s in range(3)])


def _repeat_ratio(clip: synth.SynthClip) -> float:
    """Mean abs difference of frames a period apart over that of frames half a period apart."""
    f = clip.frames.astype(np.float32)
    full, half = [], []
    for t in np.flatnonzero(clip.periodic):
        p = clip.period[t]
        a, h = t + int(round(p)), t + max(1, int(round(p / 2)))
        if a < len(f) and clip.periodic[a]:
            full.append(np.abs(f[t] - f[a]).mean())
            half.append(np.abs(f[t] - f[h]).mean())
    return float(np.mean(full) / np.mean(half))


@pytest.mark.parametrize("kind", synth.KINDS)
def test_shapes_and_dtypes(pool: FootagePool, kind: str) -> None:
    clip = make_clip(pool, np.random.default_rng(0), kind=kind)
    assert clip.frames.shape == (64, 112, 112, 3) and clip.frames.dtype == np.uint8
    assert clip.period.shape == (64,) and clip.period.dtype == np.float32
    assert clip.periodic.shape == (64,) and clip.periodic.dtype == bool
    assert isinstance(clip.count, float) and clip.kind == kind


def test_labels_consistent(pool: FootagePool) -> None:
    for seed in range(40):
        clip = make_clip(pool, np.random.default_rng(seed), num_frames=48, size=64)
        assert np.array_equal(clip.periodic, clip.period > 0)
        periods = clip.period[clip.periodic]
        assert np.all((periods >= 2) & (periods <= 32))
        assert np.all(clip.period[~clip.periodic] == 0)
        implied = float(np.sum(clip.periodic / np.maximum(clip.period, 1e-6)))
        assert abs(implied - clip.count) < 0.35, (seed, implied, clip.count)
        if clip.kind == "negative":
            assert not clip.periodic.any() and clip.count == 0
        else:
            assert clip.count >= 1.9


@pytest.mark.parametrize("kind", ["replay", "local"])
def test_frames_repeat_with_labelled_period(pool: FootagePool, kind: str) -> None:
    ratios = [_repeat_ratio(make_clip(pool, np.random.default_rng(seed), kind=kind, config=CLEAN))
              for seed in range(8)]
    assert np.median(ratios) < 0.35, ratios


def test_negatives_have_no_periodic_frames(pool: FootagePool) -> None:
    for seed in range(6):
        clip = make_clip(pool, np.random.default_rng(seed), kind="negative")
        assert not clip.periodic.any() and not clip.period.any() and clip.count == 0


def test_deterministic(pool: FootagePool) -> None:
    a, b = (make_clip(pool, np.random.default_rng(7)) for _ in range(2))
    c = make_clip(pool, np.random.default_rng(8))
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.period, b.period)
    assert a.count == b.count and a.kind == b.kind
    assert not np.array_equal(a.frames, c.frames)


def test_fast_periods_common() -> None:
    rng = np.random.default_rng(0)
    periods = np.array([synth.sample_period(rng, SynthConfig(), 32.0) for _ in range(4000)])
    assert 0.18 < np.mean(periods <= 4) < 0.3
    assert periods.min() >= 2 and periods.max() <= 32


@pytest.mark.parametrize("layout", ["full", "before", "after", "both"])
def test_timeline_layouts(layout: str) -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        tl = synth.sample_timeline(rng, 64, rng.uniform(2, 16), 0.1, layout, 32.0)
        periodic = tl.mask(64)
        assert periodic[0] == (layout in ("full", "after"))
        assert periodic[-1] == (layout in ("full", "before"))
        assert tl.count() >= 2 - 1e-9
        if layout == "both":
            assert tl.count() == pytest.approx(round(tl.count()))


def test_long_clip(pool: FootagePool) -> None:
    clip = make_long_clip(pool, np.random.default_rng(3), 120, shape=(60, 80), count=6,
                          context=(15, 15))
    assert clip.frames.shape == (120, 60, 80, 3)
    assert clip.count == pytest.approx(6)
    assert not clip.periodic[:15].any() and not clip.periodic[-15:].any()
    assert clip.periodic[15:-15].all()


def test_dataset_file(pool: FootagePool, tmp_path: Path) -> None:
    clips = [make_clip(pool, np.random.default_rng(s), num_frames=16, size=32) for s in range(3)]
    path = tmp_path / "d.npz"
    synth.write_dataset(path, clips, 3, 16, 32)
    data = np.load(path)
    assert data["frames"].shape == (3, 16, 32, 32, 3) and data["frames"].dtype == np.uint8
    assert np.array_equal(data["frames"][1], clips[1].frames)
    assert data["period"].shape == (3, 16) and data["periodic"].dtype == bool
    assert list(data["kind"]) == [c.kind for c in clips]
    assert data["count"].dtype == np.float32


def test_cli_end_to_end(tmp_path: Path) -> None:
    folder = tmp_path / "footage"
    folder.mkdir()
    for seed in range(2):
        writer = cv2.VideoWriter(str(folder / f"c{seed}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                                 25, (192, 144))
        for frame in _moving_texture(seed, 60):
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
    out = tmp_path / "synth.npz"
    synth.main(["--footage", str(folder), "--out", str(out), "--clips", "4", "--frames", "16",
                "--size", "32", "--pool-size", "96", "--workers", "1"])
    data = np.load(out)
    assert data["frames"].shape == (4, 16, 32, 32, 3)


def test_video_folder_for_calibration(pool: FootagePool, tmp_path: Path) -> None:
    from edgecount.convert.calibration import calibration_videos, load_clips

    clips = [make_clip(pool, np.random.default_rng(s), num_frames=16, size=32) for s in range(2)]
    synth.write_videos(tmp_path / "calib", clips)
    loaded = load_clips(calibration_videos(tmp_path / "calib"), 32, 100)
    assert [len(c) for c in loaded] == [16, 16]
    error = np.abs(loaded[1].astype(int) - clips[1].frames).mean()  # mp4v is lossy on 32x32 noise
    swapped = np.abs(loaded[1].astype(int) - clips[1].frames[..., ::-1]).mean()
    assert error < 20 and error < swapped  # and the RGB order is kept


@pytest.mark.skipif(not FOOTAGE.is_dir(), reason="needs ../shared/footage")
def test_load_real_footage() -> None:
    pool = FootagePool.load(FOOTAGE, size=144, max_clips=2, progress=False)
    assert len(pool) == 2
    frame = pool.frame(0, 0)
    assert frame.dtype == np.uint8 and min(frame.shape[:2]) == 144 and frame.shape[2] == 3
    clip = make_clip(pool, np.random.default_rng(0))
    assert clip.frames.shape == (64, 112, 112, 3)

"""Calibration clips: real frames for INT8 calibration, pruning recovery and verification.

Frames come from the videos of a user's folder (``--calibration DIR``) or, by
default, from the sample clip shipped in the package. Windows for the head are
built from per-frame features at strides 1..4, as the counter samples them, plus
synthetic repetitions (a short segment tiled over the window, every other copy
reversed) so that the head is also calibrated on periodic input.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from edgecount.errors import EdgecountError
from edgecount.evaluate import VIDEO_SUFFIXES
from edgecount.video import open_video, read_frames, to_model_frame

STRIDES = (1, 2, 3, 4)


def sample_clip() -> Path:
    """The sample video shipped inside the package."""
    return Path(str(resources.files("edgecount") / "assets" / "sample.mp4"))


def calibration_videos(folder: Path | None) -> list[Path]:
    """The videos of ``folder``, or the shipped sample clip when ``folder`` is None."""
    if folder is None:
        sample = sample_clip()
        if not sample.is_file():
            raise EdgecountError("no calibration clips: the package has no sample.mp4, pass --calibration DIR")
        return [sample]
    folder = Path(folder)
    if not folder.is_dir():
        raise EdgecountError(f"calibration folder {folder} does not exist")
    videos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise EdgecountError(f"calibration folder {folder} has no videos "
                             f"({', '.join(sorted(VIDEO_SUFFIXES))})")
    return videos


def load_clips(videos: list[Path], size: int, max_frames: int, max_clips: int = 16) -> list[np.ndarray]:
    """Up to ``max_frames`` consecutive model frames (N, size, size, 3) uint8 from each of
    up to ``max_clips`` videos, spread evenly over the list."""
    picked = [videos[i] for i in np.linspace(0, len(videos) - 1, min(len(videos), max_clips)).round().astype(int)]
    clips = []
    for path in dict.fromkeys(picked):
        cap, _ = open_video(path)
        try:
            frames = []
            for frame in read_frames(cap):
                frames.append(to_model_frame(frame, size))
                if len(frames) == max_frames:
                    break
        finally:
            cap.release()
        if len(frames) >= 2:
            clips.append(np.stack(frames))
    if not clips:
        raise EdgecountError("no frame could be decoded from the calibration videos")
    return clips


def hold_out(clips: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Split ``clips`` into frames to calibrate (quantization, recovery) on and frames to verify
    on: every third clip when there are three or more, else the last third of each clip. A
    check on the frames a quantizer was fitted to misses ranges that fit only those frames
    (NNCF's per-channel activation ranges looked fine on them and were not elsewhere)."""
    if len(clips) >= 3:
        return [c for i, c in enumerate(clips) if i % 3 != 2], clips[2::3]
    cut = [len(c) - len(c) // 3 for c in clips]
    return [c[:k] for c, k in zip(clips, cut)], [c[k:] for c, k in zip(clips, cut)]


def stride_windows(features: np.ndarray, num_frames: int, strides: tuple[int, ...] = STRIDES) -> np.ndarray:
    """Windows (W, T, ...) of one clip's features: every stride, starts half a window apart;
    a clip shorter than a window is padded by repeating its last sampled frame."""
    windows = []
    for stride in strides:
        sampled = features[::stride]
        if len(sampled) < num_frames // 2 and stride > 1:
            continue
        starts = range(0, max(len(sampled) - num_frames, 0) + 1, num_frames // 2)
        for start in starts:
            w = sampled[start:start + num_frames]
            if len(w) < num_frames:
                w = np.concatenate([w, np.repeat(w[-1:], num_frames - len(w), axis=0)])
            windows.append(w)
    return np.stack(windows)


def repeated_windows(features: np.ndarray, num_frames: int, count: int, seed: int = 0) -> np.ndarray:
    """Synthetic periodic windows (count, T, ...): a random segment of 2..32 frames of the
    clip tiled over the window, every other copy reversed now and then."""
    rng = np.random.default_rng(seed)
    windows = []
    for _ in range(count):
        period = int(rng.integers(2, min(32, len(features)) + 1))
        start = int(rng.integers(0, len(features) - period + 1))
        seg = features[start:start + period]
        copies = [seg[::-1] if rng.random() < 0.3 and i % 2 else seg for i in range(num_frames // period + 1)]
        windows.append(np.concatenate(copies)[:num_frames])
    return np.stack(windows)


def head_windows(features: list[np.ndarray], num_frames: int, synthetic_per_clip: int = 8) -> np.ndarray:
    """Windows to calibrate a head on: each clip's features at strides 1..4, then
    ``synthetic_per_clip`` synthetic repetitions made from each clip."""
    return np.concatenate([stride_windows(f, num_frames) for f in features]
                          + [repeated_windows(f, num_frames, synthetic_per_clip, i) for i, f in enumerate(features)])

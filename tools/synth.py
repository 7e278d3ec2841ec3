"""Synthetic repetition clips for RepNet-style training, made from real footage.

The footage is real and not repetitive; repetitions are synthesised from it in
three families (the ``kind`` of a clip):

- ``replay`` (RepNet's recipe): a real segment resampled to a period of P
  output frames and repeated, sometimes ping-pong, inside non-repeating context.
- ``local``: a still or slowly moving real background with one or two pasted
  real patches moving periodically (line, circle, bounce, swing, spin, pulse),
  or a limb-like region of the background bending or shifting periodically.
- ``negative``: no repetition: real footage at a random varying speed, a still
  scene, or patches and regions moving along random smooth paths.

Every clip gets a smooth random camera trajectory, slowly drifting colour,
blur and noise, and each cycle's length is jittered; the per-frame ``period``
label is the true local period in output frames (0 outside repetitions).

CLI::

    python tools/synth.py --footage ../shared/footage/clips --out data/synth.npz \\
        --clips 2000 --seed 0 [--size 112] [--frames 64] [--workers 2]

An ``--out`` without the .npz suffix is a folder of videos instead (one mp4 per
clip), for ``edgecount convert --calibration DIR``: INT8 calibration and the
pruning recovery on synthetic clips::

    python tools/synth.py --footage ../shared/footage/clips --out build/calib \\
        --clips 16 --frames 240 --seed 7
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

KINDS = ("replay", "local", "negative")
MIN_PERIOD = 2.0
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
THUMB = 16  # side of the grey thumbnails used to score motion
MIN_MOTION = 6.0  # mean abs thumbnail difference (0-255) for a visible replay cycle
MIN_TEXTURE = 14.0  # grey std (0-255) for a patch or warped region worth moving
REPETITIVE = 0.75  # clips whose repetition score is below this repeat on their own
MIN_CHANGED = 0.01  # share of pixels a repetition must change within a cycle, not across it

Affine = np.ndarray  # 3x3 float64 matrix mapping source pixels to target pixels
Wave = Callable[[np.ndarray], np.ndarray]


@dataclass
class SynthClip:
    """One synthetic clip with per-frame repetition labels."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    period: np.ndarray  # (T,) float32, local period in frames, 0 outside repetitions
    periodic: np.ndarray  # (T,) bool
    count: float  # true number of repetitions in the clip (fractional at cut cycles)
    kind: str  # "replay", "local" or "negative"


@dataclass
class SynthConfig:
    """Knobs of the generator; the defaults are the training mix."""

    weights: dict[str, float] = field(
        default_factory=lambda: {"replay": 0.37, "local": 0.45, "negative": 0.18})
    fast_fraction: float = 0.2  # share of periodic clips with a period of 2-4 frames
    max_period: float = 32.0
    max_jitter: float = 0.15  # each cycle's length varies by up to this fraction
    pingpong: float = 0.4  # share of replay clips played forward then reversed
    layouts: dict[str, float] = field(
        default_factory=lambda: {"full": 0.45, "before": 0.15, "after": 0.15, "both": 0.25})
    augment: float = 1.0  # strength of camera motion and photometric changes (0 = none)
    crop_zoom: tuple[float, float] = (0.6, 1.0)  # crop height / largest crop height


# ---------------------------------------------------------------- footage


def _decode(path: Path, size: int, code: int) -> np.ndarray:
    """Decode a video, resize it so the short side is `size` (even sides), convert with `code`."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        h, w = bgr.shape[:2]
        scale = size / min(h, w)
        dsize = (max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2))
        frames.append(cv2.cvtColor(cv2.resize(bgr, dsize, interpolation=cv2.INTER_AREA), code))
    cap.release()
    if not frames:
        raise ValueError(f"no frames decoded from {path}")
    return np.stack(frames)


def read_clip(path: Path, size: int) -> np.ndarray:
    """Decode a video as (n, h, w, 3) uint8 RGB with short side `size`."""
    return _decode(path, size, cv2.COLOR_BGR2RGB)


def _thumbnails(i420: np.ndarray) -> np.ndarray:
    """Grey THUMB x THUMB thumbnails (n, THUMB, THUMB) uint8 from I420 frames."""
    luma_rows = i420.shape[1] * 2 // 3
    return np.stack([cv2.resize(f[:luma_rows], (THUMB, THUMB), interpolation=cv2.INTER_AREA)
                     for f in i420])


def repetition_score(thumbs: np.ndarray, max_lag: int = 96) -> float:
    """Lowest ratio of the mean frame change at a lag L to that at L/2 (low: the clip repeats)."""
    t = thumbs.astype(np.float32)
    lags = range(1, min(max_lag, len(t) // 2) + 1)
    change = np.array([0.0] + [np.abs(t[lag:] - t[:-lag]).mean() for lag in lags])
    ratios = [change[lag] / max(change[lag // 2], 1e-3) for lag in lags if lag >= 4]
    return min(ratios, default=np.inf)


class FootagePool:
    """Real clips decoded once into memory.

    Frames are kept as I420 (the footage is 4:2:0 anyway), which halves the
    footprint of RGB; `frame` returns RGB. Clips that visibly repeat on their
    own (`repetition_score` < REPETITIVE) only serve as replay segments, never
    as non-repeating material.
    """

    def __init__(self, i420: list[np.ndarray], names: list[str]):
        self._i420 = i420
        self.names = names
        self._thumbs = [_thumbnails(c) for c in i420]
        calm = [c for c, t in enumerate(self._thumbs) if repetition_score(t) >= REPETITIVE]
        self.calm = calm or list(range(len(i420)))

    @classmethod
    def load(cls, folder: Path, size: int = 144, max_clips: int | None = None,
             progress: bool = True) -> FootagePool:
        """Decode every video in `folder` (short side `size`, aspect kept)."""
        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        paths = paths[:max_clips]
        if not paths:
            raise FileNotFoundError(f"no videos in {folder}")
        with ThreadPoolExecutor(2) as ex:
            jobs = ex.map(lambda p: _decode(p, size, cv2.COLOR_BGR2YUV_I420), paths)
            clips = list(tqdm(jobs, total=len(paths), desc="footage", disable=not progress))
        return cls(clips, [p.name for p in paths])

    @classmethod
    def from_arrays(cls, arrays: Sequence[np.ndarray],
                    names: Sequence[str] | None = None) -> FootagePool:
        """Pool from in-memory (n, h, w, 3) uint8 RGB clips (odd sides are cropped to even)."""
        clips = []
        for a in arrays:
            a = a[:, : a.shape[1] // 2 * 2, : a.shape[2] // 2 * 2]
            clips.append(np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2YUV_I420) for f in a]))
        return cls(clips, list(names) if names else [f"clip{i}" for i in range(len(arrays))])

    def __len__(self) -> int:
        return len(self._i420)

    @property
    def nbytes(self) -> int:
        """Memory held by the decoded frames."""
        return sum(c.nbytes for c in self._i420)

    def num_frames(self, clip: int) -> int:
        return len(self._i420[clip])

    def shape(self, clip: int) -> tuple[int, int]:
        """(height, width) of a clip's frames."""
        rows, w = self._i420[clip].shape[1:]
        return rows * 2 // 3, w

    def frame(self, clip: int, index: int) -> np.ndarray:
        """One frame as (h, w, 3) uint8 RGB."""
        return cv2.cvtColor(self._i420[clip][index], cv2.COLOR_YUV2RGB_I420)

    def calm_clip(self, rng: np.random.Generator, exclude: int | None = None) -> int:
        """Random clip that does not repeat on its own, other than `exclude` if possible."""
        choices = [c for c in self.calm if c != exclude] or self.calm
        return int(choices[rng.integers(len(choices))])

    def motion(self, clip: int, i: int, j: int) -> float:
        """Mean absolute grey difference (0-255) between two frames' thumbnails."""
        t = self._thumbs[clip]
        return float(np.mean(np.abs(t[i].astype(np.int16) - t[j])))


class _FrameCache:
    """RGB frames at fractional source positions, converted once per render.

    A fractional position cross-fades the two neighbouring frames (weight in
    eighths), so slow playback has no held frames.
    """

    def __init__(self, pool: FootagePool):
        self.pool = pool
        self._cache: dict[tuple[int, int, float], np.ndarray] = {}

    def get(self, clip: int, pos: float) -> np.ndarray:
        last = self.pool.num_frames(clip) - 1
        i = min(int(np.floor(pos)), last)
        w = round((pos - i) * 8) / 8 if i < last else 0.0
        if w == 1.0:
            i, w = i + 1, 0.0
        key = (clip, i, w)
        if key not in self._cache:
            a = self.pool.frame(clip, i)
            self._cache[key] = a if w == 0 else cv2.addWeighted(
                a, 1 - w, self.get(clip, i + 1), w, 0.0)
        return self._cache[key]


# ---------------------------------------------------------------- random curves


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def smooth_noise(rng: np.random.Generator, num_frames: int, dims: int,
                 spacing: tuple[float, float]) -> np.ndarray:
    """(num_frames, dims) smooth random curves in [-1, 1] through knots at irregular gaps."""
    lo, hi = spacing
    gaps = rng.uniform(lo, hi, int(np.ceil((num_frames + 2 * hi) / lo)) + 2)
    knots = np.cumsum(gaps) - gaps[0] - rng.uniform(0.0, gaps[0])
    values = rng.uniform(-1.0, 1.0, (len(knots), dims))
    t = np.arange(num_frames)
    k = np.clip(np.searchsorted(knots, t, side="right") - 1, 0, len(knots) - 2)
    s = _smoothstep((t - knots[k]) / (knots[k + 1] - knots[k]))
    return values[k] + (values[k + 1] - values[k]) * s[:, None]


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _choose(rng: np.random.Generator, weights: Mapping[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=float)
    return names[rng.choice(len(names), p=p / p.sum())]


# ---------------------------------------------------------------- timeline


@dataclass
class Timeline:
    """One repetition episode: cycle boundaries in output frames, periodic frames [start, stop)."""

    bounds: np.ndarray  # (K + 1,) increasing float64
    start: int
    stop: int

    def _phase_at(self, t: np.ndarray) -> np.ndarray:
        k = np.clip(np.searchsorted(self.bounds, t, side="right") - 1, 0, len(self.bounds) - 2)
        return k + (t - self.bounds[k]) / np.diff(self.bounds)[k]

    def mask(self, num_frames: int) -> np.ndarray:
        """(T,) bool: frames inside the episode."""
        t = np.arange(num_frames)
        lo, hi = max(self.start, self.bounds[0]), min(self.stop, self.bounds[-1])
        return (t >= lo) & (t < hi)

    def phase(self, num_frames: int) -> np.ndarray:
        """(T,) continuous cycle phase (cycle index + fraction), NaN outside the episode."""
        t = np.arange(num_frames, dtype=float)
        return np.where(self.mask(num_frames), self._phase_at(t), np.nan)

    def period(self, num_frames: int) -> np.ndarray:
        """(T,) float32 length of the cycle each frame is in, 0 outside the episode."""
        t = np.arange(num_frames, dtype=float)
        k = np.clip(np.searchsorted(self.bounds, t, side="right") - 1, 0, len(self.bounds) - 2)
        return np.where(self.mask(num_frames), np.diff(self.bounds)[k], 0.0).astype(np.float32)

    def count(self) -> float:
        """Cycles covered by the periodic frames (fractional where a cycle is cut by an edge)."""
        lo, hi = max(self.start, self.bounds[0]), min(self.stop, self.bounds[-1])
        return round(float(self._phase_at(np.array([hi]))[0] - self._phase_at(np.array([lo]))[0]),
                     6)


def sample_period(rng: np.random.Generator, cfg: SynthConfig, max_period: float) -> float:
    """Base period: 2, 3 or 4 frames for `fast_fraction` of clips, else log-uniform up to max."""
    if rng.random() < cfg.fast_fraction:
        return float(rng.integers(2, 5))
    return _log_uniform(rng, 4.0, max_period)


def sample_jitter(rng: np.random.Generator, cfg: SynthConfig, period: float) -> float:
    """Per-cycle length jitter, small for fast periods so their frames stay in phase."""
    return cfg.max_jitter * rng.uniform(0.3, 1.0) * min(1.0, (period - 2.0) / 6.0)


def _cycles(rng: np.random.Generator, period: float, jitter: float, n: int,
            max_period: float) -> np.ndarray:
    return np.clip(period * (1 + rng.uniform(-jitter, jitter, n)), MIN_PERIOD, max_period)


def _cumsum0(x: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(x)])


def sample_timeline(rng: np.random.Generator, num_frames: int, period: float, jitter: float,
                    layout: str, max_period: float) -> Timeline:
    """Episode of at least two cycles laid out as "full", "before", "after" or "both".

    "before"/"after"/"both" name where the non-periodic context is; an episode
    edge inside the clip falls on a cycle boundary, one at a clip edge may cut a cycle.
    """
    t = num_frames
    longest = period * (1 + jitter)
    need = int(np.ceil(2 * longest))
    if need > t - 2:
        layout = "full"
    many = int(np.ceil(t / (period * (1 - jitter)))) + 2
    lengths = _cycles(rng, period, jitter, many, max_period)
    if layout == "full":
        return Timeline(_cumsum0(lengths) - rng.uniform(0, 1) * lengths[0], 0, t)
    if layout == "before":
        start = int(rng.integers(1, t - need + 1))
        return Timeline(start + _cumsum0(lengths), start, t)
    if layout == "after":
        stop = int(rng.integers(need, t))
        return Timeline(stop - _cumsum0(lengths)[::-1], 0, stop)
    n = int(rng.integers(2, max(2, int((t - 2) // longest)) + 1))
    bounds = _cumsum0(lengths[:n])
    start = int(rng.integers(1, max(1, int(t - 1 - bounds[-1])) + 1))
    return Timeline(start + bounds, start, int(np.ceil(start + bounds[-1])))


def exact_timeline(rng: np.random.Generator, count: int, start: int, stop: int,
                   jitter: float) -> Timeline:
    """Exactly `count` jittered cycles filling frames [start, stop)."""
    span = stop - start
    lengths = span / count * (1 + rng.uniform(-jitter, jitter, count))
    return Timeline(start + _cumsum0(lengths * span / lengths.sum()), start, stop)


def _context_ramp(periodic: np.ndarray, frames: float = 10.0) -> np.ndarray:
    """(T,) 0 on periodic frames rising smoothly to 1 `frames` away from them (1 if none)."""
    idx = np.flatnonzero(periodic)
    if len(idx) == 0:
        return np.ones(len(periodic))
    t = np.arange(len(periodic))
    dist = np.maximum(idx[0] - t, t - idx[-1]).clip(min=0)
    return _smoothstep(dist / frames)


# ---------------------------------------------------------------- geometry


def _translate(x: float, y: float) -> Affine:
    return np.array([[1.0, 0, x], [0, 1.0, y], [0, 0, 1.0]])


def _rotate_scale(angle: float, sx: float = 1.0, sy: float = 1.0) -> Affine:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c * sx, -s * sy, 0], [s * sx, c * sy, 0], [0, 0, 1.0]])


def crop_matrix(rng: np.random.Generator, src_hw: tuple[int, int], out_hw: tuple[int, int],
                zoom: tuple[float, float]) -> Affine:
    """Random crop of the output's aspect, randomly flipped, mapped onto the output."""
    sh, sw = src_hw
    oh, ow = out_hw
    ch = min(sh, sw * oh / ow) * rng.uniform(*zoom)
    cw = ch * ow / oh
    x0, y0 = rng.uniform(0, sw - cw), rng.uniform(0, sh - ch)
    k = oh / ch
    m = np.array([[k, 0, -k * x0], [0, k, -k * y0], [0, 0, 1.0]])
    if rng.random() < 0.5:
        m = np.array([[-1.0, 0, ow], [0, 1, 0], [0, 0, 1]]) @ m
    return m


def camera_path(rng: np.random.Generator, num_frames: int, out_hw: tuple[int, int],
                strength: float) -> np.ndarray:
    """(T, 3, 3) smooth random camera motion (drift, rotation, zoom, sometimes shake)."""
    oh, ow = out_hw
    side = min(oh, ow)
    amp = strength * rng.uniform(0, 1) * np.array([0.05 * side, 0.05 * side, 0.05, 0.05])
    tx, ty, rot, zoom = (smooth_noise(rng, num_frames, 4, (12, 40)) * amp).T
    if rng.random() < 0.3 * strength:
        shake = smooth_noise(rng, num_frames, 2, (1.5, 3.0)) * rng.uniform(0.5, 2.0)
        tx, ty = tx + shake[:, 0], ty + shake[:, 1]
    centre, back = _translate(ow / 2, oh / 2), _translate(-ow / 2, -oh / 2)
    return np.stack([_translate(tx[i], ty[i]) @ centre @ _rotate_scale(rot[i], 1 + zoom[i],
                                                                        1 + zoom[i]) @ back
                     for i in range(num_frames)])


def _warp(src: np.ndarray, m: Affine, out_hw: tuple[int, int],
          border: int = cv2.BORDER_REFLECT101, dst: np.ndarray | None = None) -> np.ndarray:
    return cv2.warpAffine(src, m[:2], (out_hw[1], out_hw[0]), dst=dst, flags=cv2.INTER_LINEAR,
                          borderMode=border)


# ---------------------------------------------------------------- photometric


def colour_matrices(rng: np.random.Generator, num_frames: int, strength: float,
                    flicker: float) -> np.ndarray:
    """(T, 3, 4) colour transforms: channel gains, saturation, contrast, brightness, slow drift."""
    s = strength
    gains = np.diag(rng.uniform(1 - 0.15 * s, 1 + 0.15 * s, 3))
    sat = 0.0 if rng.random() < 0.05 * s else rng.uniform(1 - 0.5 * s, 1 + 0.4 * s)
    luma = np.array([0.299, 0.587, 0.114])
    mix = sat * np.eye(3) + (1 - sat) * np.outer(np.ones(3), luma)
    drift = smooth_noise(rng, num_frames, 2, (16, 48)) * s * rng.uniform(0, 1)
    contrast = rng.uniform(1 - 0.3 * s, 1 + 0.25 * s) * (1 + 0.1 * drift[:, 0])
    brightness = (rng.uniform(-25, 25) * s + 12 * drift[:, 1]
                  + flicker * s * rng.standard_normal(num_frames))
    out = np.empty((num_frames, 3, 4))
    out[:, :, :3] = contrast[:, None, None] * (mix @ gains)
    out[:, :, 3] = (128 * (1 - contrast) + brightness)[:, None]
    return out


_NOISE: dict[tuple[int, int], np.ndarray] = {}


def _noise_bank(out_hw: tuple[int, int]) -> np.ndarray:
    """Fixed bank of unit Gaussian noise a little larger than the output (deterministic)."""
    if out_hw not in _NOISE:
        rng = np.random.default_rng(12345)
        _NOISE[out_hw] = rng.standard_normal((4, out_hw[0] + 32, out_hw[1] + 32, 3),
                                             dtype=np.float32)
    return _NOISE[out_hw]


def finish(frames: np.ndarray, rng: np.random.Generator, strength: float,
           flicker: float = 0.0) -> np.ndarray:
    """Colour drift, blur, resolution loss and noise, in place on (T, H, W, 3) uint8."""
    t, h, w = frames.shape[:3]
    colour = colour_matrices(rng, t, strength, flicker)
    blur = rng.uniform(0.4, 1.3) if rng.random() < 0.4 * strength else 0.0
    lowres = rng.uniform(0.4, 0.8) if rng.random() < 0.15 * strength else 1.0
    sigma = rng.uniform(1.0, 7.0) if rng.random() < 0.6 * strength else 0.0
    bank = _noise_bank((h, w))
    offsets = rng.integers(0, 33, (t, 2))
    layers = rng.integers(0, len(bank), t)
    for i in range(t):
        f = cv2.transform(frames[i], colour[i].astype(np.float32))
        if blur:
            f = cv2.GaussianBlur(f, (0, 0), blur)
        if lowres < 1:
            small = cv2.resize(f, (max(2, int(w * lowres)), max(2, int(h * lowres))),
                               interpolation=cv2.INTER_AREA)
            f = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        if sigma:
            (oy, ox), n = offsets[i], bank[layers[i]]
            f = cv2.addWeighted(f, 1.0, n[oy:oy + h, ox:ox + w], sigma, 0.0, dtype=cv2.CV_8U)
        frames[i] = f
    return frames


# ---------------------------------------------------------------- replay


@dataclass
class _Segment:
    clip: int
    start: float  # first source frame
    length: float  # source frames covered by one forward pass


def _pingpong(f: np.ndarray) -> np.ndarray:
    """Fraction of the segment shown at cycle fraction f when played forward then back."""
    return 1.0 - np.abs(1.0 - 2.0 * f)


def _pick_segment(pool: FootagePool, rng: np.random.Generator, forward_frames: float,
                  shown_at_half: float, tries: int = 12) -> _Segment:
    """Segment whose frames at cycle fractions 0 and 0.5 differ visibly (best of `tries`)."""
    best, best_score = None, -1.0
    for _ in range(tries):
        clip = int(rng.integers(len(pool)))
        n = pool.num_frames(clip)
        lo, hi = max(0.5, 2.0 / forward_frames), min(4.0, (n - 1) / forward_frames)
        if lo > hi:
            continue
        length = _log_uniform(rng, lo, hi) * forward_frames
        start = rng.uniform(0, n - 1 - length)
        score = pool.motion(clip, round(start), round(start + shown_at_half * length))
        if score > best_score:
            best, best_score = _Segment(clip, start, length), score
        if score >= MIN_MOTION:
            break
    if best is None:  # every clip is too short: take the longest one whole
        clip = int(np.argmax([pool.num_frames(c) for c in range(len(pool))]))
        best = _Segment(clip, 0.0, pool.num_frames(clip) - 1.0)
    return best


def _playback(pool: FootagePool, rng: np.random.Generator, clip: int, anchor: float,
              offsets: np.ndarray, speed: float, own_clip_prob: float) -> tuple[int, np.ndarray]:
    """Source clip and positions for context frames `offsets` frames away from `anchor`.

    Plays the episode's own clip through the anchor when it has the frames and
    does not repeat on its own, else (or at random) a stretch of another clip.
    """
    pos = anchor + speed * offsets
    n = pool.num_frames(clip)
    own = clip in pool.calm and pos.min() >= 0 and pos.max() <= n - 1
    if rng.random() < own_clip_prob and own:
        return clip, pos
    other = pool.calm_clip(rng, clip)
    rel = speed * (offsets - offsets.min())
    room = pool.num_frames(other) - 1 - rel.max()
    return other, rel + rng.uniform(0, max(0.0, room))


def _replay_sources(pool: FootagePool, rng: np.random.Generator, tl: Timeline, num_frames: int,
                    cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """(clip, source position) per output frame: looped segment plus context playback."""
    pingpong = rng.random() < cfg.pingpong
    periods = tl.period(num_frames)
    mean_period = float(periods[periods > 0].mean())
    seg = _pick_segment(pool, rng, mean_period / 2 if pingpong else mean_period,
                        1.0 if pingpong else 0.5)
    frac = np.mod(tl.phase(num_frames), 1.0)
    shown = _pingpong(frac) if pingpong else frac
    clips = np.full(num_frames, seg.clip)
    pos = seg.start + seg.length * shown
    t = np.arange(num_frames, dtype=float)
    speed = _log_uniform(rng, 0.5, 2.0)
    periodic = tl.mask(num_frames)
    before = t < np.flatnonzero(periodic)[0]
    after = t > np.flatnonzero(periodic)[-1]
    if before.any():
        clips[before], pos[before] = _playback(pool, rng, seg.clip, seg.start,
                                               t[before] - tl.bounds[0], speed, 0.75)
    if after.any():
        clips[after], pos[after] = _playback(pool, rng, seg.clip, seg.start + seg.length,
                                             t[after] - tl.bounds[-1], speed, 0.75)
    lengths = np.array([pool.num_frames(c) for c in clips])
    return clips, np.clip(pos, 0, lengths - 1)


def _render_sources(pool: FootagePool, rng: np.random.Generator, clips: np.ndarray,
                    pos: np.ndarray, cam: np.ndarray, out_hw: tuple[int, int],
                    cfg: SynthConfig) -> np.ndarray:
    """Warp source frames (clip, fractional position) through random crops and camera `cam`."""
    crops = {c: crop_matrix(rng, pool.shape(c), out_hw, cfg.crop_zoom) for c in sorted(set(clips))}
    cache = _FrameCache(pool)
    frames = np.empty((len(clips), *out_hw, 3), np.uint8)
    for t, (c, p) in enumerate(zip(clips, pos)):
        _warp(cache.get(c, p), cam[t] @ crops[c], out_hw, dst=frames[t])
    return frames


def render_replay(pool: FootagePool, rng: np.random.Generator, tl: Timeline, num_frames: int,
                  out_hw: tuple[int, int], cfg: SynthConfig) -> np.ndarray:
    """Replay family: a real segment looped at the timeline's periods inside context."""
    clips, pos = _replay_sources(pool, rng, tl, num_frames, cfg)
    cam = camera_path(rng, num_frames, out_hw, cfg.augment)
    return _render_sources(pool, rng, clips, pos, cam, out_hw, cfg)


# ---------------------------------------------------------------- local motion


def _phase_warp(rng: np.random.Generator) -> Wave:
    """Random monotone map of [0, 1) onto itself: uneven speed within a cycle."""
    a = rng.uniform(-0.6, 0.6)
    return lambda f: f + a * np.sin(2 * np.pi * f) / (2 * np.pi)


def _waveform(rng: np.random.Generator) -> Wave:
    """Random periodic waveform in [-1, 1] with value 1 at fraction 0 (uneven, some dwell)."""
    g = _phase_warp(rng)
    gain = 1.0 if rng.random() < 0.6 else rng.uniform(1.0, 2.0)
    return lambda f: np.clip(gain * np.cos(2 * np.pi * g(f)), -1.0, 1.0)


@dataclass
class _Pose:
    """Per-frame pose of a moving layer: offset (px), angle (rad), scales."""

    dx: np.ndarray
    dy: np.ndarray
    angle: np.ndarray
    sx: np.ndarray
    sy: np.ndarray

    @classmethod
    def rest(cls, num_frames: int) -> _Pose:
        z = np.zeros(num_frames)
        return cls(z, z.copy(), z.copy(), z + 1, z + 1)

    def matrix(self, i: int) -> Affine:
        return _translate(self.dx[i], self.dy[i]) @ _rotate_scale(self.angle[i], self.sx[i],
                                                                   self.sy[i])


MOTIONS = ("line", "circle", "bounce", "swing", "spin", "pulse")


def periodic_pose(rng: np.random.Generator, frac: np.ndarray, amp: np.ndarray,
                  side: float) -> _Pose:
    """Pose of a layer moving periodically with cycle fraction `frac` (amp ~ 1 varies slowly)."""
    pose = _Pose.rest(len(frac))
    motion = MOTIONS[rng.choice(len(MOTIONS), p=[0.25, 0.15, 0.15, 0.2, 0.08, 0.17])]
    reach = rng.uniform(0.08, 0.3) * side * amp
    direction = rng.uniform(0, 2 * np.pi)
    if motion in ("line", "bounce"):
        wave = _waveform(rng)(frac) if motion == "line" else 1 - 2 * np.abs(
            np.sin(np.pi * _phase_warp(rng)(frac)))
        if motion == "bounce":
            direction = np.pi / 2 + rng.uniform(-0.3, 0.3)
        pose.dx, pose.dy = reach * wave * np.cos(direction), reach * wave * np.sin(direction)
    elif motion == "circle":
        g = 2 * np.pi * _phase_warp(rng)(frac)
        u, v = np.cos(g), rng.choice([-1, 1]) * rng.uniform(0.3, 1.0) * np.sin(g)
        c, s = np.cos(direction), np.sin(direction)
        pose.dx, pose.dy = reach * (c * u - s * v), reach * (s * u + c * v)
    elif motion == "swing":
        pose.angle = np.radians(rng.uniform(12, 50)) * amp * _waveform(rng)(frac)
    elif motion == "spin":
        pose.angle = rng.choice([-1, 1]) * 2 * np.pi * _phase_warp(rng)(frac)
    else:
        wave = rng.uniform(0.15, 0.4) * amp * _waveform(rng)(frac)
        pose.sx, pose.sy = 1 + wave, 1 + wave * rng.uniform(-1, 1)
    if motion in ("line", "bounce", "circle") and rng.random() < 0.3:
        pose.angle = np.radians(rng.uniform(5, 20)) * _waveform(rng)(frac)
    return pose


def random_pose(rng: np.random.Generator, num_frames: int, side: float) -> _Pose:
    """Pose along a random smooth non-repeating path."""
    curves = smooth_noise(rng, num_frames, 4, (6, 24))
    reach = rng.uniform(0.05, 0.3) * side
    return _Pose(reach * curves[:, 0], reach * curves[:, 1],
                 np.radians(rng.uniform(0, 30)) * curves[:, 2],
                 1 + rng.uniform(0, 0.2) * curves[:, 3], 1 + rng.uniform(0, 0.2) * curves[:, 3])


def blend_poses(base: _Pose, extra: _Pose, weight: np.ndarray) -> _Pose:
    """`base` plus `weight` times the deviation of `extra` from rest."""
    return _Pose(base.dx + weight * extra.dx, base.dy + weight * extra.dy,
                 base.angle + weight * extra.angle, base.sx + weight * (extra.sx - 1),
                 base.sy + weight * (extra.sy - 1))


def layer_pose(rng: np.random.Generator, frac: np.ndarray, side: float,
               context_motion: float) -> _Pose:
    """Periodic pose on periodic frames (frac not NaN), rest plus a smooth random path elsewhere.

    `context_motion` scales the random path away from the episode; where no
    frame is periodic the layer just follows the random path.
    """
    periodic = ~np.isnan(frac)
    amp = 1 + rng.uniform(0, 0.25) * smooth_noise(rng, len(frac), 1, (16, 48))[:, 0]
    base = periodic_pose(rng, np.where(periodic, frac, 0.0), amp, side)
    weight = _context_ramp(periodic) * context_motion
    return blend_poses(base, random_pose(rng, len(frac), side), weight)


@dataclass
class _Patch:
    """A region of a real clip pasted as a moving layer."""

    clip: int
    pos: np.ndarray  # (T,) source position per output frame
    to_local: Affine  # source pixels -> layer pixels centred on the pivot
    mask: np.ndarray  # float32 alpha over the source region
    mask_origin: Affine  # mask pixels -> source pixels
    anchor: tuple[float, float]  # layer position on the canvas at rest


def _patch_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Soft rectangle or ellipse alpha of size (h, w)."""
    mask = np.zeros((h, w), np.float32)
    feather = max(1.0, 0.06 * min(h, w) * rng.uniform(0.3, 1.0))
    inset = int(np.ceil(feather))
    if rng.random() < 0.5:
        cv2.rectangle(mask, (inset, inset), (w - 1 - inset, h - 1 - inset), 1.0, -1)
    else:
        cv2.ellipse(mask, (w // 2, h // 2), (max(1, w // 2 - inset), max(1, h // 2 - inset)),
                    0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(mask, (0, 0), feather)


def _patch_region(pool: FootagePool, rng: np.random.Generator, clip: int, index: int,
                  rel_height: float, aspect: float, tries: int = 6) -> tuple[int, int, int, int]:
    """Textured region (x0, y0, w, h) of a source frame (most textured of `tries`)."""
    sh, sw = pool.shape(clip)
    h = max(4, min(sh - 1, int(rel_height * sh)))
    w = max(4, min(sw - 1, int(h * aspect)))
    grey = cv2.cvtColor(pool.frame(clip, index), cv2.COLOR_RGB2GRAY)
    best, best_std = (0, 0, w, h), -1.0
    for _ in range(tries):
        x0, y0 = int(rng.integers(0, sw - w + 1)), int(rng.integers(0, sh - h + 1))
        std = float(grey[y0:y0 + h, x0:x0 + w].std())
        if std > best_std:
            best, best_std = (x0, y0, w, h), std
        if std >= MIN_TEXTURE:
            break
    return best


def _patch_frames(pool: FootagePool, rng: np.random.Generator, clip: int, frac: np.ndarray,
                  period: float) -> np.ndarray:
    """Source position per output frame: still, playing, or a segment in sync with the cycle."""
    n, t = pool.num_frames(clip), len(frac)
    mode = rng.choice(3, p=[0.5, 0.2, 0.3]) if not np.isnan(frac).all() else rng.choice(2)
    if mode == 1:
        speed = rng.uniform(0.2, 1.0)
        pos = rng.uniform(0, max(0.0, n - 1 - speed * t)) + speed * np.arange(t)
    elif mode == 2:
        length = min(n - 1.0, rng.uniform(0.3, 1.5) * period)
        start = rng.uniform(0, n - 1 - length)
        pos = start + length * _pingpong(np.nan_to_num(frac, nan=0.0))
    else:
        pos = np.full(t, float(rng.integers(n)))
    return np.clip(pos, 0, n - 1)


def make_patch(pool: FootagePool, rng: np.random.Generator, exclude: int, out_hw: tuple[int, int],
               frac: np.ndarray, period: float) -> _Patch:
    """Random real patch (15-50% of the frame side) placed on the canvas."""
    side = min(out_hw)
    clip = pool.calm_clip(rng, exclude)
    pos = _patch_frames(pool, rng, clip, frac, period)
    aspect = _log_uniform(rng, 0.5, 2.0) if rng.random() < 0.75 else rng.choice([0.3, 3.3])
    x0, y0, w, h = _patch_region(pool, rng, clip, int(pos[0]), rng.uniform(0.15, 0.6),
                                 aspect)
    k = rng.uniform(0.15, 0.5) * side / max(h, w)
    pivot_y = h / 2 + (rng.choice([-1, 1]) * h / 2 if rng.random() < 0.3 else 0.0)
    to_local = _rotate_scale(0.0, k, k) @ _translate(-x0 - w / 2, -y0 - pivot_y)
    margin = 0.2 * side
    anchor = (rng.uniform(margin, out_hw[1] - margin), rng.uniform(margin, out_hw[0] - margin))
    return _Patch(clip, pos, to_local, _patch_mask(rng, h, w), _translate(x0, y0), anchor)


def _background(pool: FootagePool, rng: np.random.Generator, cam: np.ndarray,
                out_hw: tuple[int, int], cfg: SynthConfig) -> tuple[int, np.ndarray]:
    """A still real background, or one playing slowly forward (clip, rendered frames)."""
    num_frames = len(cam)
    clip = pool.calm_clip(rng)
    n = pool.num_frames(clip)
    speed = rng.uniform(0.1, 0.5) if rng.random() < 0.2 else 0.0
    start = rng.uniform(0, max(0.0, n - 1 - speed * num_frames))
    pos = np.clip(start + speed * np.arange(num_frames), 0, n - 1)
    return clip, _render_sources(pool, rng, np.full(num_frames, clip), pos, cam, out_hw, cfg)


def composite_patch(pool: FootagePool, frames: np.ndarray, patch: _Patch, pose: _Pose,
                    cam: np.ndarray) -> np.ndarray:
    """Alpha-blend a moving patch over `frames` in place; returns the (H, W) area it covered."""
    out_hw = frames.shape[1:3]
    cache = _FrameCache(pool)
    place = _translate(*patch.anchor)
    swept = np.zeros(out_hw, np.float32)
    for t in range(len(frames)):
        m = cam[t] @ place @ pose.matrix(t) @ patch.to_local
        layer = _warp(cache.get(patch.clip, patch.pos[t]), m, out_hw)
        alpha = _warp(patch.mask, m @ patch.mask_origin, out_hw, cv2.BORDER_CONSTANT)
        frames[t] = cv2.blendLinear(layer, frames[t], alpha, 1.0 - alpha)
        np.maximum(swept, alpha, out=swept)
    return swept > 0.5


@dataclass
class _Limb:
    """Soft region of the canvas that bends about a pivot and/or shifts."""

    weights: np.ndarray  # (H, W) float32 in [0, 1]
    pivot: tuple[float, float]
    direction: float  # shift direction (rad)


def make_limb(rng: np.random.Generator, out_hw: tuple[int, int], reference: np.ndarray,
              tries: int = 6) -> _Limb:
    """Limb-like soft region starting at a pivot, on textured background (best of `tries`)."""
    h, w = out_hw
    side = min(h, w)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    grey = cv2.cvtColor(reference, cv2.COLOR_RGB2GRAY).astype(np.float32)
    best, best_std = None, -1.0
    for _ in range(tries):
        px, py = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
        axis = rng.uniform(0, 2 * np.pi)
        length, width = rng.uniform(0.2, 0.45) * side, rng.uniform(0.05, 0.12) * side
        along = (xs - px) * np.cos(axis) + (ys - py) * np.sin(axis)
        across = -(xs - px) * np.sin(axis) + (ys - py) * np.cos(axis)
        tail = np.exp(-(np.maximum(along - length, 0) / (0.3 * length)) ** 2)
        weights = (np.exp(-(across / width) ** 2) * _smoothstep(along / (0.5 * length))
                   * tail).astype(np.float32)
        std = float(np.sqrt(np.average((grey - np.average(grey, weights=weights + 1e-6)) ** 2,
                                       weights=weights + 1e-6)))
        if std > best_std:
            best, best_std = _Limb(weights, (px, py), axis + np.pi / 2), std
        if std >= MIN_TEXTURE:
            break
    return best


def bend_limb(frames: np.ndarray, limb: _Limb, angle: np.ndarray, shift: np.ndarray) -> None:
    """Warp the limb region of each frame in place: rotation about the pivot plus a shift."""
    h, w = frames.shape[1:3]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    wx, wy = limb.weights * (xs - limb.pivot[0]), limb.weights * (ys - limb.pivot[1])
    ux, uy = np.cos(limb.direction), np.sin(limb.direction)
    for t in range(len(frames)):
        c, s = float(np.cos(angle[t])) - 1, -float(np.sin(angle[t]))
        map_x = xs + c * wx - s * wy - limb.weights * float(shift[t] * ux)
        map_y = ys + s * wx + c * wy - limb.weights * float(shift[t] * uy)
        frames[t] = cv2.remap(frames[t], map_x, map_y, cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)


def periodic_signal(rng: np.random.Generator, frac: np.ndarray,
                    context_motion: float) -> np.ndarray:
    """(T,) random waveform (amplitude drifting) on periodic frames (frac not NaN).

    Elsewhere: the waveform's rest value plus `context_motion` times a smooth
    random path, faded in away from the episode.
    """
    periodic = ~np.isnan(frac)
    amp = 1 + rng.uniform(0, 0.25) * smooth_noise(rng, len(frac), 1, (16, 48))[:, 0]
    value = amp * _waveform(rng)(np.where(periodic, frac, 0.0))
    path = smooth_noise(rng, len(frac), 1, (6, 24))[:, 0]
    return value + _context_ramp(periodic) * context_motion * path


def limb_motion(rng: np.random.Generator, frac: np.ndarray, side: float,
                context_motion: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame bend angle (rad) and shift (px) of a limb, periodic where frac is set."""
    bend = np.radians(rng.uniform(15, 35)) * periodic_signal(rng, frac, context_motion)
    reach = rng.uniform(0.03, 0.1) * side if rng.random() < 0.4 else 0.0
    return bend, reach * periodic_signal(rng, frac, context_motion)


def render_local(pool: FootagePool, rng: np.random.Generator, frac: np.ndarray, period: float,
                 out_hw: tuple[int, int], cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """Local family: background with moving patch(es) or a bending region.

    `frac` is the cycle fraction on periodic frames and NaN elsewhere (all NaN
    for a negative: every layer then follows a random path). Returns the
    frames and the (H, W) area the periodic layers cover.
    """
    num_frames, side = len(frac), min(out_hw)
    negative = np.isnan(frac).all()
    context = 1.0 if negative else (0.0 if rng.random() < 0.5 else rng.uniform(0.3, 1.0))
    cam = camera_path(rng, num_frames, out_hw, cfg.augment)
    bg_clip, frames = _background(pool, rng, cam, out_hw, cfg)
    if rng.random() < 0.3:
        limb = make_limb(rng, out_hw, frames[0])
        bend_limb(frames, limb, *limb_motion(rng, frac, side, context))
        return frames, limb.weights > 0.3
    region = np.zeros(out_hw, bool)
    layers = [frac]
    if rng.random() < 0.25:
        layers.append(np.mod(frac + rng.uniform(0, 1), 1.0) if rng.random() < 0.5
                      else np.full(num_frames, np.nan))
    for layer_frac in layers:
        patch = make_patch(pool, rng, bg_clip, out_hw, layer_frac, period)
        pose = layer_pose(rng, layer_frac, side, 1.0 if np.isnan(layer_frac).all() else context)
        swept = composite_patch(pool, frames, patch, pose, cam)
        if not np.isnan(layer_frac).all():
            region |= swept
    return frames, region


def _cycle_samples(period: np.ndarray,
                   samples: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to `samples` periodic frames t with t + P periodic too, and frames t + P/2, t + P."""
    t = np.flatnonzero(period > 0)
    full = t + np.rint(period[t]).astype(int)
    keep = full < len(period)
    t, full = t[keep], full[keep]
    keep = period[full] > 0
    t, full = t[keep], full[keep]
    pick = np.linspace(0, len(t) - 1, min(samples, len(t))).astype(int)
    t, full = t[pick], full[pick]
    return t, t + np.maximum(1, np.rint(period[t] / 2).astype(int)), full


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose colour differs by more than 20 levels."""
    return cv2.absdiff(a, b).max(-1) > 20


def periodic_contrast(frames: np.ndarray, period: np.ndarray) -> float:
    """How much more of the image changes over half a period than over a whole one.

    High when the repetition is visible and dominates the non-periodic change.
    """
    t, half, full = _cycle_samples(period)
    if len(t) == 0:
        return 0.0
    return float(np.mean([_changed(frames[a], frames[h]).mean() - _changed(frames[a],
                                                                          frames[f]).mean()
                          for a, h, f in zip(t, half, full)]))


def local_visibility(frames: np.ndarray, period: np.ndarray, region: np.ndarray) -> float:
    """Share of the image, inside the moving layer's `region`, changing over half a period."""
    t, half, _ = _cycle_samples(period)
    if len(t) == 0:
        return 0.0
    return float(np.mean([(_changed(frames[a], frames[h]) & region).mean()
                          for a, h in zip(t, half)]))


# ---------------------------------------------------------------- negatives


def _footage_sources(pool: FootagePool, rng: np.random.Generator,
                     num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Real footage at a random varying forward speed (still at times), cutting on clip end."""
    base = 0.0 if rng.random() < 0.15 else _log_uniform(rng, 0.3, 3.0)
    speed = base * (1 + 0.4 * smooth_noise(rng, num_frames, 1, (12, 40))[:, 0])
    clips, pos = np.empty(num_frames, int), np.empty(num_frames)
    t = 0
    while t < num_frames:
        clip = pool.calm_clip(rng)
        n = pool.num_frames(clip)
        run_pos = (rng.uniform(0, max(0.0, n - 1 - speed[t:].sum()))
                   + np.cumsum(speed[t:]) - speed[t])
        run = max(1, int(np.searchsorted(run_pos, n - 1, side="right")))
        clips[t:t + run], pos[t:t + run] = clip, np.minimum(run_pos[:run], n - 1)
        t += run
    return clips, pos


def render_negative(pool: FootagePool, rng: np.random.Generator, num_frames: int,
                    out_hw: tuple[int, int], cfg: SynthConfig) -> np.ndarray:
    """Negative family: footage at random speed, or local layers on random paths."""
    if rng.random() < 0.5:
        clips, pos = _footage_sources(pool, rng, num_frames)
        cam = camera_path(rng, num_frames, out_hw, cfg.augment)
        return _render_sources(pool, rng, clips, pos, cam, out_hw, cfg)
    return render_local(pool, rng, np.full(num_frames, np.nan), 0.0, out_hw, cfg)[0]


# ---------------------------------------------------------------- clips


def render_visible(render: Callable[[], tuple[np.ndarray, float]], tries: int = 4) -> np.ndarray:
    """Frames of `render()` (frames, visibility) with visibility >= MIN_CHANGED, else the best."""
    best, best_score = None, -np.inf
    for _ in range(tries):
        frames, score = render()
        if score > best_score:
            best, best_score = frames, score
        if score >= MIN_CHANGED:
            break
    return best


def _render(pool: FootagePool, rng: np.random.Generator, kind: str, tl: Timeline | None,
            num_frames: int, out_hw: tuple[int, int], cfg: SynthConfig) -> SynthClip:
    """Render a clip of `kind` following timeline `tl` (None for negatives) and label it."""
    if kind == "negative" or tl is None:
        frames = render_negative(pool, rng, num_frames, out_hw, cfg)
        period = np.zeros(num_frames, np.float32)
    else:
        period = tl.period(num_frames)
        frac, mean_period = np.mod(tl.phase(num_frames), 1.0), float(period[period > 0].mean())

        def replay() -> tuple[np.ndarray, float]:
            frames = render_replay(pool, rng, tl, num_frames, out_hw, cfg)
            return frames, periodic_contrast(frames, period)

        def local() -> tuple[np.ndarray, float]:
            frames, region = render_local(pool, rng, frac, mean_period, out_hw, cfg)
            return frames, local_visibility(frames, period, region)

        renderers = {"replay": replay, "local": local}
        if kind not in renderers:
            raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
        frames = render_visible(renderers[kind])
    flicker = rng.uniform(0, 4) if kind != "replay" and rng.random() < 0.3 else 0.0
    finish(frames, rng, cfg.augment, flicker)
    count = 0.0 if tl is None or kind == "negative" else tl.count()
    return SynthClip(frames, period, period > 0, count, kind)


def compress(frames: np.ndarray, quality: int) -> np.ndarray:
    """Each RGB frame through JPEG at ``quality``: the blocking and ringing of a video codec
    (per frame; real codecs also carry artifacts from frame to frame)."""
    out = np.empty_like(frames)
    for i, frame in enumerate(frames):
        ok, buf = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        out[i] = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return out


def make_clip(pool: FootagePool, rng: np.random.Generator, num_frames: int = 64, size: int = 112,
              kind: str | None = None, config: SynthConfig | None = None) -> SynthClip:
    """One training clip of `num_frames` frames at size x size (kind drawn from the weights)."""
    cfg = config or SynthConfig()
    kind = kind or _choose(rng, cfg.weights)
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    tl = None
    if kind != "negative":
        max_period = min(cfg.max_period, num_frames / 2)
        period = sample_period(rng, cfg, max_period)
        jitter = sample_jitter(rng, cfg, period)
        tl = sample_timeline(rng, num_frames, period, jitter, _choose(rng, cfg.layouts),
                             max_period)
    return _render(pool, rng, kind, tl, num_frames, (size, size), cfg)


def make_long_clip(pool: FootagePool, rng: np.random.Generator, num_frames: int = 300,
                   size: int = 240, *, shape: tuple[int, int] | None = None,
                   kind: str = "local", count: int | None = None,
                   context: tuple[int, int] = (30, 30),
                   config: SynthConfig | None = None) -> SynthClip:
    """A longer clip (frames (h, w) = `shape`, default size x size) with one repetition episode.

    The episode has exactly `count` cycles (random, periods 8-32 frames, if
    None) between `context` = (before, after) non-repeating frames.
    """
    cfg = config or SynthConfig()
    out_hw = shape or (size, size)
    start, stop = context[0], num_frames - context[1]
    if kind == "negative":
        return _render(pool, rng, kind, None, num_frames, out_hw, cfg)
    if count is None:
        span = stop - start
        count = int(rng.integers(int(np.ceil(span / 32)), max(2, span // 8) + 1))
    jitter = sample_jitter(rng, cfg, (stop - start) / count)
    return _render(pool, rng, kind, exact_timeline(rng, count, start, stop, jitter),
                   num_frames, out_hw, cfg)


# ---------------------------------------------------------------- dataset file


def write_dataset(path: Path, clips: Iterable[SynthClip], num_clips: int, num_frames: int,
                  size: int) -> None:
    """Stream clips into an uncompressed .npz (frames, period, periodic, count, kind)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    labels: dict[str, list] = {"period": [], "periodic": [], "count": [], "kind": []}
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
              "shape": (num_clips, num_frames, size, size, 3)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        with zf.open("frames.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_2_0(fh, header)
            for clip in clips:
                fh.write(np.ascontiguousarray(clip.frames).data)
                for key in labels:
                    labels[key].append(getattr(clip, key))
        arrays = {"period": np.stack(labels["period"]), "periodic": np.stack(labels["periodic"]),
                  "count": np.array(labels["count"], np.float32), "kind": np.array(labels["kind"])}
        for key, arr in arrays.items():
            with zf.open(f"{key}.npy", "w") as fh:
                np.lib.format.write_array(fh, arr, allow_pickle=False)


def write_videos(folder: Path, clips: Iterable[SynthClip], fps: float = 30.0) -> None:
    """One mp4 per clip (clip_00000.mp4, ...) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, clip in enumerate(clips):
        height, width = clip.frames.shape[1:3]
        writer = cv2.VideoWriter(str(folder / f"clip_{index:05d}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                                 fps, (width, height))
        try:
            for frame in clip.frames:
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()


_WORKER: dict = {}


def _clip_job(index: int) -> SynthClip:
    """Clip `index` of the dataset; its rng depends only on (seed, index)."""
    w = _WORKER
    rng = np.random.default_rng([w["seed"], index])
    return make_clip(w["pool"], rng, w["frames"], w["size"], config=w["config"])


def generate(pool: FootagePool, num_clips: int, seed: int, num_frames: int, size: int,
             config: SynthConfig, workers: int) -> Iterator[SynthClip]:
    """Clips 0..num_clips-1 in order, made by `workers` forked processes."""
    _WORKER.update(pool=pool, seed=seed, frames=num_frames, size=size, config=config)
    if workers <= 1:
        yield from map(_clip_job, range(num_clips))
        return
    with mp.get_context("fork").Pool(workers, initializer=cv2.setNumThreads,
                                      initargs=(1,)) as procs:
        yield from procs.imap(_clip_job, range(num_clips), chunksize=4)


def _parse_weights(text: str) -> dict[str, float]:
    """'replay=0.4,local=0.4,negative=0.2' -> dict."""
    pairs = (item.split("=") for item in text.split(","))
    return {k.strip(): float(v) for k, v in pairs}


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--footage", type=Path, required=True, help="folder of real videos")
    ap.add_argument("--out", type=Path, required=True, help="output .npz, or a folder for mp4 clips")
    ap.add_argument("--clips", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--pool-size", type=int, default=144, help="short side of decoded footage")
    ap.add_argument("--max-footage", type=int, default=None, help="use only the first N videos")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--weights", type=_parse_weights, default=None,
                    help="kind mix, e.g. replay=0.37,local=0.45,negative=0.18")
    args = ap.parse_args(argv)
    config = SynthConfig(weights=args.weights) if args.weights else SynthConfig()
    t0 = time.perf_counter()
    pool = FootagePool.load(args.footage, args.pool_size, args.max_footage)
    t1 = time.perf_counter()
    print(f"footage: {len(pool)} clips, {pool.nbytes / 1e9:.2f} GB, {t1 - t0:.1f} s")
    clips = generate(pool, args.clips, args.seed, args.frames, args.size, config, args.workers)
    clips = tqdm(clips, total=args.clips, desc="clips")
    if args.out.suffix == ".npz":
        write_dataset(args.out, clips, args.clips, args.frames, args.size)
    else:
        write_videos(args.out, clips)
    dt = time.perf_counter() - t1
    print(f"wrote {args.out}: {args.clips} clips in {dt:.1f} s ({args.clips / dt:.1f} clips/s)")


if __name__ == "__main__":
    main()

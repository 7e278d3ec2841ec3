"""Scoring on a folder in the QUVA layout: videos/NAME.*, annotations/NAME.npy
(one entry per repetition). MAE and off-by-one error as in RepNet (CVPR 2020)."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgecount.counter import Counter
from edgecount.errors import EdgecountError

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


@dataclass
class VideoScore:
    name: str
    truth: int
    predicted: float
    frames: int
    seconds: float

    @property
    def error(self) -> int:
        return abs(round(self.predicted) - self.truth)


@dataclass
class Scores:
    """Per-video results and the summary metrics."""

    videos: list[VideoScore]

    @property
    def mae(self) -> float:
        return float(np.mean([v.error / v.truth for v in self.videos]))

    @property
    def obo_error(self) -> float:
        return float(np.mean([v.error > 1 for v in self.videos]))

    @property
    def frames_per_second(self) -> float:
        return sum(v.frames for v in self.videos) / max(sum(v.seconds for v in self.videos), 1e-9)

    def to_dict(self) -> dict:
        return {
            "mae": round(self.mae, 4), "obo_error": round(self.obo_error, 4),
            "frames_per_second": round(self.frames_per_second, 1), "videos": len(self.videos),
            "per_video": [asdict(v) | {"error": v.error} for v in self.videos],
        }

    def table(self) -> str:
        rows = [f"{'video':<28} {'truth':>5} {'pred':>7} {'err':>4} {'frames':>6} {'fps':>6}"]
        for v in self.videos:
            rows.append(f"{v.name:<28} {v.truth:>5} {v.predicted:>7.2f} {v.error:>4} {v.frames:>6} "
                        f"{v.frames / max(v.seconds, 1e-9):>6.0f}")
        rows.append(f"MAE {self.mae:.3f}   OBO error {self.obo_error:.3f}   "
                    f"{self.frames_per_second:.0f} frames/s over {len(self.videos)} videos")
        return "\n".join(rows)


def dataset(folder: Path) -> Iterator[tuple[Path, int]]:
    """(video, true count) pairs of a QUVA-layout folder."""
    videos, annotations = folder / "videos", folder / "annotations"
    if not videos.is_dir() or not annotations.is_dir():
        raise EdgecountError(f"{folder} is not in the QUVA layout (videos/ and annotations/ expected)")
    pairs = []
    for video in sorted(p for p in videos.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES):
        ann = annotations / f"{video.stem}.npy"
        if ann.is_file():
            try:
                truth = len(np.load(ann))
            except (ValueError, OSError):
                raise EdgecountError(f"{ann} is not a readable annotation file") from None
            if truth > 0:
                pairs.append((video, truth))
    if not pairs:
        raise EdgecountError(f"{folder}: no video with an annotation found")
    yield from pairs


def evaluate(counter: Counter, folder: Path, progress: bool = False) -> Scores:
    """Count every annotated video of ``folder``."""
    from tqdm import tqdm

    pairs = list(dataset(folder))
    scores = []
    for video, truth in tqdm(pairs, desc="videos", disable=not progress, leave=False):
        result = counter.count(video, progress=False)
        scores.append(VideoScore(video.stem, truth, result.count, result.result.frames, result.seconds))
    return Scores(scores)

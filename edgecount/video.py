"""Video input: open and check a file, then stream its frames one at a time."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgecount.errors import EdgecountError


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video (``frames`` may be an estimate)."""

    path: Path
    fps: float
    frames: int
    width: int
    height: int


def open_video(path: Path | str) -> tuple[cv2.VideoCapture, VideoInfo]:
    """Open ``path`` for streaming; every problem a user can cause is an EdgecountError."""
    path = Path(path)
    if not path.exists():
        raise EdgecountError(f"{path}: no such file")
    if path.is_dir():
        raise EdgecountError(f"{path} is a directory, not a video")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise EdgecountError(f"{path} is not a readable video")
    info = VideoInfo(
        path=path,
        fps=float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
        frames=max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0),
        width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    )
    if info.width <= 0 or info.height <= 0:
        cap.release()
        raise EdgecountError(f"{path} is not a readable video (no picture)")
    if not np.isfinite(info.fps) or info.fps < 1 or info.fps > 1000:
        cap.release()
        raise EdgecountError(f"{path}: the video header gives no usable frame rate (fps {info.fps:g})")
    return cap, info


def to_model_frame(bgr: np.ndarray, size: int) -> np.ndarray:
    """A decoded BGR frame -> the model's square RGB uint8 input (whole frame, resized)."""
    small = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2RGB)


def read_frames(cap: cv2.VideoCapture) -> Iterator[np.ndarray]:
    """Decoded BGR frames until the stream ends."""
    while True:
        ok, frame = cap.read()
        if not ok or frame is None:
            return
        yield frame

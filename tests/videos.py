"""Small videos written by the tests themselves."""
from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np


def write_video(path: Path, frames: list[np.ndarray] | np.ndarray, fps: float = 30.0,
                codec: str = "mp4v") -> Path:
    """Write BGR frames (``codec`` FFV1 into .avi is lossless)."""
    h, w = frames[0].shape[:2] if len(frames) else (48, 64)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def moving_square(n: int, period: float, size: tuple[int, int] = (120, 160)) -> np.ndarray:
    """A bright square bouncing left-right with the given period (frames), on a textured background."""
    h, w = size
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (9, 9), 0)
    frames = np.repeat(background[None], n, axis=0)
    side = h // 4
    for i in range(n):
        x = int((w - side) * (0.5 - 0.5 * np.cos(2 * np.pi * i / period)))
        frames[i, h // 2 - side // 2:h // 2 + side // 2, x:x + side] = (40, 220, 250)
    return frames


def zero_fps_video(path: Path) -> Path:
    """An mp4 whose media header declares a time scale of 0 (no frame rate)."""
    write_video(path, moving_square(20, 8))
    data = bytearray(path.read_bytes())
    mdhd = data.find(b"mdhd")
    data[mdhd + 16:mdhd + 20] = struct.pack(">I", 0)  # version/flags, ctime, mtime, then timescale
    path.write_bytes(bytes(data))
    return path

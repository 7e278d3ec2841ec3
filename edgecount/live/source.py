"""Frame sources of the live path: a camera, a video file, a stream URL, or any
iterable of BGR frames (synthetic sources, tests)."""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from edgecount.errors import EdgecountError
from edgecount.video import open_video


@runtime_checkable
class FrameSource(Protocol):
    """Where live frames come from.

    ``paced`` sources (camera, stream) deliver frames at their own rate and are
    never made to wait; the others (a file, an iterable) are read as fast as the
    consumer takes them. ``read`` returns None when no frame came: the end of a
    file, or a camera or stream that failed or stalled, which ``reopen`` may fix.
    """

    name: str
    fps: float | None  # the source's own frame rate, None if unknown
    paced: bool

    def read(self) -> np.ndarray | None: ...

    def reopen(self) -> bool: ...

    def close(self) -> None: ...


def _quiet_opencv() -> None:
    """Keep OpenCV's and FFmpeg's own messages off stderr: failures become one EdgecountError line."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET, read when FFmpeg starts
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


class StreamSource:
    """A camera by index or a URL (rtsp://, http://, ...). Cameras and live streams
    are paced and reconnected after a failure; a URL with a known length is a
    remote file, read once at the consumer's pace like a local one."""

    def __init__(self, target: int | str, stall_timeout_s: float = 5.0):
        self.target = target
        self.stall_timeout_s = stall_timeout_s
        self.name = f"camera {target}" if isinstance(target, int) else _without_password(target)
        self.cap = self._open()
        if self.cap is None:
            what = "is not available (no such camera, or it is busy)" if isinstance(target, int) \
                else "cannot be opened (unreachable, or not a video stream)"
            raise EdgecountError(f"{self.name} {what}")
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 1 <= fps <= 1000 else None
        self.paced = isinstance(target, int) or not self.cap.get(cv2.CAP_PROP_FRAME_COUNT) > 0

    def _open(self) -> cv2.VideoCapture | None:
        if isinstance(self.target, int):
            cap = cv2.VideoCapture(self.target)
        else:  # a stalled stream fails a read after the timeout instead of blocking forever
            ms = int(self.stall_timeout_s * 1000)
            cap = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG,
                                   [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        if cap.isOpened():
            return cap
        cap.release()
        return None

    def read(self) -> np.ndarray | None:
        ok, frame = self.cap.read() if self.cap is not None else (False, None)
        return frame if ok else None

    def reopen(self) -> bool:
        if not self.paced:
            return False
        self.close()
        self.cap = self._open()
        return self.cap is not None

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()


class FileSource:
    """A video file, read once to its end."""

    def __init__(self, path: Path):
        self.cap, info = open_video(path)
        self.name = str(path)
        self.fps: float | None = info.fps
        self.paced = False

    def read(self) -> np.ndarray | None:
        ok, frame = self.cap.read()
        return frame if ok else None

    def reopen(self) -> bool:
        return False

    def close(self) -> None:
        self.cap.release()


class IterableSource:
    """BGR frames from any iterable, e.g. a generator of synthetic frames."""

    def __init__(self, frames: Iterable[np.ndarray], fps: float | None = None, paced: bool = False,
                 name: str = "frames"):
        self.frames: Iterator[np.ndarray] = iter(frames)
        self.fps, self.paced, self.name = fps, paced, name

    def read(self) -> np.ndarray | None:
        return next(self.frames, None)

    def reopen(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _without_password(url: str) -> str:
    """``url`` fit to print: a password in it is masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def open_source(spec: str | int | Path | FrameSource, stall_timeout_s: float = 5.0) -> FrameSource:
    """A camera index (int or digits), a stream URL (with ``://``) or a video file path."""
    if isinstance(spec, FrameSource):
        return spec
    _quiet_opencv()
    text = str(spec)
    if isinstance(spec, int) or text.isdigit():
        return StreamSource(int(text))
    if "://" in text:
        return StreamSource(text, stall_timeout_s)
    return FileSource(Path(text))

"""The capture thread: a source's frames, as model input, into the frame ring."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgecount._core import RingBuffer
from edgecount.live.flow import Room
from edgecount.live.source import FrameSource
from edgecount.video import to_model_frame


@dataclass
class Reconnect:
    """What to do when a camera or stream stops delivering frames."""

    attempts: int = 3
    delay_s: float = 0.5  # doubled after each failed attempt


class Capture:
    """Reads ``source`` into ``ring`` (frame_size x frame_size RGB uint8), stamping
    each frame's arrival (``time.perf_counter``) in ``arrivals[index % len]``.

    Paced sources and ``realtime`` files never wait: when inference falls
    behind, the ring overwrites the oldest frame and counts it dropped. Other
    sources wait for room (``room``), so no frame is lost. The ring is closed
    when the source ends, is lost, or ``stop`` is set.
    """

    def __init__(self, source: FrameSource, ring: RingBuffer, arrivals: np.ndarray, room: Room,
                 stop: threading.Event, frame_size: int, realtime: bool = False,
                 reconnect: Reconnect | None = None, warn: Callable[[str], None] = lambda _: None,
                 keep_latest: bool = False):
        self.source, self.ring, self.arrivals, self.room, self.stop = source, ring, arrivals, room, stop
        self.frame_size = frame_size
        self.pace_fps = source.fps if realtime and not source.paced else None
        self.blocking = not source.paced and not realtime
        self.reconnect = reconnect or Reconnect()
        self.warn = warn
        self.keep_latest = keep_latest
        self.latest: np.ndarray | None = None  # the newest decoded BGR frame, for display
        self.lost: str | None = None  # why the source was given up, if it was
        self.first_arrival: float | None = None

    def run(self) -> None:
        """Thread body: read until the source ends or ``stop`` is set."""
        try:
            read = 0
            while not self.stop.is_set():
                frame = self.source.read()
                if frame is None:
                    frame = self._recover()
                    if frame is None:
                        break
                if self.pace_fps:
                    self._pace(read)
                if self.blocking and not self.room.wait(self.stop):
                    break
                self._commit(frame)
                read += 1
        finally:
            self.ring.close()
            self.source.close()

    def _commit(self, frame: np.ndarray) -> None:
        np.copyto(self.ring.claim(), to_model_frame(frame, self.frame_size))
        now = time.perf_counter()
        self.arrivals[self.ring.written % len(self.arrivals)] = now
        if self.first_arrival is None:
            self.first_arrival = now
        self.ring.commit()
        if self.keep_latest:
            self.latest = frame

    def _pace(self, read: int) -> None:
        """Sleep until frame ``read`` is due at the file's own rate."""
        if self.first_arrival is None:
            return
        delay = self.first_arrival + read / self.pace_fps - time.perf_counter()
        if delay > 0:
            self.stop.wait(delay)

    def _recover(self) -> np.ndarray | None:
        """After a failed read of a paced source: warn and reconnect; the count goes
        on from the first frame after it. None if the source is given up."""
        if not self.source.paced or self.stop.is_set():
            return None
        delay = self.reconnect.delay_s
        for attempt in range(1, self.reconnect.attempts + 1):
            self.warn(f"{self.source.name}: no frame (stalled or ended); reconnecting, "
                      f"attempt {attempt} of {self.reconnect.attempts}")
            if self.stop.wait(delay):
                return None
            frame = self.source.read() if self.source.reopen() else None
            if frame is not None:
                self.warn(f"{self.source.name}: reconnected; the count goes on")
                return frame
            delay *= 2
        tried = f"{self.reconnect.attempts} reconnect attempts failed" if self.reconnect.attempts \
            else "reconnecting is off"
        self.lost = f"{self.source.name} stopped delivering frames ({tried})"
        return None

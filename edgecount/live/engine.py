"""The two inference stages of the live path, one thread each.

EncoderStage: each new frame of the frame ring is encoded once, in small
batches, and its embedding pushed into the embedding ring. CountingStage: new
embeddings go to a StreamCounter (the windows and combine of ``edgecount
count``) and the running count is re-estimated every ``update_every`` frames.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgecount._core import RingBuffer
from edgecount.counting import Estimate, StreamCounter
from edgecount.live.flow import Room
from edgecount.runtime.model import RepetitionModel

WAIT_S = 0.1  # waits for new frames wake this often to notice a stop request


@dataclass
class Stamped:
    """A ring and the arrival time (``time.perf_counter``) of each of its frames."""

    ring: RingBuffer
    arrivals: np.ndarray  # frame i's arrival at [i % len]
    room: Room

    @classmethod
    def create(cls, capacity: int, shape: tuple[int, ...], dtype: str) -> Stamped:
        ring = RingBuffer(capacity, shape, dtype)
        return cls(ring, np.zeros(capacity + 1), Room(ring))

    def times(self, first: int, last: int) -> np.ndarray:
        return self.arrivals[np.arange(first, last + 1) % len(self.arrivals)]


def _next_batch(src: Stamped, index: int) -> int | None:
    """Wait until frame ``index`` is committed; the ring's latest index, or None
    when the ring is closed and holds no frame from ``index`` on."""
    while not src.ring.wait_for(index, WAIT_S):
        if src.ring.closed:
            return None
    return src.ring.latest_index


class EncoderStage:
    """Frame ring -> encoder -> embedding ring. Frames the capture overwrote
    before they were encoded are skipped (the frame ring counts them dropped)."""

    def __init__(self, model: RepetitionModel, frames: Stamped, embeddings: Stamped,
                 stop: threading.Event, batch: int):
        self.model, self.frames, self.embeddings, self.stop, self.batch = model, frames, embeddings, stop, batch

    def run(self) -> None:
        """Thread body: until the frame ring is closed and drained, or ``stop``."""
        ring = self.frames.ring
        index = 0
        try:
            while not self.stop.is_set():
                latest = _next_batch(self.frames, index)
                if latest is None:
                    break
                index = max(index, latest - ring.capacity + 1)  # older ones were overwritten
                end = min(latest, index + self.batch - 1)
                try:
                    frames = ring.window_at(end, end - index + 1)
                except IndexError:  # overwritten meanwhile: start again from the oldest
                    continue
                times = self.frames.times(index, end)
                features = self.model.encode(frames)
                intact = self._first_intact(index, end)
                self.frames.room.consume(end)
                self._push(features[intact - index:], times[intact - index:])
                index = end + 1
        finally:
            self.embeddings.ring.close()

    def _first_intact(self, first: int, last: int) -> int:
        """The first of frames first..last not overwritten while they were encoded."""
        ring = self.frames.ring
        start = first
        while start <= last and not ring.is_valid(start):
            start = max(start + 1, ring.written - ring.capacity)
        return start

    def _push(self, features: np.ndarray, times: np.ndarray) -> None:
        out = self.embeddings
        for feature, t in zip(features, times):
            if not out.room.wait(self.stop):
                return
            out.arrivals[out.ring.written % len(out.arrivals)] = t
            out.ring.push(feature)


@dataclass
class LiveUpdate:
    """One re-estimate of the running count (``estimate.count``; ``estimate.period``
    and ``estimate.periodicity`` are the latest frame's)."""

    estimate: Estimate
    latencies: np.ndarray  # seconds from arrival to this update, of the frames new in it
    final: bool


class CountingStage:
    """Embedding ring -> StreamCounter; publishes a ``LiveUpdate`` through ``publish``
    every ``update_every`` frames (or more, when it falls behind) and at the end."""

    def __init__(self, counter: StreamCounter, embeddings: Stamped, update_every: int,
                 publish: Callable[[LiveUpdate], None]):
        self.counter, self.embeddings, self.update_every, self.publish = counter, embeddings, update_every, publish

    def run(self) -> None:
        """Thread body: until the embedding ring is closed and drained."""
        ring = self.embeddings.ring
        index, waiting = 0, []
        while (latest := _next_batch(self.embeddings, index)) is not None:
            features = np.array(ring.window_at(latest, latest - index + 1))  # the counter keeps rows
            waiting.append(self.embeddings.times(index, latest))
            self.embeddings.room.consume(latest)
            self.counter.add(features)
            index = latest + 1
            if sum(map(len, waiting)) >= self.update_every:
                self._update(self.counter.running(), waiting, final=False)
                waiting = []
        self._update(self.counter.final(), waiting, final=True)

    def _update(self, estimate: Estimate, waiting: list[np.ndarray], final: bool) -> None:
        arrivals = np.concatenate(waiting) if waiting else np.zeros(0)
        self.publish(LiveUpdate(estimate, time.perf_counter() - arrivals, final))

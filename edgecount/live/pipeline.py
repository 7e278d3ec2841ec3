"""``LiveCounter``: capture, encoder and counting threads around two ring buffers.

    capture --frame ring--> encoder --embedding ring--> counting --> running count

None of the threads waits on another except where frames must not be lost:
reading a file as fast as possible waits for the encoder, and the encoder waits
for the counting stage. The caller's thread shows the video, or just waits.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from edgecount.counting import CountingConfig, StreamCounter
from edgecount.errors import EdgecountError
from edgecount.live.capture import Capture, Reconnect
from edgecount.live.engine import CountingStage, EncoderStage, LiveUpdate, Stamped
from edgecount.live.source import FrameSource, open_source
from edgecount.live.stats import LatencyHistogram
from edgecount.runtime.model import RepetitionModel

STAGE_THREADS = 1  # the encoder and counting stages run side by side, one core each
JOIN_S = 2.0  # a capture thread stuck in a blocking read is left behind (daemon) after this


@dataclass
class LiveConfig:
    """Settings of the live path."""

    update_every: int = 1  # re-estimate the running count at least every this many frames
    encode_batch: int = 8  # most frames per encoder call (fewer when frames arrive one by one)
    frame_capacity: int = 64  # frames the frame ring holds (2 s at 30 fps)
    embedding_capacity: int = 256
    realtime: bool = False  # read a file at its own frame rate
    stall_timeout_s: float = 5.0  # a stream read that waits longer fails (then: reconnect)
    reconnect: Reconnect = field(default_factory=Reconnect)
    counting: CountingConfig = field(default_factory=CountingConfig)


@dataclass
class LiveSummary:
    """How a live run went."""

    count: float
    frames: int  # frames counted
    dropped: int  # frames overwritten before they were encoded
    seconds: float  # from the first frame's arrival to the final count
    latency_s: dict[str, float | None]  # p50, p95, p99 of arrival -> count update
    stride: int
    source: str
    model: str
    ended: str  # "end" of the source, "interrupted" (Ctrl-C), "stopped" (stop() or window closed), "lost"
    lost: str | None = None  # why the source was given up
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU time of each stage's thread

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {
            "count": round(self.count, 3), "frames": self.frames, "dropped": self.dropped,
            "fps": round(self.fps, 1), "seconds": round(self.seconds, 3),
            "latency_ms": {k: None if v is None else round(v * 1000, 2) for k, v in self.latency_s.items()},
            "stride": self.stride, "source": self.source, "model": self.model, "ended": self.ended,
            "cpu_ms_per_frame": {k: round(v * 1000 / max(self.frames, 1), 3) for k, v in self.cpu_s.items()},
        }


class Display(Protocol):
    """Shows the video with the running count, on the caller's thread."""

    def show(self, frame: np.ndarray | None, update: LiveUpdate | None, fps: float | None) -> bool:
        """Draw the newest frame; False when the user closed the window."""
        ...

    def close(self) -> None: ...


class LiveCounter:
    """Counts repetitions live: ``run(source)`` until the source ends or Ctrl-C.

    ``model`` is a RepetitionModel or a model directory (the shipped model by
    default), opened with ``threads`` per inference stage. ``on_update`` is called
    on the counting thread with every ``LiveUpdate``; ``latest`` holds the newest.
    """

    def __init__(self, model: RepetitionModel | Path | str | None = None, config: LiveConfig | None = None,
                 threads: int | None = None):
        self.model = model if isinstance(model, RepetitionModel) else \
            RepetitionModel(model, threads=threads or STAGE_THREADS)
        self.config = config or LiveConfig()
        self.feature_shape = _check_model(self.model)
        self.latest: LiveUpdate | None = None
        self._stop = threading.Event()

    def stop(self) -> None:
        """End the run from any thread; the count so far becomes final."""
        self._stop.set()

    def run(self, source: str | int | Path | FrameSource,
            on_update: Callable[[LiveUpdate], None] | None = None, display: Display | None = None,
            warn: Callable[[str], None] = lambda _: None) -> LiveSummary:
        """Count ``source`` (see ``open_source``); returns when it ends, is lost,
        ``stop()`` is called, the window is closed or Ctrl-C is pressed."""
        cfg, model = self.config, self.model
        source = open_source(source, cfg.stall_timeout_s)
        stop = self._stop = threading.Event()
        frames = Stamped.create(cfg.frame_capacity, (model.frame_size, model.frame_size, 3), "uint8")
        embeddings = Stamped.create(cfg.embedding_capacity, self.feature_shape, "float32")
        latency = LatencyHistogram()
        self.latest = None
        published_at = [0.0]

        def publish(update: LiveUpdate) -> None:
            latency.add(update.latencies)
            self.latest = update
            published_at[0] = time.perf_counter()
            if on_update:
                on_update(update)

        capture = Capture(source, frames.ring, frames.arrivals, frames.room, stop, model.frame_size,
                          cfg.realtime, cfg.reconnect, warn, keep_latest=display is not None)
        encoder = EncoderStage(model, frames, embeddings, stop, cfg.encode_batch)
        counter = StreamCounter(model.window, model.periods(), model.num_frames, cfg.counting, keep_frames=False)
        counting = CountingStage(counter, embeddings, cfg.update_every, publish)
        errors: list[BaseException] = []
        cpu: dict[str, float] = {}
        counted = threading.Event()  # the counting thread is done (Thread.join is not safe to interrupt)
        threads = [threading.Thread(target=_guarded(name, stage.run, errors, stop, cpu, done),
                                    name=f"edgecount-{name}", daemon=True)
                   for name, stage, done in (("capture", capture, None), ("encoder", encoder, None),
                                             ("counting", counting, counted))]
        for t in threads:
            t.start()
        ended = "end"
        try:
            while not counted.is_set():
                if display is None:
                    counted.wait(0.1)
                elif not display.show(capture.latest, self.latest, source.fps):
                    stop.set()
            if stop.is_set() and not errors:
                ended = "stopped"
        except KeyboardInterrupt:
            stop.set()
            ended = "interrupted"
        finally:
            stop.set()
            threads[2].join()
            threads[1].join()
            threads[0].join(JOIN_S)
            if display is not None:
                display.close()
        if errors:
            raise errors[0]
        final = self.latest
        if capture.lost:
            ended = "lost"
        seconds = published_at[0] - capture.first_arrival if capture.first_arrival else 0.0
        return LiveSummary(final.estimate.count, final.estimate.frames, frames.ring.dropped, seconds,
                           {f"p{q}": latency.percentile(q) for q in (50, 95, 99)}, final.estimate.stride,
                           source.name, model.name, ended, capture.lost, cpu)


def _guarded(name: str, body: Callable[[], None], errors: list[BaseException], stop: threading.Event,
             cpu: dict[str, float], done: threading.Event | None) -> Callable[[], None]:
    """A thread body that records its exception (and stops the other threads), its
    CPU time in ``cpu[name]``, and sets ``done`` at its end."""

    def run() -> None:
        start = time.thread_time()
        try:
            body()
        except BaseException as exc:  # re-raised on the caller's thread
            errors.append(exc)
            stop.set()
        finally:
            cpu[name] = time.thread_time() - start
            if done is not None:
                done.set()

    return run


def _check_model(model: RepetitionModel) -> tuple[int, ...]:
    """Run the encoder and the head once (warm-up); the embedding shape, checked
    against the manifest. A model that does not run is an EdgecountError."""
    size = model.frame_size
    try:
        features = model.encode(np.zeros((1, size, size, 3), np.uint8))
        model.window(np.zeros((1, model.num_frames, *features.shape[1:]), np.float32))
    except EdgecountError:
        raise
    except Exception as exc:  # the runtimes raise their own error types
        raise EdgecountError(f"{model.folder}: the model does not run ({str(exc).splitlines()[0]})") from None
    shape = tuple(features.shape[1:])
    if list(shape) != list(model.manifest.feature_shape):
        raise EdgecountError(f"{model.folder}: the encoder gives features of shape {shape}, "
                             f"the manifest says {tuple(model.manifest.feature_shape)}")
    return shape

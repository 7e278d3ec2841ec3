"""The live path, per frame and sustained.

Per frame (one stage thread each, as ``edgecount live`` runs them, ``--threads 1``):

* ``encoder``: one frame through the encoder (the live encoder batches up to 8 frames
  when it falls behind; one frame is what it does when it keeps up);
* ``head``: one new embedding into the ``StreamCounter`` and the running count
  re-estimated (the head on the tail windows of the strides that sampled the frame,
  full windows every 32 sampled frames) - 24 frames, one cycle of the strides
  1, 2, 3, 4, 6, 8, after 256 frames so that every stride counts;
* ``end_to_end``: a decoded frame written into the C++ frame ring, read back, encoded,
  its embedding pushed through the embedding ring, counted, the count updated - the
  two stages back to back on one thread.

Sustained (``frames_per_s``): a ``LiveCounter`` run over a synthetic clip read as fast
as the pipeline takes it, with 1 and 2 threads per inference stage; and
``latency_30fps``: frames arriving at 30 frames/s, arrival -> count update percentiles.

The faithful RepNet is run here in its fastest variant only (and its PyTorch baseline
for the encoder; ``--bench-live-all`` for every variant): its head, 45 GMAC per window
and about 2.4 windows per frame, makes live counting with it impractical, which is
what these numbers show.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from benchmarks.lib import SMOKE_LIVE, moving_square, warm_up

pytest.importorskip("edgecount._core", reason="the C++ ring buffer is not built")
live = pytest.importorskip("edgecount.live", reason="edgecount.live is not there")

from edgecount._core import RingBuffer  # noqa: E402
from edgecount.counting import CountingConfig, StreamCounter  # noqa: E402
from edgecount.video import to_model_frame  # noqa: E402

SMOKE = SMOKE_LIVE
LIVE_THREADS = 1  # edgecount live's default per stage
PREFILL = 256  # frames before the per-frame head timing: stride 8 has sampled 32 frames
CYCLE = 24  # lcm of the strides: the per-frame cost repeats with this period
ENCODER_ROUNDS = 48
REPNET_LIVE = {"openvino-int8"}
REPNET_ENCODER = {"torch-fp32", "openvino-int8"}
PACED_FPS = 30.0
PACED_FRAMES = 240  # 8 s at 30 frames/s
PACED = {"default": {"torch-fp32", "onnx-fp32", "openvino-int8"}}


def params_filter(config, function: str, model: str, variant: str) -> bool:
    """Which (model, variant) each test of this module is generated for (see conftest)."""
    if function == "test_latency_30fps":
        return variant in PACED.get(model, ())
    if model == "repnet" and not config.getoption("--bench-live-all"):
        return variant in (REPNET_ENCODER if function == "test_encoder_frame" else REPNET_LIVE)
    return True


def clip_frames(n: int) -> np.ndarray:
    """BGR 160x120 frames of a square bouncing with a period of 12 frames."""
    return moving_square(n, 12)


def counter_for(runner) -> StreamCounter:
    return StreamCounter(runner.window, runner.periods(), runner.num_frames, CountingConfig(), keep_frames=False)


def _warm(benchmark, bench, variant, fn) -> dict:
    """Seconds of warm-up for torch (slow first seconds in a process), a few calls otherwise
    (the runtimes were opened and warmed by earlier benchmarks of the session)."""
    if benchmark.disabled:
        return {}
    return warm_up(fn, bench.warmup(variant) / 2 if variant.endswith("torch-fp32") else 0.0)


def test_encoder_frame(benchmark, recorder, factory, bench, built, model, variant):
    runner = factory.open(model, variant, LIVE_THREADS)
    frames = itertools.cycle([to_model_frame(f, runner.frame_size)[None] for f in clip_frames(CYCLE)])
    warm = _warm(benchmark, bench, variant, lambda: runner.encode(next(frames)))
    benchmark.group = f"live encoder per frame {model}"
    out = benchmark.pedantic(lambda: runner.encode(next(frames)), rounds=ENCODER_ROUNDS, iterations=1)
    assert len(out) == 1
    recorder("live_encoder", model, variant, threads=LIVE_THREADS, **warm)


def test_head_update(benchmark, recorder, factory, bench, built, model, variant):
    runner = factory.open(model, variant, LIVE_THREADS)
    features = runner.encode(np.stack([to_model_frame(f, runner.frame_size) for f in clip_frames(PREFILL + CYCLE)]))
    counter = counter_for(runner)
    warm = _warm(benchmark, bench, variant, lambda: runner.window(features[None, :runner.num_frames]))
    counter.add(features[:PREFILL])  # every stride counts from here on
    counter.running()
    rows = iter(range(PREFILL, PREFILL + CYCLE))

    def update():
        i = next(rows)
        counter.add(features[i:i + 1])
        return counter.running()

    benchmark.group = f"live head update per frame {model}"
    estimate = benchmark.pedantic(update, rounds=1 if benchmark.disabled else CYCLE, iterations=1)
    assert estimate.frames > PREFILL
    recorder("live_head", model, variant, threads=LIVE_THREADS, prefill_frames=PREFILL, **warm)


def test_end_to_end_frame(benchmark, recorder, factory, bench, built, model, variant):
    """Ring buffer in -> count updated, the live path's work for one frame on one thread."""
    runner = factory.open(model, variant, LIVE_THREADS)
    size = runner.frame_size
    frame_ring = RingBuffer(64, (size, size, 3), "uint8")
    embedding_ring = RingBuffer(256, tuple(runner.manifest.feature_shape), "float32")
    counter = counter_for(runner)
    source = itertools.cycle(clip_frames(CYCLE * 4))

    def frame():
        np.copyto(frame_ring.claim(), to_model_frame(next(source), size))  # the capture thread's commit
        i = frame_ring.commit()
        features = runner.encode(frame_ring.window_at(i, 1))  # the encoder stage
        frame_ring.consume(i)
        j = embedding_ring.push(features[0])
        counter.add(np.array(embedding_ring.window_at(j, 1)))  # the counting stage
        embedding_ring.consume(j)
        return counter.running()

    warm = _warm(benchmark, bench, variant, lambda: runner.window(np.zeros(
        (1, runner.num_frames, *runner.manifest.feature_shape), np.float32)))
    prefill = clip_frames(PREFILL)
    counter.add(runner.encode(np.stack([to_model_frame(f, size) for f in prefill])))  # every stride counts
    counter.running()
    for _ in range(4):  # the rings in use, the tail windows current
        frame()
    benchmark.group = f"live end-to-end per frame {model}"
    estimate = benchmark.pedantic(frame, rounds=1 if benchmark.disabled else CYCLE, iterations=1)
    assert estimate.frames > 0
    recorder("live_end_to_end", model, variant, threads=LIVE_THREADS, prefill_frames=PREFILL, **warm)


@pytest.mark.parametrize("threads", [1, 2])
def test_frames_per_s(benchmark, recorder, factory, bench, built, model, variant, threads):
    """A sustained LiveCounter run: frames/s = frames / (first arrival -> final count)."""
    runner = factory.open(model, variant, threads)
    n = 96 if benchmark.disabled else bench.live_frames
    frames = clip_frames(n)
    warm = _warm(benchmark, bench, variant, lambda: runner.encode(np.zeros(
        (8, runner.frame_size, runner.frame_size, 3), np.uint8)))
    counter = live.LiveCounter(runner, live.LiveConfig(update_every=1))
    updates = []
    benchmark.group = f"live run {model}"
    summary = benchmark.pedantic(lambda: counter.run(live.IterableSource(iter(frames)), on_update=updates.append),
                                 rounds=1, iterations=1)
    assert summary.frames == n and summary.ended == "end"
    recorder("live_fps", model, variant, threads=threads, frames=summary.frames, dropped=summary.dropped,
             frames_per_s=round(summary.fps, 2), seconds=round(summary.seconds, 3), count_updates=len(updates),
             latency_ms=_ms(summary.latency_s), **warm)


def _ms(latency_s: dict) -> dict:
    return {k: None if v is None else round(v * 1000, 2) for k, v in latency_s.items()}


def test_latency_30fps(benchmark, recorder, factory, bench, built, model, variant):
    """Frames arriving at 30 frames/s (a camera): arrival -> count update, per frame."""
    runner = factory.open(model, variant, LIVE_THREADS)
    n = 60 if benchmark.disabled else PACED_FRAMES
    frames = clip_frames(n)
    warm = _warm(benchmark, bench, variant, lambda: runner.encode(np.zeros(
        (1, runner.frame_size, runner.frame_size, 3), np.uint8)))
    # realtime: the capture reads at the source's frame rate and never waits (as from a camera)
    counter = live.LiveCounter(runner, live.LiveConfig(update_every=1, realtime=True))
    benchmark.group = f"live 30 fps {model}"
    summary = benchmark.pedantic(lambda: counter.run(live.IterableSource(iter(frames), fps=PACED_FPS)),
                                 rounds=1, iterations=1)
    assert summary.ended == "end"
    recorder("live_latency", model, variant, threads=LIVE_THREADS, source_fps=PACED_FPS, frames=summary.frames,
             dropped=summary.dropped, frames_per_s=round(summary.fps, 2),
             latency_ms=_ms(summary.latency_s), **warm)

"""One 64-frame window (encode its 64 frames, then the head), for the faithful RepNet
and the default model, in every backend and precision ``edgecount convert`` makes.

The PyTorch fp32 run of each model comes first and is the in-run baseline; each
result's ``extra_info`` holds its speed-up against it, against the faithful RepNet's
PyTorch fp32 run, and against the fixed 0.98 s reference (``speedup_*``: > 1 is
faster). The input is the first 64 frames of the shipped sample clip.
"""
from __future__ import annotations

from benchmarks.lib import CONVERT_ARGS, SMOKE_WINDOW, loadavg, sample_frames, warm_up

SMOKE = SMOKE_WINDOW


def test_window(benchmark, recorder, factory, bench, built, model, variant):
    runner = factory.open(model, variant, bench.threads, cache=False)  # released after the test
    frames = sample_frames(runner.num_frames, runner.frame_size)

    def window():
        return runner.window(runner.encode(frames)[None])

    load_before = loadavg()
    warm = {} if benchmark.disabled else warm_up(window, bench.warmup(variant))
    benchmark.group = f"window {model}"
    out = benchmark.pedantic(window, rounds=bench.rounds, iterations=1)
    assert out.periodicity.shape == (1, runner.num_frames)  # it ran; never a timing assertion
    recorder("window", model, variant, frames=runner.num_frames, threads=bench.threads,
             precision_hint=built.hint, weights=built.weights, size_bytes=built.size_bytes,
             parameters=built.parameters, convert=CONVERT_ARGS[variant], loadavg_before=load_before, **warm)

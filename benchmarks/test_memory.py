"""Peak resident memory (RSS) of counting a long video (``edgecount count``) and of a
live run (``edgecount live --headless``), each in a fresh process, measured by its
parent with ``getrusage(RUSAGE_CHILDREN)``.

A short and a long video of the same content: what the model and the runtimes take,
and whether memory grows with the length of the video (it should not: the counting
keeps O(window) state). The model is the shipped default model directory when it
exists, else the default model exported to ONNX fp32 (the shipped format).
The timing of these benchmarks is the wall time of the whole command.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.lib import ROOT, write_long_video

SHORT_S = 20.0
MEASURE = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE); "
           "sys.stdout.write(r.stdout.decode()); "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")


def peak_rss(args: list[str]) -> tuple[float, str]:
    """Run ``python -m edgecount ARGS`` in a fresh grandchild; its peak RSS in MB and its stdout."""
    cmd = [sys.executable, "-c", MEASURE, sys.executable, "-m", "edgecount", *args]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    if out.returncode != 0:
        raise AssertionError(f"edgecount {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    *lines, kb = out.stdout.strip().splitlines()
    return int(kb) / 1024, "\n".join(lines)  # ru_maxrss is in KiB on Linux


@pytest.fixture(scope="session")
def model_dir(factory) -> tuple[Path, str]:
    from edgecount.runtime.manifest import Manifest
    from edgecount.runtime.model import default_model_dir

    shipped = default_model_dir()
    try:
        Manifest.load(shipped)
        return shipped, "shipped default"
    except Exception:  # noqa: BLE001 - absent or being re-trained
        built = factory.get("default", "onnx-fp32")
        return built.folder, "default onnx-fp32" + (" (untrained head)" if "untrained" in built.weights else "")


@pytest.fixture(scope="session")
def videos(tmp_path_factory, pytestconfig) -> dict:
    folder = tmp_path_factory.mktemp("videos")
    disabled = pytestconfig.getoption("benchmark_disable")
    long_s = SHORT_S if disabled else pytestconfig.getoption("--bench-video-seconds")
    return {"short": write_long_video(folder / "short.mp4", 4.0 if disabled else SHORT_S),
            "long": write_long_video(folder / "long.mp4", long_s)}


@pytest.mark.smoke
@pytest.mark.parametrize("length", ["short", "long"])
def test_peak_rss_count(benchmark, recorder, model_dir, videos, length):
    folder, what = model_dir
    video = videos[length]
    benchmark.group = "memory"
    rss, out = benchmark.pedantic(peak_rss, args=(["count", str(video), "--model", str(folder), "--json",
                                                   "--threads", "2"],), rounds=1, iterations=1)
    result = json.loads(out)
    recorder("memory_count", "default", what, peak_rss_mb=round(rss, 1), frames=result["frames"],
             video_seconds=round(result["frames"] / result["fps"], 1), length=length)


@pytest.mark.smoke
@pytest.mark.parametrize("length", ["short", "long"])
def test_peak_rss_live(benchmark, recorder, model_dir, videos, length):
    folder, what = model_dir
    video = videos[length]
    benchmark.group = "memory"
    rss, out = benchmark.pedantic(peak_rss, args=(["live", "--source", str(video), "--model", str(folder),
                                                   "--headless", "--json"],), rounds=1, iterations=1)
    summary = json.loads(out)
    recorder("memory_live", "default", what, peak_rss_mb=round(rss, 1), frames=summary["frames"],
             frames_per_s=summary["fps"], length=length)

"""The live path: frame and embedding rings, incremental inference, `edgecount live`."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgecount.cli import main
from edgecount.counter import Counter
from edgecount.counting import CountingConfig
from edgecount.live import IterableSource, LiveConfig, LiveCounter, Reconnect
from edgecount.live.stats import LatencyHistogram
from edgecount.runtime.manifest import Manifest
from edgecount.runtime.model import RepetitionModel, WindowOutputs, default_model_dir
from tests.videos import moving_square, write_video

ROOT = Path(__file__).resolve().parents[1]
QUVA_DEV = Path(__file__).resolve().parents[2] / "shared" / "quva-dev"
# An untrained model's scores are below the default thresholds (every count 0);
# with these it counts, so that equal counts mean something.
COUNTING = CountingConfig(periodicity_threshold=0.0, min_score=0.0)


class StubModel(RepetitionModel):
    """A fast stand-in model: features are mean colours of the frame's quadrants,
    the head a fixed random projection. ``encoded`` counts encoded frames."""

    def __init__(self, encode_delay_s: float = 0.0):
        self.folder = Path("stub")
        self.manifest = Manifest(name="stub", format="onnx", precision="fp32", frame_size=112, num_frames=64,
                                 period_classes=32, period_offset=1, feature_shape=[12])
        self.encode_delay_s = encode_delay_s
        self.encoded = 0
        self.projection = np.random.default_rng(0).standard_normal((12, 33)).astype(np.float32)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        time.sleep(self.encode_delay_s * len(frames))
        self.encoded += len(frames)
        quads = frames.reshape(len(frames), 2, 56, 2, 56, 3).mean(axis=(2, 4))
        return (quads.reshape(len(frames), 12) / 255).astype(np.float32)

    def window(self, features: np.ndarray) -> WindowOutputs:
        out = features @ self.projection
        logits = np.exp(out[..., :32] - out[..., :32].max(-1, keepdims=True))
        return WindowOutputs(logits / logits.sum(-1, keepdims=True), 1 / (1 + np.exp(-out[..., 32])))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """An untrained default model exported to ONNX (independent of the shipped weights)."""
    import torch

    from edgecount.export import export_model_dir
    from edgecount.model.default import build_default

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    export_model_dir(build_default().eval(), folder, "untrained")
    return folder


@pytest.fixture(scope="module")
def model(model_dir) -> RepetitionModel:
    return RepetitionModel(model_dir, threads=1)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "square.mp4", moving_square(240, 12), fps=30)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 1
    lines = [line for line in err.strip().splitlines() if not line.startswith("edgecount: warning:")]
    assert len(lines) == 1 and lines[0].startswith("edgecount: error:"), err
    for word in words:
        assert word in lines[0]


# --- the count ------------------------------------------------------------------


def test_live_count_of_a_file_equals_count(model, video):
    expected = Counter(model, COUNTING).count(video)
    updates = []
    summary = LiveCounter(model, LiveConfig(counting=COUNTING)).run(str(video), on_update=updates.append)
    assert expected.count > 1  # a count that can differ
    assert abs(summary.count - expected.count) < 1
    assert summary.count == pytest.approx(expected.count, abs=1e-3)  # same windows, same combine
    assert summary.stride == expected.result.stride
    assert (summary.frames, summary.dropped, summary.ended) == (240, 0, "end")
    assert updates[-1].final and updates[-1].estimate.count == summary.count
    assert [u.estimate.frames for u in updates] == sorted(u.estimate.frames for u in updates)


def test_each_frame_is_encoded_once_and_the_head_runs_on_windows():
    model = StubModel()
    live = LiveCounter(model, LiveConfig(update_every=1))  # runs the model once to check it
    model.encoded, windows = 0, []
    run_head = model.window
    model.window = lambda features: windows.append(features.shape) or run_head(features)
    summary = live.run(IterableSource(moving_square(500, 10, size=(112, 112))))
    assert model.encoded == summary.frames == 500
    assert all(shape[1:] == (64, 12) for shape in windows)  # 64-frame windows of embeddings
    # Per frame: a tail window for each stride that sampled the frame (1 + 1/2 + ... + 1/8
    # on average) and the full windows every 32 sampled frames, never a window per stride.
    per_frame = sum(shape[0] for shape in windows) / 500
    assert per_frame < sum(1 / s for s in CountingConfig().strides) + 0.3


def test_running_count_is_the_count_of_the_frames_so_far():
    """An update after frame k equals the final count of a stream of k frames."""
    model = StubModel()
    frames = moving_square(300, 9, size=(112, 112))
    seen = {}
    LiveCounter(model, LiveConfig(update_every=25, counting=COUNTING)).run(
        IterableSource(frames), on_update=lambda u: seen.setdefault(u.estimate.frames, u.estimate.count))
    for k in [k for k in seen if k < 300][:4]:
        short = LiveCounter(model, LiveConfig(counting=COUNTING)).run(IterableSource(frames[:k]))
        assert seen[k] == pytest.approx(short.count, abs=1e-6)


def test_paced_source_drops_the_oldest_frames_instead_of_waiting():
    model = StubModel(encode_delay_s=0.002)
    frames = moving_square(400, 10, size=(112, 112))
    summary = LiveCounter(model, LiveConfig(frame_capacity=8)).run(IterableSource(frames, paced=True))
    assert summary.dropped > 0
    assert summary.frames + summary.dropped == 400
    assert model.encoded >= summary.frames


# --- the command line --------------------------------------------------------------


def test_headless_prints_the_count_on_change(capsys, model_dir, video):
    code, out, err = run_cli(capsys, "live", "--source", str(video), "--model", str(model_dir), "--headless")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[-1].startswith("final count ") and "240 frames" in lines[-1] and "(end)" in lines[-1]
    changes = [int(line.split()[1]) for line in lines[:-1]]
    assert changes and all(line.startswith("count ") for line in lines[:-1])
    assert all(a != b for a, b in zip(changes, changes[1:]))


def test_json_summary(capsys, model_dir, video):
    code, out, err = run_cli(capsys, "live", "--source", str(video), "--model", str(model_dir), "--json",
                             "--update-every", "4")
    assert code == 0, err
    summary = json.loads(out)
    assert {"count", "frames", "dropped", "fps", "latency_ms"} <= summary.keys()
    assert set(summary["latency_ms"]) == {"p50", "p95", "p99"}
    assert summary["latency_ms"]["p50"] <= summary["latency_ms"]["p95"] <= summary["latency_ms"]["p99"]
    assert summary["frames"] == 240 and summary["dropped"] == 0 and summary["fps"] > 0
    assert summary["ended"] == "end"


def test_without_a_display_it_runs_headless(capsys, monkeypatch, model_dir, video):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    code, out, err = run_cli(capsys, "live", "--source", str(video), "--model", str(model_dir))
    assert code == 0, err
    assert "running headless" in err
    assert out.strip().splitlines()[-1].startswith("final count ")


@pytest.mark.parametrize("source, words", [
    ("99", ["camera 99", "not available"]),
    ("{tmp}/nope.mp4", ["nope.mp4", "no such file"]),
    ("{tmp}", ["directory"]),
    ("rtsp://127.0.0.1:9/none", ["rtsp://127.0.0.1:9/none", "cannot be opened"]),
    ("rtsp://me:secret@127.0.0.1:9/none", ["rtsp://me:***@127.0.0.1:9/none"]),
])
def test_bad_sources(capsys, tmp_path, model_dir, source, words):
    code, _, err = run_cli(capsys, "live", "--source", source.format(tmp=tmp_path), "--model", str(model_dir))
    assert_one_line_error(code, err, *words)
    assert "secret" not in err


def test_camera_that_does_not_exist_is_one_line_on_the_real_stderr(model_dir):
    """OpenCV's and FFmpeg's own messages would go to fd 2 directly, past capsys."""
    proc = subprocess.run([sys.executable, "-m", "edgecount", "live", "--source", "99", "--model", str(model_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert_one_line_error(proc.returncode, proc.stderr, "camera 99")


def test_model_directory_that_does_not_match(capsys, tmp_path, model_dir, video):
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("encoder.onnx", "head.onnx"):
        (bad / name).write_bytes((model_dir / name).read_bytes())
    manifest = json.loads((model_dir / "manifest.json").read_text())
    (bad / "manifest.json").write_text(json.dumps(manifest | {"feature_shape": [128]}))
    code, _, err = run_cli(capsys, "live", "--source", str(video), "--model", str(bad))
    assert_one_line_error(code, err, "features of shape (256,)", "(128,)")
    code, _, err = run_cli(capsys, "live", "--source", str(video), "--model", str(tmp_path))
    assert_one_line_error(code, err, "not a model directory")


@pytest.mark.parametrize("flag, value", [("--update-every", "0"), ("--reconnect", "-1")])
def test_bad_options(capsys, video, flag, value):
    code, _, err = run_cli(capsys, "live", "--source", str(video), flag, value)
    assert_one_line_error(code, err, flag)


class FakeWindow:
    """Stands in for the OpenCV window: records what it was shown, closes after ``shows`` frames."""

    def __init__(self, shows: int):
        self.shows, self.frames, self.counts, self.closed = shows, [], [], False

    def show(self, frame, update, fps) -> bool:
        if frame is not None and (not self.frames or frame is not self.frames[-1]):
            self.frames.append(frame)
            self.counts.append(None if update is None else update.estimate.count)
        time.sleep(0.005)
        return len(self.frames) < self.shows

    def close(self) -> None:
        self.closed = True


def test_the_window_is_fed_full_frames_and_closing_it_stops_the_run():
    window = FakeWindow(shows=20)
    frames = moving_square(3000, 10, size=(240, 320))
    summary = LiveCounter(StubModel(), LiveConfig(realtime=True)).run(IterableSource(frames, fps=200),
                                                                      display=window)
    assert window.closed and summary.ended == "stopped" and summary.frames < 3000
    assert all(f.shape == (240, 320, 3) for f in window.frames)  # the source's frames, not the model's
    assert any(c is not None for c in window.counts)


def test_an_empty_file_is_an_error(capsys, tmp_path, model_dir):
    empty = write_video(tmp_path / "empty.mp4", [])
    code, _, err = run_cli(capsys, "live", "--source", str(empty), "--model", str(model_dir))
    assert_one_line_error(code, err, "empty.mp4")


# --- faults --------------------------------------------------------------------------


class StallingSource:
    """A stream at ``fps`` that stalls after each segment of frames; ``reopen`` brings the next."""

    name, paced = "stalling stream", True

    def __init__(self, segments: list[int], fps: float):
        self.segments = [iter(moving_square(n, 10, size=(112, 112))) for n in segments]
        self.fps = fps
        self.reopened = 0

    def read(self) -> np.ndarray | None:
        time.sleep(1 / self.fps)
        return next(self.segments[self.reopened], None)

    def reopen(self) -> bool:
        if self.reopened + 1 == len(self.segments):
            return False
        self.reopened += 1
        return True

    def close(self) -> None:
        pass


def test_a_stalled_stream_warns_reconnects_and_keeps_the_count():
    warnings = []
    config = LiveConfig(reconnect=Reconnect(attempts=2, delay_s=0.01), counting=COUNTING)
    summary = LiveCounter(StubModel(), config).run(StallingSource([150, 100], fps=500), warn=warnings.append)
    assert summary.frames == 250  # both segments counted as one stream
    assert summary.ended == "lost" and "2 reconnect attempts failed" in summary.lost
    assert any("reconnecting, attempt 1 of 2" in w for w in warnings)
    assert any("reconnected" in w for w in warnings)
    whole = LiveCounter(StubModel(), LiveConfig(counting=COUNTING)).run(
        IterableSource(moving_square(150, 10, size=(112, 112))))
    assert summary.count > whole.count  # counting went on after the reconnect


@pytest.fixture
def mjpeg_stream():
    """An MJPEG-over-HTTP live stream: 40 frames at 60 fps per connection, then the
    first connection stalls (stays open, sends nothing), the second one closes, and
    later connections are refused (404). Yields the URL."""
    import cv2
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    jpegs = [cv2.imencode(".jpg", f)[1].tobytes() for f in moving_square(40, 10)]
    connections = []
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            connections.append(self.path)
            if len(connections) > 2:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for jpeg in jpegs:
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                                 % (len(jpeg), jpeg))
                time.sleep(1 / 60)
            if len(connections) == 1:
                release.wait(30)  # the stall

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/live"
    release.set()
    server.shutdown()


def test_a_stream_that_stalls_is_detected_and_reconnected(mjpeg_stream):
    """Through OpenCV's own stream reading: the stalled read times out, the stream is reopened."""
    warnings = []
    config = LiveConfig(stall_timeout_s=1.0, reconnect=Reconnect(attempts=1, delay_s=0.05))
    summary = LiveCounter(StubModel(), config).run(mjpeg_stream, warn=warnings.append)
    assert summary.frames == 80 and summary.dropped == 0  # 40 before the stall, 40 after
    assert sum("reconnected" in w for w in warnings) == 1
    assert summary.ended == "lost"


def test_a_lost_stream_prints_the_final_count_then_one_error_line(capsys, monkeypatch, model_dir):
    monkeypatch.setattr("edgecount.live.open_source", lambda spec, timeout: StallingSource([80], fps=30))
    code, out, err = run_cli(capsys, "live", "--source", "rtsp://example/stream", "--model", str(model_dir),
                             "--headless", "--reconnect", "0")
    assert out.strip().splitlines()[-1].startswith("final count ") and "80 frames" in out
    assert_one_line_error(code, err, "stalling stream stopped delivering frames", "final count")


def test_ctrl_c_ends_cleanly_with_the_final_count(model_dir, video):
    proc = subprocess.Popen([sys.executable, "-m", "edgecount", "live", "--source", str(video), "--realtime",
                             "--headless", "--model", str(model_dir)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # not inherited SIG_IGN
    try:
        first = proc.stdout.readline()  # the first count: the run is under way
        assert first.startswith("count "), first + proc.stderr.read()
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    last = out.strip().splitlines()[-1]
    assert last.startswith("final count ") and last.endswith("(interrupted)")
    assert int(last.split()[5]) < 240  # it stopped before the file's end (8 s at 30 fps)


def test_stop_from_another_thread(model):
    live = LiveCounter(model, LiveConfig(realtime=True))
    threading.Timer(0.5, live.stop).start()
    frames = moving_square(3000, 10, size=(112, 112))
    summary = live.run(IterableSource(frames, fps=30.0))
    assert summary.ended == "stopped" and 0 < summary.frames < 3000


# --- parts ------------------------------------------------------------------------------


def test_latency_percentiles_within_one_percent():
    x = np.random.default_rng(0).lognormal(np.log(0.02), 0.6, 20000)
    hist = LatencyHistogram()
    for chunk in np.array_split(x, 7):
        hist.add(chunk)
    for q in (50, 95, 99):
        assert hist.percentile(q) == pytest.approx(np.percentile(x, q), rel=0.011)
    assert LatencyHistogram().percentile(50) is None


# --- slow ---------------------------------------------------------------------------------


def vm_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_100k_frames_keep_memory_flat():
    """100,000 synthetic frames (a generator, no file) through the whole live path:
    the rings are preallocated, settled outputs are folded into sums and latencies
    into a fixed histogram, so RSS after the first 10,000 frames stays flat."""
    n = 100_000
    size = 112
    background = moving_square(1, 10, size=(size, size))[0]

    def frames():
        for i in range(n):
            frame = background.copy()
            x = int((size - 28) * (0.5 - 0.5 * np.cos(2 * np.pi * i / 17)))
            frame[42:70, x:x + 28] = (40, 220, 250)
            yield frame

    rss = {}

    def sample(update):
        if update.estimate.frames // 10_000 > len(rss) - 1 or update.final:
            rss[update.estimate.frames] = vm_rss_mb()

    summary = LiveCounter(StubModel(), LiveConfig(update_every=1)).run(IterableSource(frames()), on_update=sample)
    assert summary.frames == n and summary.dropped == 0
    steady = [v for k, v in sorted(rss.items()) if k >= 10_000]
    # Measured: +1.1 MB from 10,000 to 100,000 frames (allocator noise). Keeping each
    # window's outputs (64 x 32 float32, ~7,000 windows) would add ~60 MB; keeping one
    # small array per frame (an embedding, a latency) ~10 MB.
    assert max(steady) - steady[0] < 4, rss


@pytest.mark.slow
@pytest.mark.quva
@pytest.mark.skipif(not (QUVA_DEV / "videos").is_dir(), reason="needs ../shared/quva-dev")
def test_live_equals_count_on_quva_dev(model_dir):
    """Every quva-dev video through the live path (as `edgecount live --source FILE`):
    the count of `edgecount count` within 1. With the shipped model if there is one,
    else the untrained one with thresholds that let it count."""
    shipped = (default_model_dir() / "manifest.json").is_file()
    model = RepetitionModel(default_model_dir() if shipped else model_dir, threads=1)
    config = CountingConfig() if shipped else COUNTING
    counter, live = Counter(model, config), LiveCounter(model, LiveConfig(counting=config))
    for video in sorted((QUVA_DEV / "videos").iterdir()):
        expected = counter.count(video).count
        summary = live.run(str(video))
        assert summary.dropped == 0
        assert abs(summary.count - expected) < 1, (video.name, summary.count, expected)

"""The command line on good and bad input: one clear line and a non-zero exit for user errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli_run import assert_one_line_error, run
from tests.videos import moving_square, write_video, zero_fps_video


def test_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, "count", str(tmp_path / "nope.mp4"))
    assert_one_line_error(code, err, "nope.mp4", "no such file")


def test_directory(capsys, tmp_path):
    code, _, err = run(capsys, "count", str(tmp_path))
    assert_one_line_error(code, err, "directory")


def test_text_file_named_mp4(capsys, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 50)
    code, _, err = run(capsys, "count", str(fake))
    assert_one_line_error(code, err, "notes.mp4", "not a readable video")


def test_zero_frame_video(capsys, tmp_path):
    empty = write_video(tmp_path / "empty.mp4", [])
    code, _, err = run(capsys, "count", str(empty))
    assert_one_line_error(code, err, "empty.mp4")


def test_one_frame_video(capsys, tmp_path):
    one = write_video(tmp_path / "one.mp4", moving_square(1, 8))
    code, _, err = run(capsys, "count", str(one))
    assert_one_line_error(code, err, "one.mp4", "too short")


def test_zero_fps_header(capsys, tmp_path):
    code, _, err = run(capsys, "count", str(zero_fps_video(tmp_path / "fps0.mp4")))
    assert_one_line_error(code, err, "fps0.mp4", "frame rate")


def test_4k_video_is_counted_in_bounded_memory(capsys, tmp_path):
    """A 4K file is decoded and downscaled frame by frame, so it counts like any other."""
    frames = moving_square(48, 8, size=(2160, 3840))
    code, out, err = run(capsys, "count", "--json", str(write_video(tmp_path / "uhd.mp4", frames)))
    assert code == 0, err
    summary = json.loads(out)
    assert summary["frames"] == 48


def test_bad_model_dir(capsys, tmp_path):
    video = write_video(tmp_path / "v.mp4", moving_square(64, 8))
    code, _, err = run(capsys, "count", str(video), "--model", str(tmp_path))
    assert_one_line_error(code, err, "not a model directory")


def test_json_summary(capsys, tmp_path):
    video = write_video(tmp_path / "v.mp4", moving_square(150, 10), fps=25)
    code, out, err = run(capsys, "count", "--json", str(video))
    assert code == 0, err
    s = json.loads(out)
    for key in ("count", "frames", "fps", "period_frames", "periodicity", "stride", "model", "seconds"):
        assert key in s
    assert s["frames"] == 150 and s["fps"] == pytest.approx(25)
    assert len(s["period_frames"]) == len(s["periodicity"]) == 150
    assert all(0 <= p <= 1 for p in s["periodicity"])
    assert all(p is None or p > 0 for p in s["period_frames"])


def test_plot_and_annotate(capsys, tmp_path):
    video = write_video(tmp_path / "v.mp4", moving_square(90, 10))
    png, mp4 = tmp_path / "c.png", tmp_path / "c.mp4"
    code, out, err = run(capsys, "count", str(video), "--plot", str(png), "--annotate", str(mp4))
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import cv2

    cap = cv2.VideoCapture(str(mp4))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 90

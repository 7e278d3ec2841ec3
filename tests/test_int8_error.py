"""tools/int8_error.py: the INT8 error report runs on a clips file and its rows make sense."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")

from tests.test_convert import clip  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_report_rows(tmp_path):
    np.savez(tmp_path / "clips.npz", frames=np.stack([clip(96, 9, 0), clip(96, 13, 1)]))
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "int8_error.py"), "--clips",
                          str(tmp_path / "clips.npz"), "--first", "2", "--threads", "1"],
                         capture_output=True, text=True, check=True).stdout
    rows = {line[:32].strip(): line[32:].split() for line in out.splitlines()[2:]}
    assert list(rows) == ["float, input +-1 grey level", "INT8 whole encoder", "INT8, 16-bit activations"]
    cos = {label: float(values[0]) for label, values in rows.items()}
    assert all(0.5 < c < 1 for c in cos.values()), cos
    assert cos["INT8, 16-bit activations"] > cos["INT8 whole encoder"], cos  # finer activations, closer
    assert float(rows["INT8 whole encoder"][2]) == 1.0  # its own share

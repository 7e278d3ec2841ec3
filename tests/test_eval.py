"""`edgecount eval` on QUVA-layout folders."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgecount.cli import main
from edgecount.evaluate import Scores, VideoScore
from tests.videos import moving_square, write_video

QUVA_DEV = Path(__file__).resolve().parents[2] / "shared" / "quva-dev"


def test_metrics_follow_repnet_definitions():
    s = Scores([VideoScore("a", 10, 10.4, 100, 1.0), VideoScore("b", 4, 6.0, 50, 1.0),
                VideoScore("c", 5, 3.6, 50, 2.0)])
    # rounded predictions 10, 6, 4 -> errors 0, 2, 1
    assert s.mae == pytest.approx(np.mean([0, 2 / 4, 1 / 5]))
    assert s.obo_error == pytest.approx(1 / 3)
    assert s.frames_per_second == pytest.approx(200 / 4)


def test_eval_on_a_quva_layout_folder(capsys, tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "annotations").mkdir()
    for name, period in [("a", 10), ("b", 16)]:
        write_video(tmp_path / "videos" / f"{name}.mp4", moving_square(160, period))
        np.save(tmp_path / "annotations" / f"{name}.npy", np.arange(period, 161, period) - 1)
    write_video(tmp_path / "videos" / "unannotated.mp4", moving_square(40, 8))
    assert main(["eval", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["videos"] == 2
    assert [v["truth"] for v in result["per_video"]] == [16, 10]
    assert 0 <= result["obo_error"] <= 1 and result["mae"] >= 0


def test_eval_refuses_other_layouts(capsys, tmp_path):
    assert main(["eval", str(tmp_path)]) == 1
    assert "QUVA layout" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not QUVA_DEV.is_dir(), reason="needs ../shared/quva-dev")
def test_quva_dev_scores(capsys):
    """The default model on quva-dev: the numbers the README reports (no tuning happens here)."""
    assert main(["eval", str(QUVA_DEV), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["videos"] == 18
    print(json.dumps({k: result[k] for k in ("mae", "obo_error", "frames_per_second")}))
    # measured with the shipped model: MAE 0.230, OBO error 0.444 (README); a regression guard
    assert result["mae"] <= 0.25 and result["obo_error"] <= 0.5

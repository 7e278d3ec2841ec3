"""The default model in torch, its ONNX export and the torch-free runtime agree."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edgecount.errors import EdgecountError
from edgecount.export import export_model_dir
from edgecount.model.default import TRAINED_WEIGHTS, build_default, load_default, save_trained
from edgecount.runtime.model import RepetitionModel, default_model_dir
from tests.videos import moving_square

TOLERANCE = 1e-3  # ONNX Runtime vs torch, fp32, on logits


@pytest.fixture(scope="module")
def model_and_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = build_default().eval()
    folder = tmp_path_factory.mktemp("model")
    export_model_dir(model, folder, "test")
    return model, folder


def frames(n: int = 64) -> np.ndarray:
    import cv2

    return np.stack([cv2.resize(f, (112, 112))[..., ::-1] for f in moving_square(n, 9)]).copy()


def test_onnx_matches_torch(model_and_dir):
    model, folder = model_and_dir
    runtime = RepetitionModel(folder, threads=1)
    x = frames()
    with torch.no_grad():
        feats = model.encode(torch.from_numpy(x))
        logits, periodicity = model.window_head(feats[None])
    onnx_feats = runtime.encode(x)
    assert np.abs(onnx_feats - feats.numpy()).max() < TOLERANCE
    out = runtime.window(onnx_feats[None])
    probs = torch.softmax(logits, -1).numpy()
    assert np.abs(out.period_probs - probs).max() < TOLERANCE
    assert np.abs(out.periodicity - torch.sigmoid(periodicity).numpy()).max() < TOLERANCE


def test_embeddings_are_unit_length(model_and_dir):
    _, folder = model_and_dir
    feats = RepetitionModel(folder, threads=1).encode(frames(8))
    assert feats.shape == (8, 256)
    assert np.allclose(np.linalg.norm(feats, axis=1), 1, atol=1e-4)


def test_shipped_model_loads_without_torch_state():
    runtime = RepetitionModel(default_model_dir(), threads=1)
    assert runtime.manifest.format == "onnx" and runtime.num_frames == 64
    assert (default_model_dir() / TRAINED_WEIGHTS).is_file()


def test_trained_weights_round_trip(tmp_path, model_and_dir):
    model, _ = model_and_dir
    save_trained(model, tmp_path / "w.pt")
    loaded = load_default(tmp_path / "w.pt")
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k


def test_wrong_weights_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(EdgecountError, match="bad.pt"):
        load_default(bad)
    torch.save({"period_length_head.5.weight": torch.zeros(3, 3)}, tmp_path / "other.pt")
    with pytest.raises(EdgecountError, match="other.pt"):
        load_default(tmp_path / "other.pt")

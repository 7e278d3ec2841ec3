"""tools/train.py: the INT8 consistency term and the augmentation that keeps both feature sets aligned."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edgecount.convert.source import load_source  # noqa: E402
from tools.train import augment, consistency  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return load_source("default", None)[0]  # the shipped trained model


def test_consistency_is_zero_only_for_the_same_features(model):
    features = torch.rand(2, 64, 112, 7, 7)
    with torch.no_grad():
        same = float(consistency(model, features, features.clone()))
        other = float(consistency(model, features, features + 0.5 * torch.randn_like(features)))
    assert same == pytest.approx(0.0, abs=1e-6)
    assert other > 1e-4


def test_augment_reverses_int8_features_with_the_float_ones():
    torch.manual_seed(1)
    features = torch.arange(8 * 4, dtype=torch.float32).view(8, 4, 1, 1, 1)
    batch = {"features": features, "features_int8": features + 100, "period": features[:, :, 0, 0, 0],
             "periodic": torch.ones(8, 4)}
    out = augment(batch, keep_int8=True)
    assert torch.equal(out["features_int8"], out["features"] + 100)
    assert any(torch.equal(out["features"][i], features[i].flip(0)) for i in range(8))
    assert "features_int8" not in augment(batch)

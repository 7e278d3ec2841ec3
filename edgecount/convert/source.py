"""The PyTorch model a conversion starts from: the default model or the faithful RepNet."""
from __future__ import annotations

from pathlib import Path

from edgecount.model.repnet import RepNet


def shipped_default_weights() -> Path:
    """The trained tensors of the shipped default model (may be absent in a development tree)."""
    from edgecount.model.default import TRAINED_WEIGHTS
    from edgecount.runtime.model import default_model_dir

    return default_model_dir() / TRAINED_WEIGHTS


def load_source(kind: str, weights: Path | None) -> tuple[RepNet, str]:
    """The eval-mode model and a description of its weights.

    Without ``weights`` the default model uses the shipped trained tensors when
    present; otherwise (and always for ``repnet``) the weights are random, which is
    only good for timing.
    """
    if kind == "repnet":
        from edgecount.model.faithful import build_faithful, load_faithful

        if weights is None:
            return build_faithful(32).eval(), "random (timing only)"
        return load_faithful(weights), str(weights)
    from edgecount.model.default import build_default, load_default

    if weights is None:
        weights = shipped_default_weights()
        if not weights.is_file():
            return build_default(pretrained=True).eval(), "untrained head (timing only)"
    return load_default(weights), str(weights)

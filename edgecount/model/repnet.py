"""RepNet (Dwibedi et al., CVPR 2020) with a pluggable per-frame encoder.

The model is split where the counting procedure needs it:

* ``encoder``: frames -> per-frame features, run once per frame;
* ``window_head`` (everything else): a window of per-frame features -> period-length
  logits and periodicity logits per frame. It holds the temporal layer, the
  temporal self-similarity matrix (TSM), its conv and the two transformer heads.

Module names follow the published PyTorch conversion of RepNet, so its
state dict loads with ``strict=True`` (see ``edgecount.model.faithful``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class HeadConfig:
    """Sizes of the window head."""

    embedding_dim: int = 512  # per-frame embedding after the temporal layer
    num_frames: int = 64
    tsm_channels: int = 32
    model_dim: int = 512
    num_heads: int = 4
    ff_dim: int = 512
    period_classes: int = 32
    period_offset: int = 1  # period in frames = argmax + offset (1: ckpt-88, 0: ckpt-70)
    pos_encoding_dim: int = 1  # 1 (ckpt-88) or model_dim (ckpt-70)
    temperature: float = 13.544
    learn_temperature: bool = False
    relative_offsets: bool = False  # re-index each TSM row by offset j - i (not in the published model)


class TransformerHead(nn.Module):
    """Linear projection, learned positional embedding, one pre-LN transformer layer."""

    def __init__(self, cfg: HeadConfig):
        super().__init__()
        self.pos_encoding = nn.Parameter(torch.zeros(1, cfg.num_frames, cfg.pos_encoding_dim))
        self.input_projection = nn.Linear(cfg.num_frames * cfg.tsm_channels, cfg.model_dim)
        self.transformer_layer = nn.TransformerEncoderLayer(
            cfg.model_dim, cfg.num_heads, cfg.ff_dim, dropout=0.0, activation="relu",
            layer_norm_eps=1e-6, batch_first=True, norm_first=True,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transformer_layer(self.input_projection(x) + self.pos_encoding)


def prediction_head(cfg: HeadConfig, outputs: int) -> nn.Sequential:
    """Transformer head then Linear-ReLU-Linear-ReLU-Linear (indices 0..5 as published)."""
    return nn.Sequential(
        TransformerHead(cfg),
        nn.Linear(cfg.model_dim, cfg.model_dim), nn.ReLU(),
        nn.Linear(cfg.model_dim, cfg.model_dim), nn.ReLU(),
        nn.Linear(cfg.model_dim, outputs),
    )


def relative_offset_index(t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather index and validity mask that put column j of row i at position j - i + t // 2."""
    i = torch.arange(t)[:, None]
    j = i + torch.arange(t)[None, :] - t // 2
    valid = (j >= 0) & (j < t)
    return j.clamp(0, t - 1), valid


def self_similarity(emb: torch.Tensor, temperature: torch.Tensor | float) -> torch.Tensor:
    """Row-softmax of negative squared distances: (B, T, D) -> (B, 1, T, T)."""
    sq = (emb * emb).sum(-1)
    dist = sq[:, :, None] + sq[:, None, :] - 2 * emb @ emb.transpose(1, 2)
    return torch.softmax(-dist / temperature, dim=-1)[:, None]


class RepNet(nn.Module):
    """Encoder, temporal layer, TSM and the two heads.

    ``encoder`` maps (N, H, W, 3) uint8 RGB frames to per-frame features;
    ``temporal_conv`` maps a window of them (B, T, *feature) to embeddings (B, T, D).
    """

    def __init__(self, encoder: nn.Module, temporal_conv: nn.Module, cfg: HeadConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder
        self.temporal_conv = temporal_conv
        log_t = torch.tensor(float(cfg.temperature)).log()
        if cfg.learn_temperature:
            self.log_temperature = nn.Parameter(log_t)
        else:
            self.register_buffer("log_temperature", log_t, persistent=False)
        self.tsm_conv = nn.Sequential(nn.Conv2d(1, cfg.tsm_channels, 3, padding=1), nn.ReLU())
        if cfg.relative_offsets:
            index, valid = relative_offset_index(cfg.num_frames)
            self.register_buffer("offset_index", index, persistent=False)
            self.register_buffer("offset_valid", valid.float(), persistent=False)
        self.period_length_head = prediction_head(cfg, cfg.period_classes)
        self.periodicity_head = prediction_head(cfg, 1)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 frames -> per-frame features (N, ...), once per frame."""
        return self.encoder(frames)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """A window of per-frame features (B, T, ...) -> embeddings (B, T, D)."""
        return self.temporal_conv(features)

    def window_head(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, ...) features -> period logits (B, T, C) and periodicity logits (B, T)."""
        emb = self.embed(features)
        tsm = self_similarity(emb, self.log_temperature.exp())
        b, t = emb.shape[:2]
        x = self.tsm_conv(tsm)  # (B, C, T, T)
        if self.cfg.relative_offsets:
            index = self.offset_index.expand(b, x.shape[1], t, t)
            x = torch.gather(x, 3, index) * self.offset_valid
        x = x.permute(0, 2, 3, 1).reshape(b, t, t * self.cfg.tsm_channels)
        return self.period_length_head(x), self.periodicity_head(x).squeeze(-1)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A window of frames (B, T, H, W, 3) uint8 -> the outputs of ``window_head``."""
        b, t = frames.shape[:2]
        feats = self.encode(frames.flatten(0, 1))
        return self.window_head(feats.reshape(b, t, *feats.shape[1:]))

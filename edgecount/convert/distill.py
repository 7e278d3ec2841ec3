"""Label-free recovery fine-tune of a pruned model, with the unpruned model as teacher.

1. Encoder: the student's per-frame features match the teacher's on the
   calibration frames (mean squared error relative to the teacher's energy).
2. Head, only when it was pruned: on windows of the student's features (strides
   1..4 and synthetic repetitions), its period logits and periodicity match the
   teacher's outputs on the teacher's windows (KL divergence + squared error).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from edgecount.convert.calibration import repeated_windows, stride_windows
from edgecount.convert.prune import count_parameters
from edgecount.model.repnet import RepNet

FRAME_BATCH = 16
WINDOW_BATCH = 2
MAX_FRAMES = 768
LEARNING_RATE = 2e-4


@dataclass
class DistillReport:
    """Losses before and after the fine-tune, and how long it ran."""

    encoder_loss: tuple[float, float]
    head_loss: tuple[float, float] | None
    steps: int
    seconds: float

    def to_dict(self) -> dict:
        return {"encoder_loss": [round(v, 5) for v in self.encoder_loss],
                "head_loss": None if self.head_loss is None else [round(v, 5) for v in self.head_loss],
                "steps": self.steps, "seconds": round(self.seconds, 1)}


def _no_grad_batches(fn, data: torch.Tensor, size: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(data[i:i + size]) for i in range(0, len(data), size)])


def _feature_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(student, teacher) / teacher.pow(2).mean().clamp_min(1e-12)


def _head_loss(student: tuple[torch.Tensor, torch.Tensor], teacher: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    kl = F.kl_div(F.log_softmax(student[0], -1), F.log_softmax(teacher[0], -1), log_target=True,
                  reduction="batchmean") / student[0].shape[1]
    return kl + F.mse_loss(student[1], teacher[1])


def _train(params: list[torch.nn.Parameter], loss_fn, steps: int, deadline: float) -> tuple[float, float, int]:
    """Adam on ``loss_fn(step)`` until ``steps`` or ``deadline``: (first loss, mean of the last 10, steps)."""
    optimizer = torch.optim.Adam(params, lr=LEARNING_RATE)
    losses = []
    for step in range(steps):
        if time.perf_counter() > deadline:
            break
        loss = loss_fn(step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses[0], float(np.mean(losses[-10:])), len(losses)


def distill(student: RepNet, teacher: RepNet, clips: list[np.ndarray], seconds: float,
            max_steps: int = 400, seed: int = 0) -> DistillReport:
    """Fine-tune ``student`` in place for at most ``seconds`` (eval mode: BatchNorm statistics stay)."""
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    student.eval().requires_grad_(True)
    teacher.eval()
    head_pruned = count_parameters(student.temporal_conv) != count_parameters(teacher.temporal_conv)
    frames = torch.from_numpy(np.concatenate(clips))
    frames = frames[torch.linspace(0, len(frames) - 1, min(len(frames), MAX_FRAMES)).long()]
    target = _no_grad_batches(teacher.encode, frames, FRAME_BATCH)

    def encoder_step(_: int) -> torch.Tensor:
        idx = torch.randint(0, len(frames), (FRAME_BATCH,), generator=gen)
        return _feature_loss(student.encode(frames[idx]), target[idx])

    budget = seconds / 2 if head_pruned else seconds
    first, last, steps = _train(list(student.encoder.parameters()), encoder_step, max_steps, start + budget)
    report = DistillReport((first, last), None, steps, 0.0)
    if head_pruned:
        report.head_loss, head_steps = _distill_head(student, teacher, clips, start + seconds, max_steps, gen)
        report.steps += head_steps
    report.seconds = time.perf_counter() - start
    return report


def _windows(model: RepNet, clips: list[np.ndarray]) -> torch.Tensor:
    feats = [_no_grad_batches(model.encode, torch.from_numpy(c), FRAME_BATCH).numpy() for c in clips]
    t = model.cfg.num_frames
    return torch.from_numpy(np.concatenate([stride_windows(f, t) for f in feats]
                                           + [repeated_windows(f, t, 4, i) for i, f in enumerate(feats)]))


def _distill_head(student: RepNet, teacher: RepNet, clips: list[np.ndarray], deadline: float,
                  max_steps: int, gen: torch.Generator) -> tuple[tuple[float, float], int]:
    inputs, teacher_windows = _windows(student, clips), _windows(teacher, clips)
    with torch.no_grad():
        targets = [teacher.window_head(teacher_windows[i:i + 1]) for i in range(len(teacher_windows))]

    def head_step(_: int) -> torch.Tensor:
        idx = torch.randint(0, len(inputs), (WINDOW_BATCH,), generator=gen).tolist()
        out = student.window_head(inputs[idx])
        return _head_loss(out, (torch.cat([targets[i][0] for i in idx]), torch.cat([targets[i][1] for i in idx])))

    params = [p for name, p in student.named_parameters() if not name.startswith("encoder.")]
    first, last, steps = _train(params, head_step, max_steps, deadline)
    return (first, last), steps

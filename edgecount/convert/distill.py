"""Label-free recovery of a pruned model, with the unpruned model as teacher.

0. Refit: every 1x1 conv whose inputs were pruned and outputs kept (the MBConv
   project convs, the last ResNet stage's ``conv3`` and shortcut convs) is
   solved in closed form, in network order, by least squares so that on the
   calibration frames it reproduces the teacher layer's output from the
   student's own (pruned, upstream-perturbed) input.
1. Encoder: on runs of consecutive calibration frames, the student's per-frame
   features match the teacher's, and so do their changes from frame to frame
   (the features minus the run's mean, which is what the head counts from and
   a small part of the raw features' energy): squared errors relative to the
   teacher's energy, summed. Each run is seen through a random view (crop,
   mirror, colour gain), so that a few calibration clips stand for more video.
2. Head, only when it was pruned: on windows of the student's features (strides
   1..4 and synthetic repetitions), its period logits and periodicity match the
   teacher's outputs on the teacher's windows (KL divergence + squared error).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from edgecount.convert.calibration import head_windows
from edgecount.convert.prune import count_parameters
from edgecount.model.repnet import RepNet

FRAME_BATCH = 16
RUN_FRAMES = 8  # consecutive frames per run of the encoder's fine-tune (FRAME_BATCH // RUN_FRAMES runs a step)
WINDOW_BATCH = 2
REFIT_FRAMES = 64
LEARNING_RATE = 2e-4
RIDGE = 1e-3  # relative to the mean diagonal of the input Gram matrix


@dataclass
class DistillReport:
    """Losses on fixed probe samples before and after the fine-tune, and how long it ran."""

    refit_layers: int
    encoder_loss: tuple[float, float]
    head_loss: tuple[float, float] | None
    steps: int
    seconds: float

    def to_dict(self) -> dict:
        return {"refit_layers": self.refit_layers, "encoder_loss": [round(v, 5) for v in self.encoder_loss],
                "head_loss": None if self.head_loss is None else [round(v, 5) for v in self.head_loss],
                "steps": self.steps, "seconds": round(self.seconds, 1)}


def _no_grad_batches(fn, data: torch.Tensor, size: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(data[i:i + size]) for i in range(0, len(data), size)])


def _relative_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(student, teacher) / teacher.pow(2).mean().clamp_min(1e-12)


def _feature_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Features (R, T, D) of R runs of T consecutive frames: raw and run-centred errors."""
    return _relative_mse(student, teacher) + _relative_mse(student - student.mean(1, keepdim=True),
                                                           teacher - teacher.mean(1, keepdim=True))


def _head_loss(student: tuple[torch.Tensor, torch.Tensor], teacher: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    kl = F.kl_div(F.log_softmax(student[0], -1), F.log_softmax(teacher[0], -1), log_target=True,
                  reduction="batchmean") / student[0].shape[1]
    return kl + F.mse_loss(student[1], teacher[1])


def _train(params: list[torch.nn.Parameter], loss_fn: Callable[[torch.Tensor], torch.Tensor],
           sample: Callable[[], torch.Tensor], probe: torch.Tensor, steps: int,
           deadline: float, probe_loss: Callable[[torch.Tensor], torch.Tensor] | None = None
           ) -> tuple[tuple[float, float], int]:
    """Adam on ``loss_fn(sample())`` until ``steps`` or ``deadline``. The new weights are kept
    only if they lower ``probe_loss`` (default ``loss_fn``) on the fixed ``probe`` indices:
    ((probe loss before, after), steps)."""
    probe_loss = probe_loss or loss_fn
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        before = probe_loss(probe).item()
    optimizer = torch.optim.Adam(params, lr=LEARNING_RATE)
    done = 0
    while done < steps and time.perf_counter() < deadline:
        loss = loss_fn(sample())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        done += 1
    with torch.no_grad():
        after = probe_loss(probe).item()
        if after > before:
            for param, old in zip(params, saved):
                param.copy_(old)
            after = before
    return (before, after), done


def _spread(n: int, k: int) -> torch.Tensor:
    return torch.linspace(0, n - 1, min(n, k)).long()


def augment_run(frames: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One random view of a run of uint8 frames (T, H, W, 3), the same for every frame so that
    their changes stay: a crop of 50-100 % of the side resized back, a mirror, gain and offset
    per channel. A few calibration clips then stand for more video than they show."""
    _, h, w, _ = frames.shape
    u = torch.rand(4, generator=gen)
    side = int(h * (0.5 + 0.5 * u[0]))
    top, left = int((h - side) * u[1]), int((w - side) * u[2])
    x = frames[:, top:top + side, left:left + side].permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    if u[3] < 0.5:
        x = x.flip(-1)
    gain = 0.7 + 0.6 * torch.rand(1, 3, 1, 1, generator=gen)
    offset = 40 * (torch.rand(1, 3, 1, 1, generator=gen) - 0.5)
    return (x * gain + offset).clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1)


def run_starts(lengths: list[int], run: int) -> torch.Tensor:
    """Indices into the concatenated clips of ``lengths`` where ``run`` consecutive frames of one
    clip begin (clips shorter than ``run`` have none)."""
    starts, offset = [], 0
    for n in lengths:
        starts.extend(range(offset, offset + n - run + 1))
        offset += n
    return torch.tensor(starts, dtype=torch.long)


def distill(student: RepNet, teacher: RepNet, clips: list[np.ndarray], seconds: float,
            max_steps: int = 1000, seed: int = 0) -> DistillReport:
    """Refit, then fine-tune ``student`` in place for at most ``seconds`` (eval mode: BatchNorm
    statistics stay); the teacher's targets are computed step by step."""
    begin = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    student.eval().requires_grad_(True)
    teacher.eval()
    head_pruned = count_parameters(student.temporal_conv) != count_parameters(teacher.temporal_conv)
    frames = torch.from_numpy(np.concatenate(clips))
    refitted = refit(student, teacher, frames[_spread(len(frames), REFIT_FRAMES)])
    start = time.perf_counter()
    run = min(RUN_FRAMES, max(len(c) for c in clips))
    starts = run_starts([len(c) for c in clips], run)

    def encoder_loss(first: torch.Tensor, augment: bool = True) -> torch.Tensor:
        idx = (first[:, None] + torch.arange(run)).flatten()
        x = frames[idx].unflatten(0, (len(first), run))
        x = torch.cat([augment_run(r, gen) for r in x]) if augment else x.flatten(0, 1)
        with torch.no_grad():
            target = teacher.encode(x).unflatten(0, (len(first), run))
        return _feature_loss(student.encode(x).unflatten(0, (len(first), run)), target)

    runs = FRAME_BATCH // run
    encoder, steps = _train(list(student.encoder.parameters()), encoder_loss,
                            lambda: starts[torch.randint(0, len(starts), (runs,), generator=gen)],
                            starts[_spread(len(starts), 2 * runs)], max_steps,
                            start + (seconds / 2 if head_pruned else seconds),
                            probe_loss=lambda first: encoder_loss(first, augment=False))
    report = DistillReport(refitted, encoder, None, steps, 0.0)
    if head_pruned:
        report.head_loss, head_steps = _distill_head(student, teacher, clips, start + seconds, max_steps, gen)
        report.steps += head_steps
    report.seconds = time.perf_counter() - begin
    return report


def _refit_pairs(student: RepNet, teacher: RepNet) -> list[tuple[torch.nn.Module, torch.nn.Module]]:
    """(student, teacher) 1x1 convs of the encoder whose inputs were pruned and outputs kept."""
    teacher_layers = dict(teacher.encoder.named_modules())
    pairs = []
    for name, layer in student.encoder.named_modules():
        other = teacher_layers.get(name)
        if not (isinstance(layer, torch.nn.Conv2d) and layer.kernel_size == (1, 1) and layer.groups == 1):
            continue
        (outputs, inputs), (teacher_outputs, teacher_inputs) = layer.weight.shape[:2], other.weight.shape[:2]
        if inputs != teacher_inputs and outputs == teacher_outputs:
            pairs.append((layer, other))
    return pairs


def _rows(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N * H * W, C)."""
    return x.movedim(1, -1).reshape(-1, x.shape[1])


def refit(student: RepNet, teacher: RepNet, frames: torch.Tensor) -> int:
    """Least-squares refit of the pruned-input layers (see the module doc); returns how many."""
    pairs = _refit_pairs(student, teacher)
    batches = [frames[i:i + FRAME_BATCH] for i in range(0, len(frames), FRAME_BATCH)]
    targets: dict[torch.nn.Module, list[torch.Tensor]] = {other: [] for _, other in pairs}
    hooks = [other.register_forward_hook(lambda m, i, o: targets[m].append(_rows(o))) for _, other in pairs]
    try:
        with torch.no_grad():
            for batch in batches:
                teacher.encode(batch)
    finally:
        for hook in hooks:
            hook.remove()
    for layer, other in pairs:  # in network order: each refit sees the refitted layers before it
        inputs: list[torch.Tensor] = []
        hook = layer.register_forward_hook(lambda m, i, o: inputs.append(_rows(i[0])))
        gram = cross = 0
        try:
            with torch.no_grad():
                for batch, y in zip(batches, targets.pop(other)):
                    student.encode(batch)
                    x = inputs.pop().double()
                    if layer.bias is not None:
                        x = torch.cat([x, x.new_ones(len(x), 1)], 1)
                    gram, cross = gram + x.T @ x, cross + x.T @ y.double()
        finally:
            hook.remove()
        ridge = RIDGE * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
        solution = torch.linalg.solve(gram + ridge, cross).T.float()  # (out, in [+ bias])
        with torch.no_grad():
            cin = layer.weight.shape[1]
            layer.weight.copy_(solution[:, :cin].reshape(layer.weight.shape))
            if layer.bias is not None:
                layer.bias.copy_(solution[:, cin])
    return len(pairs)


def _windows(model: RepNet, clips: list[np.ndarray]) -> torch.Tensor:
    feats = [_no_grad_batches(model.encode, torch.from_numpy(c), FRAME_BATCH).numpy() for c in clips]
    return torch.from_numpy(head_windows(feats, model.cfg.num_frames, synthetic_per_clip=4))


def _distill_head(student: RepNet, teacher: RepNet, clips: list[np.ndarray], deadline: float,
                  max_steps: int, gen: torch.Generator) -> tuple[tuple[float, float], int]:
    inputs, teacher_inputs = _windows(student, clips), _windows(teacher, clips)

    def head_loss(idx: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = teacher.window_head(teacher_inputs[idx])
        return _head_loss(student.window_head(inputs[idx]), target)

    params = [p for name, p in student.named_parameters() if not name.startswith("encoder.")]
    return _train(params, head_loss, lambda: torch.randint(0, len(inputs), (WINDOW_BATCH,), generator=gen),
                  _spread(len(inputs), 2 * WINDOW_BATCH), max_steps, deadline)

"""Train the default model's projection, temporal layer and heads on precomputed
trunk features (see tools/features.py), then export it into the package:

    python tools/train.py --train data/train --val data/val \
        --minutes 20 --out edgecount/assets/default
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgecount.export import export_model_dir
from edgecount.model.default import TRAINED_WEIGHTS, build_default, load_default, save_trained
from edgecount.model.repnet import RepNet


def load(folders: list[Path]) -> dict[str, torch.Tensor]:
    """All shards written by tools/features.py into ``folders``."""
    shards = [np.load(p) for folder in folders for p in sorted(folder.glob("shard_*.npz"))]
    if not shards:
        raise SystemExit(f"no shard_*.npz in {', '.join(map(str, folders))}")
    data = {
        "features": torch.from_numpy(np.concatenate([s["features"] for s in shards])),  # (N, T, C, 7, 7)
        "period": torch.from_numpy(np.concatenate([s["period"] for s in shards])).float(),
        "periodic": torch.from_numpy(np.concatenate([s["periodic"] for s in shards])).float(),
    }
    if all("features_int8" in s.files for s in shards):  # tools/features.py --int8
        data["features_int8"] = torch.from_numpy(np.concatenate([s["features_int8"] for s in shards]))
    return data


def period_targets(period: torch.Tensor, classes: int, offset: int) -> torch.Tensor:
    """Soft class targets: a fractional period splits between its two nearest classes."""
    x = (period - offset).clamp(0, classes - 1)
    lo = x.floor().long()
    hi = (lo + 1).clamp(max=classes - 1)
    w = x - lo.float()
    target = torch.zeros(*period.shape, classes)
    target.scatter_add_(-1, lo[..., None], (1 - w)[..., None])
    target.scatter_add_(-1, hi[..., None], w[..., None])
    return target


def forward(model: RepNet, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    b, t = feats.shape[:2]
    emb = model.encoder.projection(feats.flatten(0, 1).float()).reshape(b, t, -1)
    return model.window_head(emb)


def losses(model: RepNet, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    cfg = model.cfg
    logits, periodicity = forward(model, batch["features"])
    mask = batch["periodic"]
    target = period_targets(batch["period"], cfg.period_classes, cfg.period_offset)
    ce = -(target * logits.log_softmax(-1)).sum(-1)
    period_loss = (ce * mask).sum() / mask.sum().clamp(min=1)
    periodicity_loss = F.binary_cross_entropy_with_logits(periodicity, mask)
    pred = logits.argmax(-1) + cfg.period_offset
    exact = ((pred - batch["period"]).abs() <= 0.5 + 0.05 * batch["period"]).float()
    stats = {
        "period_acc": float((exact * mask).sum() / mask.sum().clamp(min=1)),
        "periodicity_acc": float(((periodicity > 0).float() == mask).float().mean()),
    }
    return period_loss + periodicity_loss, stats


def consistency(model: RepNet, features: torch.Tensor, features_int8: torch.Tensor) -> torch.Tensor:
    """How far the outputs through the INT8 trunk are from those through the float one, per
    frame: symmetric KL of the period distributions plus 10 x the squared difference of the
    periodicity probabilities."""
    logits, periodicity = forward(model, features)
    logits_int8, periodicity_int8 = forward(model, features_int8)
    a, b = logits.log_softmax(-1), logits_int8.log_softmax(-1)
    kl = ((a.exp() - b.exp()) * (a - b)).sum(-1).mean()
    return kl + 10 * (torch.sigmoid(periodicity) - torch.sigmoid(periodicity_int8)).pow(2).mean()


def channel_std(features: torch.Tensor, sample: int = 256) -> torch.Tensor:
    """Per-channel standard deviation (1, 1, C, 1, 1) of trunk features, from a sample of clips."""
    x = features[torch.linspace(0, len(features) - 1, min(sample, len(features))).long()].float()
    return x.transpose(0, 2).flatten(1).std(1).view(1, 1, -1, 1, 1)


def augment(batch: dict[str, torch.Tensor], noise: float = 0.0, std: torch.Tensor | None = None,
            int8_mix: float = 0.0, keep_int8: bool = False) -> dict[str, torch.Tensor]:
    """Time reversal of half the clips (labels are symmetric in time); with ``int8_mix`` > 0,
    that fraction of the clips seen through the INT8 trunk (``features_int8``) so that
    the counts of an INT8 model do not move; with ``keep_int8``, ``features_int8`` stays
    beside ``features`` (reversed with it) for ``consistency``; with ``noise`` > 0, Gaussian
    noise on the trunk features of each clip, its level drawn from 0..``noise`` times each
    channel's std."""
    n = batch["features"].shape[0]
    batch = dict(batch)
    if "features_int8" in batch and not keep_int8:
        int8 = batch.pop("features_int8")
        use = (torch.rand(n) < int8_mix).view(-1, 1, 1, 1, 1)
        batch["features"] = torch.where(use, int8, batch["features"])
    flip = torch.rand(n) < 0.5
    out = {k: torch.where(flip.view(-1, *[1] * (v.dim() - 1)), v.flip(1), v) for k, v in batch.items()}
    if noise > 0:
        feats = out["features"].float()
        level = noise * torch.rand(feats.shape[0], 1, 1, 1, 1)
        out["features"] = feats + level * std * torch.randn_like(feats)
    return out


def evaluate(model: RepNet, data: dict[str, torch.Tensor], batch: int = 64) -> dict[str, float]:
    """Validation loss and accuracies, and with INT8 trunk features, the same on those (int8_*)."""
    if "features_int8" in data:
        fp32 = {k: v for k, v in data.items() if k != "features_int8"}
        int8 = fp32 | {"features": data["features_int8"]}
        return evaluate(model, fp32, batch) | {f"int8_{k}": v for k, v in evaluate(model, int8, batch).items()}
    model.eval()
    totals: dict[str, float] = {}
    n = data["features"].shape[0]
    with torch.no_grad():
        for i in range(0, n, batch):
            part = {k: v[i:i + batch] for k, v in data.items()}
            loss, stats = losses(model, part)
            for k, v in {"loss": float(loss), **stats}.items():
                totals[k] = totals.get(k, 0.0) + v * part["features"].shape[0] / n
    model.train()
    return totals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=Path, nargs="+", required=True, help="folders of shards")
    ap.add_argument("--val", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=1800, help="optimizer steps (cosine schedule)")
    ap.add_argument("--minutes", type=float, default=60, help="stop early after this long")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--feature-noise", type=float, default=0.0,
                    help="largest Gaussian noise on trunk features, in channel stds (0: none)")
    ap.add_argument("--int8-mix", type=float, default=0.0,
                    help="fraction of training clips seen through the INT8 trunk (shards made with --int8)")
    ap.add_argument("--consistency", type=float, default=0.0,
                    help="weight of the agreement of outputs through the INT8 and float trunks "
                         "(shards made with --int8; 0: none)")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from these trained tensors (e.g. edgecount/assets/default/weights.pt)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=200, help="steps between validation runs")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    # One thread: flush-to-zero is set per thread, and denormals from the sharp TSM
    # softmax slowed multi-threaded training down several times after a few hundred steps.
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    train, val = load(args.train), load([args.val])
    if (args.int8_mix > 0 or args.consistency > 0) and "features_int8" not in train:
        raise SystemExit("--int8-mix and --consistency need shards made with tools/features.py --int8")
    std = channel_std(train["features"]) if args.feature_noise > 0 else None
    model = load_default(args.init) if args.init else build_default(pretrained=True)
    model.encoder.trunk.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    n = train["features"].shape[0]
    budget = args.minutes * 60
    start = time.time()
    step, log = 0, []
    args.out.mkdir(parents=True, exist_ok=True)
    model.train()
    model.encoder.trunk.eval()
    while step < args.steps and (elapsed := time.time() - start) < budget:
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(0, n, (args.batch,))
        batch = augment({k: v[idx] for k, v in train.items()}, args.feature_noise, std, args.int8_mix,
                        keep_int8=args.consistency > 0)
        loss, stats = losses(model, batch)
        if args.consistency > 0:
            loss = loss + args.consistency * consistency(model, batch["features"], batch["features_int8"])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step % args.log_every == 0:
            v = evaluate(model, val)
            log.append({"step": step, "seconds": round(elapsed), "train_loss": round(float(loss.detach()), 4), **stats,
                        **{f"val_{k}": round(x, 4) for k, x in v.items()}})
            print(json.dumps(log[-1]), flush=True)
            save_trained(model, args.out / TRAINED_WEIGHTS)  # a checkpoint to inspect mid-run
    final = evaluate(model, val)
    print("final val", json.dumps(final))
    manifest = export_model_dir(model.eval(), args.out, name="edgecount-lite0")
    save_trained(model, args.out / TRAINED_WEIGHTS)
    (args.out / "training.json").write_text(json.dumps({
        "command": "python tools/train.py " + " ".join(sys.argv[1:]),
        "steps": step, "seconds": round(time.time() - start), "val": final, "log": log,
    }, indent=1) + "\n")
    print("exported", manifest)


if __name__ == "__main__":
    main()

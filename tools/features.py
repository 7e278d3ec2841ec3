"""Synthetic repetition clips -> frozen-trunk features, for training the default model.

The EfficientNet-Lite0 trunk is frozen, so each synthetic clip is encoded once
(ONNX Runtime) and only its 112x7x7 feature maps (float16) and labels are kept,
in shards of ``--shard`` clips that training can use while more are made:

    python tools/features.py --footage ../shared/footage/clips --clips 2000 \
        --seed 0 --out data/train

With ``--int8`` each clip is also encoded by the trunk quantized to INT8 the
way ``edgecount convert`` quantizes an encoder (ONNX Runtime, calibrated on the
package's sample clip); those features (``features_int8``) let training see
what an INT8 model will see (tools/train.py --int8-mix).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth import FootagePool, compress, make_clip  # noqa: E402

from edgecount.convert.calibration import calibration_videos, load_clips  # noqa: E402
from edgecount.convert.quantize import CALIBRATION_BATCH, encoder_samples, quantize_onnx_file  # noqa: E402
from edgecount.convert.run import CLIP_FRAMES, MAX_CLIPS  # noqa: E402
from edgecount.export import export_onnx  # noqa: E402
from edgecount.model.default import FRAME_SIZE, Trunk  # noqa: E402
from edgecount.runtime.backends import OrtSession  # noqa: E402

_POOL: FootagePool | None = None  # shared with forked workers
_COMPRESSED = 0.0  # fraction of clips given codec artifacts
QUALITY = (25, 90)  # JPEG quality range of those clips


def _clip(seed: int):
    rng = np.random.default_rng(seed)
    clip = make_clip(_POOL, rng, num_frames=64, size=FRAME_SIZE)
    frames = clip.frames
    if rng.random() < _COMPRESSED:
        frames = compress(frames, int(rng.integers(QUALITY[0], QUALITY[1] + 1)))
    return frames, clip.period, clip.periodic, clip.count, clip.kind


def trunk_sessions(folder: Path, int8: bool) -> list[OrtSession]:
    """The frozen trunk exported to ONNX once and opened with ONNX Runtime; with ``int8``, also
    that file quantized to INT8 (calibrated on the package's sample clip)."""
    path = folder / "trunk.onnx"
    example = torch.zeros(2, FRAME_SIZE, FRAME_SIZE, 3, dtype=torch.uint8)
    export_onnx(Trunk(pretrained=True), example, path, "frames", ["features"])
    paths = [path]
    if int8:
        frames = np.concatenate(load_clips(calibration_videos(None), FRAME_SIZE, CLIP_FRAMES["default"],
                                           MAX_CLIPS["default"]))
        paths.append(folder / "trunk_int8.onnx")
        quantize_onnx_file(path, paths[1], "frames", encoder_samples(frames, CALIBRATION_BATCH), encoder=True)
    return [OrtSession(p, threads=2) for p in paths]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--footage", type=Path, required=True)
    ap.add_argument("--clips", type=int, default=2500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="folder of shards")
    ap.add_argument("--shard", type=int, default=250, help="clips per shard")
    ap.add_argument("--compressed", type=float, default=0.0,
                    help=f"fraction of clips given JPEG artifacts (quality {QUALITY[0]}-{QUALITY[1]})")
    ap.add_argument("--int8", action="store_true",
                    help="also store the features of the INT8-quantized trunk (features_int8)")
    args = ap.parse_args()

    global _POOL, _COMPRESSED
    _POOL = FootagePool.load(args.footage)
    _COMPRESSED = args.compressed
    start = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = [args.seed * 1_000_003 + i for i in range(args.clips)]
    shard: list[tuple] = []
    with tempfile.TemporaryDirectory() as tmp, mp.get_context("fork").Pool(1) as workers:
        sessions = trunk_sessions(Path(tmp), args.int8)
        for i, (frames, *labels) in enumerate(tqdm(workers.imap(_clip, seeds, chunksize=4),
                                                   total=len(seeds), desc="clips")):
            encoded = [s.run(frames)[0].astype(np.float16) for s in sessions]
            shard.append((encoded, *labels))
            if len(shard) == args.shard or i == len(seeds) - 1:
                save_shard(args.out / f"shard_{i // args.shard:03d}.npz", shard)
                shard = []
    print(f"{len(seeds)} clips -> {args.out} in {time.time() - start:.0f} s")


def save_shard(path: Path, rows: list[tuple]) -> None:
    encoded, period, periodic, count, kind = zip(*rows)
    feats = {name: np.stack([e[j] for e in encoded]) for j, name in enumerate(("features", "features_int8")[:len(encoded[0])])}
    np.savez(path, **feats, period=np.stack(period), periodic=np.stack(periodic),
             count=np.array(count), kind=np.array(kind))


if __name__ == "__main__":
    main()

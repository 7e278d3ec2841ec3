"""Where an INT8 encoder's error comes from, and what it does to the counts: the whole encoder
in INT8 (8- and 16-bit activations), each part of it quantized alone, and, for scale, the float
encoder on frames with +-1 grey level of random noise. Each row: the window-centred feature
cosine to the float encoder (what the head counts from, ``edgecount.convert.verify.
centred_cosines``) on clips the calibration did not see, and how far each clip's count moved
(the float head counting, as ``edgecount count`` does).

    python tools/synth.py --footage ../shared/footage/clips --out build/synth-long.npz \\
        --clips 60 --frames 360 --seed 930000
    python tools/int8_error.py --clips build/synth-long.npz --first 8 [--parts] [--keep _blocks.0,projection]
    python tools/int8_error.py --clips ../shared/quva-dev --first 18

Quantization is ONNX Runtime static INT8 as ``edgecount convert --format onnx --precision
int8`` makes it, calibrated on the same frames (``--calibration DIR``, default the sample
clip). 1 - cosine adds up roughly over independent sources of error, so a part's ``share`` is
its share of the whole encoder's.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgecount.convert.calibration import calibration_videos, load_clips  # noqa: E402
from edgecount.convert.quantize import (CALIBRATION_BATCH, Op, encoder_samples, onnx_ops,  # noqa: E402
                                        quantize_onnx_file)
from edgecount.convert.run import calibration_split  # noqa: E402
from edgecount.convert.verify import (ENCODE_BATCH, RuntimePipeline, centred_cosines, clip_count,  # noqa: E402
                                      with_noise)
from edgecount.runtime.backends import open_session  # noqa: E402
from edgecount.runtime.manifest import Manifest  # noqa: E402
from edgecount.runtime.model import default_model_dir  # noqa: E402

PART = re.compile(r"/(_conv_stem|_blocks\.\d+|projection)/")  # the default encoder's stem, blocks, projection
MOVED = 0.5  # a count change this large is counted as a moved clip


def part_of(op: Op) -> str | None:
    match = PART.search(op.name)
    return match.group(1) if match else None


def score_clips(path: Path, first: int, size: int) -> list[np.ndarray]:
    """The first ``first`` clips of a tools/synth.py .npz, or of a folder of videos, whole."""
    if path.suffix == ".npz":
        return list(np.load(path)["frames"][:first])
    videos = calibration_videos(path / "videos" if (path / "videos").is_dir() else path)[:first]
    return load_clips(videos, size, sys.maxsize, len(videos))


def encode(path: Path, clips: list[np.ndarray], threads: int) -> list[np.ndarray]:
    session = open_session(path, "onnx", threads)
    return [np.concatenate([session.run(c[i:i + ENCODE_BATCH])[0] for i in range(0, len(c), ENCODE_BATCH)]) for c in clips]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=Path, required=True,
                    help=".npz of tools/synth.py (its frames), or a folder of videos (of a QUVA folder: videos/)")
    ap.add_argument("--first", type=int, default=8, help="clips to score on")
    ap.add_argument("--parts", action="store_true", help="also quantize each part of the encoder alone")
    ap.add_argument("--keep", default="", help="also: INT8 with these parts in float, e.g. _blocks.0,projection")
    ap.add_argument("--model", type=Path, default=default_model_dir(), help="an ONNX fp32 model directory")
    ap.add_argument("--calibration", type=Path, default=None, help="folder of videos (default: the sample clip)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report(args, Path(tmp))


def report(args: argparse.Namespace, tmp: Path) -> None:
    """Print the table of the module doc; ``tmp`` holds the quantized encoders."""
    manifest = Manifest.load(args.model)
    if manifest.format != "onnx" or manifest.precision != "fp32":
        sys.exit(f"error: {args.model} is not an ONNX fp32 model directory")
    source = args.model / manifest.files()[0]
    calibrate, _ = calibration_split(calibration_videos(args.calibration), "default", manifest.frame_size)
    samples = encoder_samples(np.concatenate(calibrate), CALIBRATION_BATCH)
    clips = score_clips(args.clips, args.first, manifest.frame_size)
    head = RuntimePipeline(args.model, args.threads)

    def counts(features: list[np.ndarray]) -> np.ndarray:
        return np.array([clip_count(head, f, head.model.periods(), manifest.num_frames) for f in features])

    reference = encode(source, clips, args.threads)
    reference_counts = counts(reference)

    def int8(kept: Callable[[list[Op]], list[str]] | None = None, bits: int = 8) -> list[np.ndarray]:
        quantize_onnx_file(source, tmp / "encoder.onnx", "frames", samples, True, kept, bits)
        return encode(tmp / "encoder.onnx", clips, args.threads)

    # (label, features, INT8): the first INT8 row is the whole encoder, the others' share is of it
    rows: list[tuple[str, Callable[[], list[np.ndarray]], bool]] = [
        ("float, input +-1 grey level", lambda: encode(source, with_noise(clips), args.threads), False),
        ("INT8 whole encoder", int8, True), ("INT8, 16-bit activations", lambda: int8(bits=16), True)]
    if args.parts:
        parts = dict.fromkeys(p for p in map(part_of, onnx_ops(onnx.load(str(source)).graph)) if p)
        rows += [(f"INT8 only {p}", lambda p=p: int8(lambda ops: [op.name for op in ops if part_of(op) != p]), True)
                 for p in parts]
    if args.keep:
        keep = args.keep.split(",")
        rows.append((f"INT8, float {args.keep}",
                     lambda: int8(lambda ops: [op.name for op in ops if part_of(op) in keep]), True))
    whole = None
    print(f"{len(clips)} clips; counts moved against the float encoder's")
    print(f"{'encoder':<32} {'centred cos':>11} {'1 - cos':>8} {'share':>6} {'moved mean':>10} {'>= 0.5':>6}")
    for label, features, quantized in rows:
        feats = features()
        cos = float(np.mean(np.concatenate([centred_cosines(a, b, manifest.num_frames)
                                            for a, b in zip(reference, feats)])))
        if quantized and whole is None:
            whole = 1 - cos
        share = f"{(1 - cos) / whole:6.2f}" if quantized and whole else f"{'':6}"
        moved = np.abs(counts(feats) - reference_counts)
        print(f"{label:<32} {cos:>11.4f} {1 - cos:>8.4f} {share} {moved.mean():>10.2f} "
              f"{np.mean(moved >= MOVED):>6.2f}", flush=True)


if __name__ == "__main__":
    main()

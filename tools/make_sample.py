"""Write the demo video edgecount/assets/sample.mp4 (and sample.json) from real footage.

A local-motion repetition with a known count (a real hand waving: a region of
the frame bending periodically) made by tools/synth.py from permissively
licensed footage, with about a second of non-repeating context at each end.
Deterministic for a given seed:

    python tools/make_sample.py --footage ../shared/footage/clips \\
        --out edgecount/assets/sample.mp4
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth import FootagePool, SynthClip, SynthConfig, make_long_clip, read_clip  # noqa: E402

SOURCES = ("mediapipe-samples__test_video_handlm.mp4",)
PERMISSIVE = ("CC-BY-4.0", "MIT", "BSD", "Apache-2.0")


def manifest(folder: Path) -> dict[str, dict[str, str]]:
    """Rows of MANIFEST.tsv (next to the clips folder) by file name."""
    path = folder.parent / "MANIFEST.tsv"
    with path.open(newline="") as fh:
        return {row["file"]: row for row in csv.DictReader(fh, delimiter="\t")}


def credits(folder: Path, names: tuple[str, ...]) -> list[dict[str, str]]:
    """Source, original path and license of each clip; refuses non-permissive licenses."""
    rows = manifest(folder)
    out = []
    for name in names:
        row = rows[name]
        if not row["license"].startswith(PERMISSIVE):
            raise ValueError(f"{name}: license {row['license']!r} is not permissive")
        out.append({k: row[k] for k in ("file", "source", "original_path", "license")})
    return out


def open_writer(path: Path, fps: float, size: tuple[int, int]) -> tuple[cv2.VideoWriter, str]:
    """H.264 ('avc1') writer if OpenCV can make one here, else MPEG-4 ('mp4v')."""
    for fourcc in ("avc1", "mp4v"):
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if writer.isOpened():
            return writer, fourcc
    raise RuntimeError(f"OpenCV cannot write {path}")


def write_video(path: Path, frames: np.ndarray, fps: float) -> str:
    """Write RGB frames to `path`; returns the codec used."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer, fourcc = open_writer(path, fps, (frames.shape[2], frames.shape[1]))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return fourcc


def make_sample(folder: Path, seed: int, count: int, seconds: float, fps: float,
                shape: tuple[int, int]) -> SynthClip:
    """The demo clip: `count` repetitions between ~1 s of non-repeating context."""
    arrays = [read_clip(folder / name, round(min(shape) * 1.2)) for name in SOURCES]
    pool = FootagePool.from_arrays(arrays, SOURCES)
    config = SynthConfig(augment=0.4, max_jitter=0.08, crop_zoom=(0.85, 1.0))
    context = round(fps)
    return make_long_clip(pool, np.random.default_rng(seed), round(seconds * fps), shape=shape,
                          kind="local", count=count, context=(context, context), config=config)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--footage", type=Path, required=True, help="folder of the footage clips")
    ap.add_argument("--out", type=Path, default=Path("edgecount/assets/sample.mp4"))
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=30.0)
    args = ap.parse_args()
    clip = make_sample(args.footage, args.seed, args.count, args.seconds, args.fps, (240, 320))
    codec = write_video(args.out, clip.frames, args.fps)
    periodic = np.flatnonzero(clip.periodic)
    info = {"count": clip.count, "fps": args.fps, "frames": len(clip.frames),
            "width": clip.frames.shape[2], "height": clip.frames.shape[1], "codec": codec,
            "repetition_frames": [int(periodic[0]), int(periodic[-1]) + 1],
            "mean_period_frames": float(clip.period[clip.periodic].mean()), "seed": args.seed,
            "credits": credits(args.footage, SOURCES)}
    args.out.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    size_kb = args.out.stat().st_size / 1024
    print(f"{args.out}: {len(clip.frames)} frames, {codec}, {size_kb:.0f} KB, "
          f"true count {clip.count:g}")
    for c in info["credits"]:
        print(f"  {c['file']}: {c['source']} ({c['original_path']}), {c['license']}")


if __name__ == "__main__":
    main()

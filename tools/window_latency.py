"""Same-run window latency: the PyTorch model against converted model directories, interleaved
so that a busy machine slows every variant alike.

    python tools/window_latency.py --threads 1 --model default [--weights W] DIR [DIR@bf16 ...]
    python tools/window_latency.py --threads 2 --model repnet DIR ...

``DIR@bf16`` runs an OpenVINO directory with that inference precision hint.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from edgecount.convert.source import load_source
from edgecount.convert.verify import RuntimePipeline, TorchPipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+")
    parser.add_argument("--model", default="default")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, _ = load_source(args.model, args.weights)
    pipes = {"pytorch fp32": TorchPipeline(model)}
    for entry in args.dirs:
        folder, _, hint = entry.partition("@")
        pipes[entry] = RuntimePipeline(Path(folder), threads=args.threads, precision=hint or None)
    frames = np.random.default_rng(0).integers(0, 256, (model.cfg.num_frames, 112, 112, 3), dtype=np.uint8)
    times: dict[str, list[float]] = {name: [] for name in pipes}
    for repeat in range(args.repeats + 1):  # the first round warms up
        for name, pipe in pipes.items():
            start = time.perf_counter()
            pipe.head(pipe.encode(frames)[None])
            if repeat:
                times[name].append(time.perf_counter() - start)
    base = float(np.median(times["pytorch fp32"]))
    for name, values in times.items():
        print(f"{name:<40} {np.median(values):7.3f} s  {base / np.median(values):5.1f}x")


if __name__ == "__main__":
    main()

"""The ``edgecount`` command line."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgecount import __version__
from edgecount.errors import EdgecountError


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=None,
                   help="model directory (from `edgecount convert`); default: the shipped model")
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: all cores)")


def cmd_count(args: argparse.Namespace) -> None:
    from edgecount.counter import Counter

    counter = Counter(_load_model(args))
    vc = counter.count(args.video, progress=not args.quiet and sys.stderr.isatty())
    if args.plot:
        from edgecount.plot import plot_count

        plot_count(vc, args.plot)
    if args.annotate:
        from edgecount.annotate import annotate_video

        annotate_video(vc, args.annotate, progress=not args.quiet and sys.stderr.isatty())
    if args.json:
        print(json.dumps(vc.to_dict()))
    else:
        print(f"{vc.count:.0f}" if args.quiet else
              f"{args.video}: {vc.count:.1f} repetitions ({round(vc.count)}) "
              f"in {vc.result.frames} frames, stride {vc.result.stride}, {vc.seconds:.1f} s")


def cmd_eval(args: argparse.Namespace) -> None:
    from edgecount.counter import Counter
    from edgecount.evaluate import evaluate

    scores = evaluate(Counter(_load_model(args)), args.folder, progress=sys.stderr.isatty())
    print(json.dumps(scores.to_dict(), indent=1) if args.json else scores.table())


def _load_model(args: argparse.Namespace):
    from edgecount.runtime.model import RepetitionModel

    return RepetitionModel(args.model, threads=args.threads)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgecount", description="Count repetitions in video, on a CPU.")
    parser.add_argument("--version", action="version", version=f"edgecount {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("count", help="count the repetitions in a video file")
    p.add_argument("video", type=Path)
    _add_model_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object with per-frame details")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="draw period, periodicity and count")
    p.add_argument("--annotate", type=Path, metavar="FILE.mp4", help="write the video with the count on it")
    p.add_argument("--quiet", "-q", action="store_true", help="print the rounded count only")
    p.set_defaults(func=cmd_count)

    p = sub.add_parser("eval", help="MAE and off-by-one error on a QUVA-layout folder")
    p.add_argument("folder", type=Path)
    _add_model_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except EdgecountError as exc:
        print(f"edgecount: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edgecount: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``edgecount`` command line."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgecount import __version__
from edgecount.errors import EdgecountError


def _add_model_args(p: argparse.ArgumentParser, threads: str = "inference threads (default: all cores)") -> None:
    p.add_argument("--model", type=Path, default=None,
                   help="model directory (from `edgecount convert`); default: the shipped model")
    p.add_argument("--threads", type=int, default=None, help=threads)


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


def cmd_convert(args: argparse.Namespace) -> None:
    from edgecount.convert.options import ConvertOptions

    opts = ConvertOptions(out=args.out, format=args.format, precision=args.precision, model=args.model,
                          weights=args.weights, prune=args.prune, calibration=args.calibration,
                          force=args.force, threads=args.threads, finetune_seconds=args.finetune_seconds)
    opts.check()  # before torch, OpenVINO and NNCF are imported
    from edgecount.convert.run import convert

    result = convert(opts, log=lambda line: print(line, file=sys.stderr))
    print(result.report(args.out))


def cmd_live(args: argparse.Namespace) -> None:
    from edgecount.live import LiveConfig, LiveCounter, Reconnect, open_source
    from edgecount.live.display import open_window

    if args.update_every < 1:
        raise EdgecountError(f"--update-every must be at least 1, got {args.update_every}")
    if args.reconnect < 0:
        raise EdgecountError(f"--reconnect must be 0 or more, got {args.reconnect}")
    config = LiveConfig(update_every=args.update_every, realtime=args.realtime,
                        reconnect=Reconnect(attempts=args.reconnect))
    source = open_source(args.source, config.stall_timeout_s)  # a bad source fails before the model loads
    live = LiveCounter(args.model, config, threads=args.threads)
    window = None if args.headless else open_window()
    if window is None and not args.headless:
        _warn("no display (DISPLAY is not set, or OpenCV has no GUI support): running headless")
    printer = _ChangePrinter() if window is None and not args.json else None
    summary = live.run(source, on_update=printer, display=window, warn=_warn)
    if args.json:
        print(json.dumps(summary.to_dict()))
    else:
        lat = {k: "-" if v is None else f"{v * 1000:.0f} ms" for k, v in summary.latency_s.items()}
        print(f"final count {round(summary.count)} ({summary.count:.2f}) in {summary.frames} frames, "
              f"{summary.dropped} dropped, {summary.fps:.1f} frames/s, latency p50 {lat['p50']}, "
              f"p95 {lat['p95']}, p99 {lat['p99']} ({summary.ended})", flush=True)
    if summary.lost:
        raise EdgecountError(f"{summary.lost}; final count {round(summary.count)}")
    if summary.frames == 0 and summary.ended == "end":
        raise EdgecountError(f"{summary.source}: no frames")


class _ChangePrinter:
    """Prints the rounded running count whenever it changes."""

    def __init__(self):
        self.shown: int | None = None

    def __call__(self, update) -> None:
        count = round(update.estimate.count)
        if count != self.shown and not update.final:
            self.shown = count
            print(f"count {count} (frame {update.estimate.frames})", flush=True)


def _warn(message: str) -> None:
    print(f"edgecount: warning: {message}", file=sys.stderr, flush=True)


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

    p = sub.add_parser("convert", help="write a model directory for ONNX Runtime or OpenVINO, "
                                       "optionally INT8 and pruned, verified against PyTorch")
    p.add_argument("--model", default="default", help="default | repnet (the published RepNet)")
    p.add_argument("--weights", type=Path, help="weights file (default model: the shipped one; "
                                                "repnet: random weights, for timing only)")
    p.add_argument("--format", default="onnx", help="onnx | openvino")
    p.add_argument("--precision", default="fp32",
                   help="fp32 | int8 | bf16 | int8-bf16 (bf16 ones: OpenVINO on CPUs with bf16)")
    p.add_argument("--prune", type=float, metavar="RATIO",
                   help="remove this fraction of the prunable channels, in (0, 0.9], then fine-tune")
    p.add_argument("--calibration", type=Path, metavar="DIR",
                   help="folder of videos for calibration and checks (default: the shipped sample clip)")
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    p.add_argument("--force", action="store_true", help="overwrite the model files of an existing --out")
    p.add_argument("--threads", type=int, default=None, help="threads for conversion and timing (default: all)")
    p.add_argument("--finetune-seconds", type=float, default=60.0,
                   help="time budget of the recovery fine-tune after pruning (default 60)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("live", help="count live from a camera, a video file or a stream",
                       description="Count repetitions live. A window shows the video with the running count "
                                   "(q or Esc quits); without a display (no DISPLAY) it runs headless. "
                                   "Ctrl-C ends the run and prints the final count.")
    p.add_argument("--source", default="0",
                   help="camera index, video file or stream URL (rtsp://, http://...); default: camera 0")
    p.add_argument("--device", default="cpu", choices=["cpu"], help="inference device (only cpu)")
    _add_model_args(p, "threads of each of the two inference stages, which run side by side (default 1)")
    p.add_argument("--headless", action="store_true",
                   help="no window: print the count whenever it changes (automatic without a display)")
    p.add_argument("--json", action="store_true",
                   help="print a final JSON summary (count, frames, dropped, fps, latency percentiles) only")
    p.add_argument("--realtime", action="store_true",
                   help="read a file at its own frame rate (default: as fast as possible)")
    p.add_argument("--update-every", type=int, default=1, metavar="N",
                   help="update the running count at least every N frames (default 1)")
    p.add_argument("--reconnect", type=int, default=3, metavar="N",
                   help="reconnect attempts when a camera or stream stalls; the count is kept (default 3)")
    p.set_defaults(func=cmd_live)
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

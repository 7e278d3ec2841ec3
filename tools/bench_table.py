"""The README's benchmark tables, in Markdown, from a saved pytest-benchmark run.

    PYTHONPATH=. .venv/bin/python tools/bench_table.py benchmarks/results/baseline.json \\
        [--eval default-onnx-fp32=eval.json ...] [--ops] > table.md

Reads the run's JSON (``pytest benchmarks/ --benchmark-only --benchmark-json=FILE``)
and prints: the machine (CPU model, cores, instruction sets, load), each variant's
median window latency with its speed-up against the PyTorch fp32 run of the same
session and against the 0.98 s reference, its quva-dev MAE / OBO error (from
``edgecount eval DIR --model VARIANT_DIR --json`` outputs given with ``--eval``),
size and live frames/s; the live path per frame; peak memory. ``--ops`` adds the
multiply-accumulates of each model per window and per live frame, counted with
``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matmuls; 1 MAC = 2
FLOPs), and what they mean for a Raspberry Pi 4 and 5 at the assumed sustained
throughputs printed with them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Assumed sustained GMAC/s of 4 threads running these convnets (see README "Raspberry Pi").
# Pi 4: 4x Cortex-A72 1.8 GHz, NEON, no int8 dot product. TFLite on its CPU runs
# MobileNet v1 (0.57 GMAC) in ~87 ms and EfficientNet-Lite0 (0.4 GMAC) in ~49 ms:
# 6.5-8 GMAC/s; int8 without SDOT gains little (x1.3 assumed).
# Pi 5: 4x Cortex-A76 2.4 GHz, NEON with SDOT: Raspberry Pi quote 2-3x the Pi 4's CPU
# speed (x2.5 assumed for fp32); SDOT int8 x2 over fp32 assumed.
UPDATE_EVERY = (1, 2, 4, 8, 16)
PI_GMACS = {"Pi 4": {"fp32": 7.0, "int8": 9.0}, "Pi 5": {"fp32": 17.5, "int8": 35.0}}


def load_run(path: Path) -> dict:
    return json.loads(path.read_text())


def benches(run: dict, kind: str) -> list[dict]:
    return [b for b in run.get("benchmarks", []) if b.get("extra_info", {}).get("kind") == kind]


def ms(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x * 1000:.{digits}f}"


def x(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


# --- machine ------------------------------------------------------------------------


def machine_section(run: dict) -> list[str]:
    m = run.get("machine_info", {})
    e = m.get("edgecount", {})
    c = run.get("commit_info", {})
    loads = [tuple(b["extra_info"][k]) for b in run.get("benchmarks", []) for k in ("loadavg_before", "loadavg_after")
             if b.get("extra_info", {}).get(k)]
    one_min = [float(v[0]) for v in loads]
    cores = f"{e.get('logical_cpus', '?')} logical"
    if e.get("physical_cores"):
        cores += f", {e['physical_cores']} physical"
    if e.get("affinity_cpus") and e.get("affinity_cpus") != e.get("logical_cpus"):
        cores += f", {e['affinity_cpus']} usable"
    versions = ", ".join(f"{k} {v}" for k, v in sorted(e.get("versions", {}).items()))
    meta = run.get("edgecount", {})
    lines = [
        f"- CPU: {e.get('cpu_model') or m.get('cpu', {}).get('brand_raw', '?')} ({cores})",
        f"- Instruction sets: {', '.join(e.get('isa', [])) or '-'}",
        f"- Software: Python {m.get('python_version', '?')}, {versions}",
        f"- Run: {run.get('datetime', '?')}, commit {c.get('id', '?')[:10]}{' (dirty tree)' if c.get('dirty') else ''}",
    ]
    if one_min:
        lines.append(f"- 1-minute load average during the run: {min(one_min):.2f} to {max(one_min):.2f} "
                     f"(at save: {' '.join(map(str, meta.get('loadavg_at_save', [])))})")
    if meta.get("session_seconds"):
        lines.append(f"- Suite run time: {meta['session_seconds'] / 60:.1f} min "
                     f"(building the variants: {sum(meta.get('build_seconds', {}).values()):.0f} s)")
    if meta.get("command"):
        lines.append(f"- Command: `{Path(meta['command'].split()[0]).name} {' '.join(meta['command'].split()[1:])}`")
    return lines


# --- tables -------------------------------------------------------------------------


def live_fps(run: dict) -> dict[tuple[str, str, int], float]:
    return {(b["extra_info"]["model"], b["extra_info"]["variant"], b["extra_info"]["threads"]):
            b["extra_info"]["frames_per_s"] for b in benches(run, "live_fps")}


def load_evals(specs: list[str]) -> dict[str, dict]:
    out = {}
    for spec in specs:
        key, _, path = spec.partition("=")
        if not path:
            sys.exit(f"bench_table: --eval wants MODEL-VARIANT=FILE.json, got {spec!r}")
        out[key] = json.loads(Path(path).read_text())
    return out


def run_evals(run: dict, quva: Path, variants: Path, threads: int | None) -> dict[str, dict]:
    """``edgecount eval QUVA --json`` of each default-model variant kept by the run
    (``--bench-keep DIR``), cached in the variant's directory."""
    from benchmarks.lib import VARIANTS
    from edgecount.counter import Counter
    from edgecount.evaluate import evaluate
    from edgecount.runtime.model import RepetitionModel

    out = {}
    for b in benches(run, "window"):
        model, variant = b["extra_info"]["model"], b["extra_info"]["variant"]
        step, hint = VARIANTS[variant]
        if model != "default" or step == "torch":  # repnet: random weights; torch: = onnx-fp32 (verified)
            continue
        folder = variants / f"{model}-{step}"
        if not (folder / "manifest.json").is_file():
            print(f"bench_table: {folder} is missing, no quva-dev score for {variant}", file=sys.stderr)
            continue
        source = (folder / "bench-source.txt").read_text() if (folder / "bench-source.txt").is_file() else ""
        cache = folder / f"eval-{quva.name}-{hint or 'default'}.json"
        if cache.is_file() and json.loads(cache.read_text()).get("bench_source") == source:
            out[f"{model}-{variant}"] = json.loads(cache.read_text())
            continue
        print(f"bench_table: edgecount eval {quva} --model {folder} ({variant})", file=sys.stderr)
        scores = evaluate(Counter(RepetitionModel(folder, threads=threads, precision=hint)), quva).to_dict()
        scores["bench_source"] = source
        cache.write_text(json.dumps(scores) + "\n")
        out[f"{model}-{variant}"] = scores
    if "default-onnx-fp32" in out:
        out.setdefault("default-torch-fp32", out["default-onnx-fp32"] | {"same_as": "onnx-fp32"})
    return out


def window_table(run: dict, evals: dict[str, dict], ops: dict[str, float] | None = None) -> list[str]:
    """``ops``: GMAC per window by model name (``repnet``, ``repnet pruned 0.5``...) adds the
    GMAC/s each variant reached here."""
    from benchmarks.lib import PRUNE_RATIO, REFERENCE_S

    fps = live_fps(run)
    lines = ["| model | variant | `edgecount convert` | window median (ms) | IQR (ms) | vs torch fp32, this run "
             f"| vs {REFERENCE_S} s | quva-dev MAE | OBO error | size (MB) | live frames/s, 1 thread | 2 threads |"
             + (" GMAC/s here |" if ops else ""),
             "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|" + ("--:|" if ops else "")]
    for b in benches(run, "window"):
        e, s = b["extra_info"], b["stats"]
        ev = evals.get(f"{e['model']}-{e['variant']}", {})
        mark = "*" if "pruned" in e["variant"] and ev.get("bench_source") else ""
        mae = f"{ev['mae']:.3f}{mark}" if "mae" in ev else ("n/a (random weights)" if e["model"] == "repnet" else "-")
        obo = f"{ev['obo_error']:.3f}" if "obo_error" in ev else ("n/a" if e["model"] == "repnet" else "-")
        f1, f2 = (fps.get((e["model"], e["variant"], t)) for t in (1, 2))
        lines.append(
            f"| {e['model']} | {e['variant']} | {e.get('convert', '')} | {ms(s['median'])} | {ms(s['iqr'])} "
            f"| {x(e.get('speedup_vs_torch_fp32'))} | {x(e.get('speedup_vs_reference'))} | {mae} | {obo} "
            f"| {e.get('size_bytes', 0) / 1e6:.1f} | {'-' if f1 is None else f'{f1:.1f}'} "
            f"| {'-' if f2 is None else f'{f2:.1f}'} |"
            + (f" {ops[e['model'] + (f' pruned {PRUNE_RATIO}' if 'pruned' in e['variant'] else '')] / s['median']:.0f} |"
               if ops else ""))
    if any("*" in line for line in lines[2:]):
        lines += ["", "\\* pruned as `edgecount convert --prune` does but not fine-tuned (the benchmark's variant): "
                  "the shipped pruned model's accuracy is that of `edgecount convert` with its fine-tune."]
    return lines


def live_table(run: dict) -> list[str]:
    per = {}
    for kind in ("live_encoder", "live_head", "live_end_to_end", "live_latency"):
        for b in benches(run, kind):
            per.setdefault((b["extra_info"]["model"], b["extra_info"]["variant"]), {})[kind] = b
    lines = ["| model | variant | encoder, 1 frame (ms) | head update, 1 frame: median / mean (ms) "
             "| end to end, 1 frame: median / mean (ms) | at 30 frames/s: arrival -> count p50 / p95 / p99 (ms), dropped |",
             "|---|---|--:|--:|--:|--:|"]
    for (model, variant), d in per.items():
        def mm(kind):
            if kind not in d:
                return "-"
            s = d[kind]["stats"]
            return f"{ms(s['median'])} / {ms(s['mean'])}"
        lat = d.get("live_latency", {}).get("extra_info", {})
        latency = "-" if not lat else (
            " / ".join("-" if lat["latency_ms"].get(p) is None else f"{lat['latency_ms'][p]:.0f}"
                       for p in ("p50", "p95", "p99")) + f", {lat.get('dropped', 0)}")
        enc = ms(d["live_encoder"]["stats"]["median"], 2) if "live_encoder" in d else "-"
        lines.append(f"| {model} | {variant} | {enc} | {mm('live_head')} | {mm('live_end_to_end')} | {latency} |")
    return lines


def memory_table(run: dict) -> list[str]:
    lines = ["| run | model | video | frames | peak RSS (MB) | wall time (s) |", "|---|---|---|--:|--:|--:|"]
    for kind, what in (("memory_count", "`edgecount count`"), ("memory_live", "`edgecount live --headless`")):
        for b in benches(run, kind):
            e = b["extra_info"]
            lines.append(f"| {what} | {e['variant']} | {e['length']} | {e['frames']} | {e['peak_rss_mb']:.0f} "
                         f"| {b['stats']['median']:.1f} |")
    return lines


# --- operation counts ---------------------------------------------------------------


def count_macs(fn) -> tuple[float, dict]:
    """GMAC of convolutions and matmuls run by ``fn`` (attention through its math path)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused MHA op is not counted
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            fn()
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    per_op = {str(k): v / 2e9 for k, v in counter.get_flop_counts().get("Global", {}).items()}
    return counter.get_total_flops() / 2e9, per_op


def windows_per_frame(num_frames: int, classes: int, live: bool, frames: int = 2048, settle: int = 256,
                      update_every: int = 1) -> float:
    """Head windows run per frame by the counting procedure in steady state: ``live``
    re-estimates the running count every ``update_every`` frames (``edgecount live``),
    otherwise windows run as they fill (``edgecount count``). Counted on a stub head."""
    import numpy as np

    from edgecount.counting import CountingConfig, StreamCounter
    from edgecount.runtime.model import WindowOutputs

    runs = [0]

    def head(windows: np.ndarray) -> WindowOutputs:
        runs[0] += len(windows)
        b = len(windows)
        return WindowOutputs(np.full((b, num_frames, classes), 1 / classes), np.full((b, num_frames), 0.5))

    counter = StreamCounter(head, np.arange(classes) + 1, num_frames, CountingConfig(), keep_frames=False)
    feature = np.zeros((1, 4), np.float32)
    start = 0
    for i in range(frames):
        if i == settle:
            start = runs[0]
        counter.add(feature)
        if live and (i + 1) % update_every == 0:
            counter.running()
    return (runs[0] - start) / (frames - settle)


def model_ops(include_pruned: bool = True) -> list[dict]:
    import torch

    from benchmarks.lib import PRUNE_RATIO, sample_frames, torch_source
    from edgecount.convert.prune import count_parameters, prune

    rows = []
    for kind in ("repnet", "default"):
        model, _ = torch_source(kind)
        models = [(kind, model)]
        if include_pruned:
            frames = torch.from_numpy(sample_frames(32 if kind == "repnet" else 64))
            models.append((f"{kind} pruned {PRUNE_RATIO}", prune(model, PRUNE_RATIO, frames).eval()))
        for name, m in models:
            cfg = m.cfg
            one = torch.zeros(1, 112, 112, 3, dtype=torch.uint8)
            encoder, _ = count_macs(lambda: m.encode(one))
            with torch.no_grad():
                feats = m.encode(one.expand(cfg.num_frames, -1, -1, -1).contiguous())
            head, per_op = count_macs(lambda: m.window_head(feats[None]))
            live_w = windows_per_frame(cfg.num_frames, cfg.period_classes, live=True)
            every = {n: windows_per_frame(cfg.num_frames, cfg.period_classes, live=True, update_every=n)
                     for n in UPDATE_EVERY}
            file_w = windows_per_frame(cfg.num_frames, cfg.period_classes, live=False)
            rows.append({"model": name, "parameters": count_parameters(m), "encoder_gmac_per_frame": encoder,
                         "head_gmac_per_window": head, "window_gmac": cfg.num_frames * encoder + head,
                         "live_windows_per_frame": live_w, "live_gmac_per_frame": encoder + live_w * head,
                         "count_windows_per_frame": file_w, "count_gmac_per_frame": encoder + file_w * head,
                         "live_windows_per_frame_update_every": every,
                         "head_ops": per_op})
    return rows


def ops_tables(rows: list[dict]) -> list[str]:
    lines = ["| model | parameters (M) | encoder, GMAC per frame | head, GMAC per window | one window (64 frames + head), GMAC "
             "| head windows per live frame | live, GMAC per frame | `edgecount count`, GMAC per frame |",
             "|---|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['parameters'] / 1e6:.2f} | {r['encoder_gmac_per_frame']:.3f} "
                     f"| {r['head_gmac_per_window']:.3f} | {r['window_gmac']:.2f} | {r['live_windows_per_frame']:.2f} "
                     f"| {r['live_gmac_per_frame']:.3f} | {r['count_gmac_per_frame']:.3f} |")
    lines += ["", "Head windows per frame and live GMAC per frame when the count is re-estimated every N frames "
              "(`edgecount live --update-every N`):", "",
              "| model | " + " | ".join(f"N = {n}" for n in UPDATE_EVERY) + " |",
              "|---|" + "--:|" * len(UPDATE_EVERY)]
    for r in rows:
        cells = [f"{w:.2f} / {r['encoder_gmac_per_frame'] + w * r['head_gmac_per_window']:.3f}"
                 for w in r["live_windows_per_frame_update_every"].values()]
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    lines += ["", "Raspberry Pi estimate = MACs / assumed sustained throughput (4 threads; "
              + "; ".join(f"{pi}: {g['fp32']:g} GMAC/s fp32, {g['int8']:g} GMAC/s int8" for pi, g in PI_GMACS.items())
              + "). Live frames/s: the encoder and the running count on one stream of MACs; "
              "`count`: frames/s of counting a file.", ""]
    header = "| model | precision |" + "".join(f" {pi}: window (s) | {pi}: live frames/s | {pi}: `count` frames/s |"
                                              for pi in PI_GMACS)
    lines += [header, "|---|---|" + "--:|" * 3 * len(PI_GMACS)]
    for r in rows:
        for precision in ("fp32", "int8"):
            cells = []
            for g in PI_GMACS.values():
                rate = g[precision]
                cells += [f"{r['window_gmac'] / rate:.2f}", f"{rate / r['live_gmac_per_frame']:.1f}",
                          f"{rate / r['count_gmac_per_frame']:.0f}"]
            lines.append(f"| {r['model']} | {precision} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Markdown benchmark tables from a pytest-benchmark JSON run.")
    parser.add_argument("run", type=Path, help="pytest-benchmark JSON (--benchmark-json or a saved run)")
    parser.add_argument("--eval", action="append", default=[], metavar="MODEL-VARIANT=FILE",
                        help="`edgecount eval DIR --json` output of a variant, e.g. default-onnx-fp32=e.json")
    parser.add_argument("--quva", type=Path, metavar="DIR",
                        help="score the default model's variants kept by the run (--variants) on this QUVA-layout "
                             "folder, e.g. ../shared/quva-dev (cached in each variant's directory)")
    parser.add_argument("--variants", type=Path, metavar="DIR", help="the run's --bench-keep directory")
    parser.add_argument("--threads", type=int, default=None, help="threads for --quva (default: all cores)")
    parser.add_argument("--ops", action="store_true", help="add operation counts and Raspberry Pi estimates")
    parser.add_argument("--ops-json", type=Path, help="also write the operation counts to this file")
    args = parser.parse_args(argv)
    run = load_run(args.run)
    evals = {}
    if args.quva:
        if not args.variants:
            parser.error("--quva needs --variants DIR (the run's --bench-keep directory)")
        evals = run_evals(run, args.quva, args.variants, args.threads)
    evals |= load_evals(args.eval)
    rows = model_ops() if args.ops else []
    if rows and args.ops_json:
        args.ops_json.write_text(json.dumps(rows, indent=1) + "\n")
    gmac = {r["model"]: r["window_gmac"] for r in rows}
    out = ["### Machine", "", *machine_section(run), "",
           "### One 64-frame window", "",
           "Encode 64 frames of the sample clip, then the head; median of the timed rounds after the warm-up, "
           "all cores. Speed-ups: > 1 is faster than the PyTorch fp32 run of the same model in the same "
           "session, and than the seed's 0.98 s (PyTorch RepNet, i5 laptop).", "",
           *window_table(run, evals, gmac or None), "",
           "### Live path", "",
           "Per frame on one thread per stage (`edgecount live` default); head update = one new embedding "
           "counted and the running count re-estimated; end to end = frame written into the ring buffer -> "
           "count updated, both stages back to back.", "",
           *live_table(run), "",
           "### Memory", "", *memory_table(run)]
    if rows:
        out += ["", "### Operations per window and per live frame", "", *ops_tables(rows)]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

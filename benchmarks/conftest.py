"""Session fixtures of the benchmark suite: each variant built once, machine facts,
options, and the ratios to the in-run PyTorch fp32 baseline and to the 0.98 s reference.

Run (see benchmarks/README.md)::

    pytest benchmarks/ --benchmark-only --benchmark-json=benchmarks/results/latest.json
    pytest benchmarks/ --benchmark-disable -m smoke        # CI: the code works, nothing timed
"""
from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `benchmarks.lib` from any working directory / import mode
    sys.path.insert(0, str(ROOT))

from benchmarks.lib import (  # noqa: E402
    BASELINE, MODELS, REFERENCE_S, VARIANTS, VariantFactory, cpu_has_bf16, loadavg, machine_info,
)

def pytest_addoption(parser):
    group = parser.getgroup("edgecount benchmarks")
    group.addoption("--bench-models", default=",".join(MODELS),
                    help=f"comma-separated models to benchmark (default: {','.join(MODELS)})")
    group.addoption("--bench-variants", default="all",
                    help=f"comma-separated variants, or all (of: {', '.join(VARIANTS)})")
    group.addoption("--bench-keep", default=None, metavar="DIR",
                    help="build the variants into DIR and keep them (a variant already there, made from the "
                         "same sources, is reused); default: a temporary directory per session")
    group.addoption("--bench-default-weights", default=None, metavar="FILE",
                    help="trained tensors of the default model (default: the shipped ones, else an untrained head)")
    group.addoption("--bench-threads", type=int, default=None,
                    help="threads for the window benchmarks (default: all cores)")
    group.addoption("--bench-rounds", type=int, default=15, help="timed rounds per window benchmark")
    group.addoption("--bench-warmup", type=float, default=2.0,
                    help="seconds of untimed runs before timing a window (torch: 4x this)")
    group.addoption("--bench-live-frames", type=int, default=300,
                    help="frames of each sustained live run (frames/s)")
    group.addoption("--bench-live-all", action="store_true",
                    help="run the live benchmarks for every variant of the faithful RepNet too")
    group.addoption("--bench-video-seconds", type=float, default=180.0,
                    help="length of the long video of the memory benchmarks")


def pytest_configure(config):
    config.addinivalue_line("markers", "smoke: cheap benchmarks run in CI with --benchmark-disable")
    config._edgecount_bench_start = time.time()


@dataclass
class BenchConfig:
    models: list[str]
    variants: list[str]
    threads: int
    rounds: int
    warmup_s: float
    live_frames: int
    video_seconds: float
    bf16: bool

    def warmup(self, variant: str) -> float:
        return self.warmup_s * (4 if variant.endswith(BASELINE) else 1)


def _selected(config) -> tuple[list[str], list[str]]:
    models = [m for m in config.getoption("--bench-models").split(",") if m]
    spec = config.getoption("--bench-variants")
    variants = list(VARIANTS) if spec == "all" else [v for v in spec.split(",") if v]
    for name, allowed in (("model", MODELS), ("variant", VARIANTS)):
        bad = [x for x in (models if name == "model" else variants) if x not in allowed]
        if bad:
            raise pytest.UsageError(f"unknown benchmark {name}(s) {', '.join(bad)} (choose from {', '.join(allowed)})")
    return models, variants


def model_variant_params(config, smoke: set, wanted=None) -> list:
    """(model, variant) pairs in run order: the PyTorch fp32 baseline first for each
    model, the faithful RepNet first (its baseline is the one users compare with)."""
    models, selected = _selected(config)
    params = []
    for model in models:
        for variant in selected:
            if wanted is not None and not wanted(model, variant):
                continue
            marks = [pytest.mark.smoke] if (model, variant) in smoke else []
            params.append(pytest.param(model, variant, id=f"{model}-{variant}", marks=marks))
    return params


def pytest_generate_tests(metafunc):
    if {"model", "variant"} <= set(metafunc.fixturenames):
        smoke = getattr(metafunc.module, "SMOKE", set())
        keep = getattr(metafunc.module, "params_filter", None)
        wanted = None if keep is None else (
            lambda m, v: keep(metafunc.config, metafunc.function.__name__, m, v))
        metafunc.parametrize(("model", "variant"), model_variant_params(metafunc.config, smoke, wanted))


@pytest.fixture(scope="session")
def bench(pytestconfig) -> BenchConfig:
    import os

    models, variants = _selected(pytestconfig)
    return BenchConfig(models, variants, pytestconfig.getoption("--bench-threads") or os.cpu_count() or 1,
                       pytestconfig.getoption("--bench-rounds"), pytestconfig.getoption("--bench-warmup"),
                       pytestconfig.getoption("--bench-live-frames"),
                       pytestconfig.getoption("--bench-video-seconds"), cpu_has_bf16())


@pytest.fixture(scope="session")
def factory(pytestconfig, bench):
    """Builds each (model, variant) once per session, with the converter's own functions."""
    keep = pytestconfig.getoption("--bench-keep")
    with tempfile.TemporaryDirectory(prefix="edgecount-bench-") as tmp:
        workdir = Path(keep) if keep else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
        log = (lambda s: reporter.write_line(f"[bench] {s}")) if reporter else (lambda s: None)
        weights = pytestconfig.getoption("--bench-default-weights")
        factory = VariantFactory(workdir, bench.threads, log, {"default": Path(weights) if weights else None})
        pytestconfig._edgecount_factory = factory
        yield factory


@pytest.fixture
def built(factory, bench, model, variant):
    """The variant, built (or a skip when this CPU cannot run it)."""
    if VARIANTS[variant][1] == "bf16" and not bench.bf16:
        pytest.skip("this CPU has no native bf16")
    return factory.get(model, variant)


@pytest.fixture(scope="session")
def medians() -> dict:
    """Median seconds per (kind, model, variant) measured so far in this session."""
    return {}


def record(benchmark, medians: dict, kind: str, model: str, variant: str, **extra) -> None:
    """Common ``extra_info`` of a benchmark, and its median for the ratios of later ones."""
    benchmark.extra_info.update({"kind": kind, "model": model, "variant": variant,
                                 "loadavg_after": loadavg()} | extra)
    stats = getattr(benchmark, "stats", None)
    if stats is None or benchmark.disabled:
        return
    median = stats.stats.median
    medians[(kind, model, variant)] = median
    if kind == "window":
        benchmark.extra_info.update(window_ratios(median, medians.get((kind, model, BASELINE)),
                                                  medians.get((kind, "repnet", BASELINE))))


def window_ratios(median: float, baseline: float | None, repnet_baseline: float | None) -> dict:
    """Speed-ups (> 1: faster) against the model's own torch fp32 run, the faithful RepNet's
    torch fp32 run of the same session, and the fixed 0.98 s reference."""
    out = {"speedup_vs_reference": round(REFERENCE_S / median, 3), "reference_s": REFERENCE_S}
    if baseline:
        out |= {"speedup_vs_torch_fp32": round(baseline / median, 3), "torch_fp32_median_s": baseline}
    if repnet_baseline:
        out |= {"speedup_vs_repnet_torch_fp32": round(repnet_baseline / median, 3),
                "repnet_torch_fp32_median_s": repnet_baseline}
    return out


@pytest.fixture
def recorder(benchmark, medians):
    """``recorder(kind, model, variant, **extra)``: see ``record``."""
    return lambda kind, model, variant, **extra: record(benchmark, medians, kind, model, variant, **extra)


# --- pytest-benchmark hooks ---------------------------------------------------------


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["edgecount"] = _machine()


_MACHINE: dict = {}


def _machine() -> dict:
    if not _MACHINE:
        _MACHINE.update(machine_info())
    return _MACHINE


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Ratios from the saved medians (the baselines of this run), whatever the test order."""
    rows = output_json.get("benchmarks", [])
    base = {(b["extra_info"].get("model"), b["extra_info"].get("variant")): b["stats"]["median"]
            for b in rows if b.get("extra_info", {}).get("kind") == "window"}
    for b in rows:
        info = b.get("extra_info", {})
        if info.get("kind") == "window":
            info.update(window_ratios(b["stats"]["median"], base.get((info["model"], BASELINE)),
                                      base.get(("repnet", BASELINE))))
    start = getattr(config, "_edgecount_bench_start", None)
    output_json["edgecount"] = {"reference_s": REFERENCE_S, "baseline_variant": BASELINE,
                                "loadavg_at_save": loadavg(), "command": " ".join(["pytest", *sys.argv[1:]]),
                                "session_seconds": round(time.time() - start, 1) if start else None}
    factory = getattr(config, "_edgecount_factory", None)
    if factory is not None:
        output_json["edgecount"]["build_seconds"] = factory.build_seconds


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config):
    """One line per window benchmark: median and speed-ups (only when timed)."""
    session = getattr(config, "_benchmarksession", None)
    rows = [b for b in getattr(session, "benchmarks", []) if getattr(b, "extra_info", {}).get("kind") == "window"]
    if not rows or getattr(session, "disabled", True):
        return
    base = {(b.extra_info["model"], b.extra_info["variant"]): b.stats.median for b in rows}
    terminalreporter.write_sep("-", f"window latency vs torch fp32 (this run) and the {REFERENCE_S} s reference")
    for b in rows:
        info = b.extra_info
        r = window_ratios(b.stats.median, base.get((info["model"], BASELINE)), base.get(("repnet", BASELINE)))
        terminalreporter.write_line(
            f"{info['model']:<8} {info['variant']:<22} {b.stats.median * 1000:9.1f} ms  "
            f"x{r.get('speedup_vs_torch_fp32', float('nan')):6.2f} vs torch fp32   "
            f"x{r['speedup_vs_reference']:6.2f} vs {REFERENCE_S} s")

"""The conversion report: one row per variant, measured against the PyTorch original."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgecount.convert.verify import Agreement


@dataclass
class Row:
    """One variant: its size, parameters, window latency and agreement with the original."""

    variant: str
    size_bytes: int
    parameters: int
    latency: float  # seconds for one window: encode its frames, run the head
    agreement: Agreement | None = None  # None for the original itself

    def to_dict(self, baseline: float) -> dict:
        return {"variant": self.variant, "size_mb": round(self.size_bytes / 1e6, 2), "parameters": self.parameters,
                "window_seconds": round(self.latency, 4), "speedup": round(baseline / self.latency, 2),
                "agreement": None if self.agreement is None else self.agreement.to_dict()}


def folder_size(files: list[Path]) -> int:
    return sum(f.stat().st_size for f in files if f.is_file())


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table(rows: list[Row]) -> str:
    """The rows as a fixed-width text table; speed-up is against the first row."""
    base = rows[0].latency
    lines = [f"{'variant':<26} {'size':>8} {'params':>7} {'window':>8} {'speedup':>7} "
             f"{'|d period|':>10} {'|d periodic|':>12} {'argmax=':>7} {'centred cos mean/min':>20} {'|d count|':>9}"]
    for r in rows:
        a = r.agreement
        cos = "-" if a is None or a.feature_cos_mean is None else f"{a.feature_cos_mean:.4f}/{a.feature_cos_min:.4f}"
        lines.append(
            f"{r.variant:<26} {r.size_bytes / 1e6:>6.1f}MB {r.parameters / 1e6:>6.2f}M {r.latency:>7.3f}s "
            f"{base / r.latency:>6.1f}x {_cell(a and a.period_logits_max_diff, '.4f'):>10} "
            f"{_cell(a and a.periodicity_max_diff, '.4f'):>12} {_cell(a and a.period_argmax_agree, '.3f'):>7} "
            f"{cos:>20} {_cell(a and a.count_max_diff, '.2f'):>9}")
    return "\n".join(lines)

"""What ``edgecount convert`` was asked to do, checked before anything heavy is imported."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgecount.errors import EdgecountError

MODELS = ("default", "repnet")
FORMATS = ("onnx", "openvino")
# int8-bf16: INT8, with the layers kept out of INT8 run in bf16 (OpenVINO on CPUs that have it).
PRECISIONS = ("fp32", "bf16", "int8", "int8-bf16")
MAX_PRUNE = 0.9


@dataclass
class ConvertOptions:
    """The arguments of one conversion."""

    out: Path
    format: str = "onnx"
    precision: str = "fp32"
    model: str = "default"
    weights: Path | None = None
    prune: float | None = None
    calibration: Path | None = None
    force: bool = False
    threads: int | None = None
    finetune_seconds: float = 60.0

    def check(self) -> None:
        """Raise an EdgecountError naming the first bad argument."""
        if self.model not in MODELS:
            raise EdgecountError(f"unknown model {self.model!r} (choose from {', '.join(MODELS)})")
        if self.format not in FORMATS:
            raise EdgecountError(f"unknown format {self.format!r} (choose from {', '.join(FORMATS)})")
        if self.precision not in PRECISIONS:
            raise EdgecountError(f"unknown precision {self.precision!r} (choose from {', '.join(PRECISIONS)})")
        if "bf16" in self.precision and self.format != "openvino":
            raise EdgecountError(f"precision {self.precision} needs --format openvino")
        if self.prune is not None and not 0 < self.prune <= MAX_PRUNE:
            raise EdgecountError(f"prune ratio {self.prune:g} is outside (0, {MAX_PRUNE}]")
        if self.threads is not None and self.threads < 1:
            raise EdgecountError(f"--threads must be at least 1, not {self.threads}")
        if self.finetune_seconds < 0:
            raise EdgecountError("--finetune-seconds must not be negative")
        if self.weights is not None and not Path(self.weights).is_file():
            raise EdgecountError(f"weights file {self.weights} does not exist or is not a file")
        out = Path(self.out)
        if out.exists() and not out.is_dir():
            raise EdgecountError(f"output {out} exists and is not a directory")
        if out.exists() and not self.force:
            raise EdgecountError(f"output directory {out} exists (use --force to overwrite its model files)")

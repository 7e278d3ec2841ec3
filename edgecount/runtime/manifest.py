"""The manifest of a model directory, checked before anything is loaded."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgecount import __version__
from edgecount.errors import EdgecountError

MANIFEST = "manifest.json"
FORMATS = {"onnx": ("encoder.onnx", "head.onnx"), "openvino": ("encoder.xml", "head.xml")}
PRECISIONS = ("fp32", "bf16", "int8")


@dataclass
class Manifest:
    """What a runtime needs to know about a model directory."""

    name: str
    format: str
    precision: str
    frame_size: int
    num_frames: int
    period_classes: int
    period_offset: int
    feature_shape: list[int]
    version: str = __version__
    extra: dict = field(default_factory=dict)

    def files(self) -> tuple[str, str]:
        """The encoder and head files of this format."""
        return FORMATS[self.format]

    def save(self, folder: Path) -> None:
        (folder / MANIFEST).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> "Manifest":
        """Read and check ``folder/manifest.json``; any problem is an EdgecountError."""
        folder = Path(folder)
        if not folder.is_dir():
            raise EdgecountError(f"model directory {folder} does not exist")
        path = folder / MANIFEST
        try:
            data = json.loads(path.read_text())
            manifest = cls(**data)
        except FileNotFoundError:
            raise EdgecountError(f"{folder} is not a model directory (no {MANIFEST})") from None
        except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as exc:
            raise EdgecountError(f"{path} is not a valid edgecount manifest ({exc})") from None
        manifest.check(folder)
        return manifest

    def check(self, folder: Path) -> None:
        """Refuse a manifest whose fields or files do not fit this runtime."""
        if self.format not in FORMATS:
            raise EdgecountError(f"{folder}: unknown model format {self.format!r}")
        if self.precision not in PRECISIONS:
            raise EdgecountError(f"{folder}: unknown precision {self.precision!r}")
        if self.num_frames < 2 or self.period_classes < 2 or self.frame_size < 16:
            raise EdgecountError(f"{folder}: manifest sizes are out of range")
        if self.version.split(".")[0] != __version__.split(".")[0]:
            raise EdgecountError(f"{folder}: made by edgecount {self.version}, this is {__version__}")
        for name in self.files():
            if not (folder / name).is_file():
                raise EdgecountError(f"{folder}: {name} is missing")

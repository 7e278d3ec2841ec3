"""Inference sessions over one model file: ONNX Runtime or OpenVINO."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from edgecount.errors import EdgecountError


class Session(Protocol):
    """One model file, compiled for the CPU: one input array in, a list of arrays out."""

    def run(self, x: np.ndarray) -> list[np.ndarray]: ...


def default_threads() -> int:
    return int(os.environ.get("EDGECOUNT_THREADS", "0")) or (os.cpu_count() or 1)


class OrtSession:
    """ONNX Runtime on the CPU."""

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EdgecountError(f"cannot load {path}: {str(exc).splitlines()[0]}") from None
        self.input = self.session.get_inputs()[0].name

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input: x})


class OpenVINOSession:
    """OpenVINO on the CPU; ``precision`` sets the inference precision hint (f32 or bf16)."""

    def __init__(self, path: Path, threads: int | None = None, precision: str | None = None):
        try:
            import openvino as ov
        except ImportError:
            raise EdgecountError("this model needs OpenVINO: pip install openvino") from None
        config = {"INFERENCE_NUM_THREADS": threads or default_threads()}
        if precision:
            config["INFERENCE_PRECISION_HINT"] = precision
        try:
            self.model = ov.Core().compile_model(str(path), "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError with long texts
            raise EdgecountError(f"cannot load {path}: {str(exc).splitlines()[0]}") from None
        self.request = self.model.create_infer_request()

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        result = self.request.infer([x])
        return [result[out] for out in self.model.outputs]


def open_session(path: Path, fmt: str, threads: int | None = None, precision: str | None = None) -> Session:
    """A session for ``path`` of format ``onnx`` or ``openvino``."""
    if fmt == "onnx":
        return OrtSession(path, threads)
    return OpenVINOSession(path, threads, precision)

"""Torch-free inference: model directories run by ONNX Runtime or OpenVINO."""

"""``edgecount convert``: model directories for ONNX Runtime and OpenVINO (fp32, bf16,
INT8, pruned), verified against the PyTorch original. Needs the ``convert`` extra;
nothing here is imported by ``edgecount count``."""

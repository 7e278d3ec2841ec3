"""PyTorch models (training and conversion only; counting runs without torch)."""

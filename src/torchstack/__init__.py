"""torchstack: build, check and promote a matrix of layered PyTorch + CUDA images."""

__version__ = "0.1.0"

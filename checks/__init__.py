"""In-container check suite for torchstack images.

Run inside a built image with the image's own Python::

    python -m checks --json [--gpu required|auto|off] [--expect FILE] [--only ID[,ID]]

The package imports only the standard library, torch (plus torchvision, torchaudio,
transformers, cv2, PIL and numpy inside the layer checks that need them) and, when present,
pynvml from nvidia-ml-py. It never imports torchstack: the host mounts this directory
read-only into the container, so nothing here may write next to itself.

Supported Pythons: 3.9 and newer (every module uses postponed annotations).
"""

# 1.1.0: compile, train and audio checks; node and image_digest in the report; --frame.
SUITE_VERSION = "1.1.0"

__all__ = ["SUITE_VERSION"]

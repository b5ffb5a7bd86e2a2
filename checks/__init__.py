"""In-container check suite for torchstack images.

Run inside a built image with the image's own Python::

    python -m checks --json [--gpu required|auto|off] [--expect FILE] [--only ID[,ID]]

The package imports only the standard library, torch (plus torchvision, torchaudio,
transformers, cv2, PIL and numpy inside the layer checks that need them) and, when present,
pynvml from nvidia-ml-py. It never imports torchstack: the host mounts this directory
read-only into the container, so nothing here may write next to itself.

Supported Pythons: 3.9 and newer (every module uses postponed annotations).
"""

import os

# 1.1.0: compile, train and audio checks; node and image_digest in the report; --frame.
SUITE_VERSION = "1.1.0"

# Images and Jobs import this package as `checks`; the host, from torchstack's wheel, as
# `torchstack.checks`. Workers the suite starts import it under the same name, from the folder
# on sys.path that holds it.
PACKAGE = __name__
SEARCH_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__),
                                           *[os.pardir] * (PACKAGE.count(".") + 1)))

__all__ = ["PACKAGE", "SEARCH_ROOT", "SUITE_VERSION"]

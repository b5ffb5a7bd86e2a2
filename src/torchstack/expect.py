"""What the in-container suite is told to expect: the `--expect` JSON for one image.

Used by `torchstack check` (mounted into the container) and `torchstack k8s` (a ConfigMap).
"""

from __future__ import annotations

from typing import Any

from torchstack.compat import cudnn_as_int
from torchstack.model import ImageSpec, Matrix


def expected_versions(spec: ImageSpec) -> dict[str, Any]:
    """The versions the image must report from inside; None where nothing is asked."""
    return {
        "torch": spec.expected_torch_version,
        "cuda": spec.cuda,
        "cudnn": cudnn_as_int(spec.cudnn) if spec.cudnn else None,
        "nccl": spec.nccl,
        "python": spec.python,
        "torchvision": spec.torchvision,
        "torchaudio": spec.torchaudio,
    }


def expect_for(spec: ImageSpec, matrix: Matrix) -> dict[str, Any]:
    return {
        "image_id": spec.id,
        "layers": list(spec.layers),
        "checks": list(spec.checks),
        "expected": expected_versions(spec),
        "driver_min": spec.driver_min,
        "thresholds": matrix.thresholds,
    }

"""What the in-container suite is told to expect: the `--expect` JSON for one image.

Used by `torchstack check` (mounted into the container) and `torchstack k8s` (a ConfigMap).
The suite keeps no facts of its own about pairings or cuDNN's number encoding: they come from
the compat data through here (checks/expect.py documents the keys).
"""

from __future__ import annotations

import dataclasses

from torchstack.config.compat import COMPANIONS, CompatError, cudnn_as_int, load_compat
from torchstack.config.contract import contract_for
from torchstack.config.model import ImageSpec, Matrix
from torchstack.workspace.json_types import JSON, JSONObject


def expected_versions(spec: ImageSpec) -> JSONObject:
    """The versions the image must report from inside (keys as in the suite's facts); None
    where nothing is asked."""
    return {
        "torch": spec.expected_torch_version,
        "cuda": spec.cuda,
        "cudnn": cudnn_as_int(spec.cudnn) if spec.cudnn else None,
        "nccl": spec.nccl,
        "python": spec.python,
        "torchvision": spec.torchvision,
        "torchaudio": spec.torchaudio,
        "torchcodec": spec.torchcodec,
    }


def paired_versions(torch: str) -> dict[str, str]:
    """Each companion's release paired with this torch; one that has none recorded is left out."""
    paired = {}
    compat = load_compat()
    for name in COMPANIONS:
        try:
            paired[name] = compat.paired_version(torch, name)
        except CompatError:
            continue
    return paired


def _arch_flags(spec: ImageSpec) -> list[JSON] | None:
    try:
        flags = contract_for(spec.torch, spec.cuda).arch_flags()
    except CompatError:
        return None
    return None if flags is None else list(flags)


def expect_for(spec: ImageSpec, matrix: Matrix, image_digest: str | None = None) -> JSONObject:
    """The expect document; `image_digest` ("sha256:...") when the image's registry manifest
    digest is known (a pushed candidate), copied by the suite into its report."""
    paired: JSONObject = dict(paired_versions(spec.torch))
    expected: JSONObject = {
        **expected_versions(spec),
        "cudnn_version": spec.cudnn,  # dotted, so the suite need not decode 91002 itself
        "paired": paired,
        # What torch._C._cuda_getArchFlags() must print inside the image (None: not recorded).
        "arch_flags": _arch_flags(spec),
    }
    document: JSONObject = {
        "image_id": spec.id,
        "layers": list(spec.layers),
        "checks": list(spec.checks),
        "expected": expected,
        "driver_min": spec.driver_min,
        "thresholds": dataclasses.asdict(matrix.thresholds),
    }
    if image_digest is not None:
        document["image_digest"] = image_digest
    return document

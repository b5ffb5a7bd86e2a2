"""cuda: CUDA works, torch sees every GPU it should, and each one computes exactly.

The expected device count comes from an explicit CUDA_VISIBLE_DEVICES list, else an explicit
NVIDIA_VISIBLE_DEVICES list, else NVML's count (the devices mounted into the container).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from ..nvml import nvml_device_count
from ..result import Metric, Outcome, failed, passed
from ..spec import CheckContext, CheckSpec

_INDEX = re.compile(r"^\d+$")
_UUID = re.compile(r"^(GPU|MIG)-[0-9A-Za-z/\-]+$")
SUM_N = 1 << 20  # 1..N summed in int64: exact, and large enough to launch many blocks


def cuda_visible_count(value: str) -> int:
    """Devices a CUDA_VISIBLE_DEVICES value exposes: CUDA stops at the first invalid entry,
    so "-1" or "" hides every GPU and "0,1,x,2" exposes two."""
    count = 0
    for entry in value.split(","):
        entry = entry.strip()
        if not (_INDEX.match(entry) or _UUID.match(entry)):
            break
        count += 1
    return count


def nvidia_visible_count(value: str) -> int | None:
    """Count of an explicit NVIDIA_VISIBLE_DEVICES list; None for "all", "void" or empty,
    which do not say how many devices the runtime mounted."""
    text = value.strip().lower()
    if text in ("", "all", "void"):
        return None
    if text == "none":
        return 0
    return len([entry for entry in text.split(",") if entry.strip()])


def expected_visible(env: Mapping[str, str], nvml_count: int | None) -> tuple[int | None, str]:
    """(expected device count, where it came from); (None, ...) when nothing says."""
    if "CUDA_VISIBLE_DEVICES" in env:
        return cuda_visible_count(env["CUDA_VISIBLE_DEVICES"]), "CUDA_VISIBLE_DEVICES"
    if "NVIDIA_VISIBLE_DEVICES" in env:
        count = nvidia_visible_count(env["NVIDIA_VISIBLE_DEVICES"])
        if count is not None:
            return count, "NVIDIA_VISIBLE_DEVICES"
    if nvml_count is not None:
        return nvml_count, "NVML"
    return None, "nothing (no explicit device list, no NVML)"


def run(ctx: CheckContext) -> Outcome:
    import torch

    if not torch.cuda.is_available():
        return failed(
            "torch.cuda.is_available() is False in the check process although a GPU was "
            "seen at start; check the driver and NVIDIA_VISIBLE_DEVICES"
        )
    count = torch.cuda.device_count()
    want, source = expected_visible(os.environ, nvml_device_count())
    metrics = {"device_count": Metric(count, "devices")}
    problems = []
    if want is not None:
        metrics["expected_device_count"] = Metric(want, "devices")
        if count != want:
            problems.append(
                f"torch sees {count} GPU(s) but {source} says {want}; check "
                "CUDA_VISIBLE_DEVICES/NVIDIA_VISIBLE_DEVICES and the --gpus flag"
            )
    expected_sum = SUM_N * (SUM_N + 1) // 2
    for index in range(count):
        device = torch.device("cuda", index)
        got = int(torch.arange(1, SUM_N + 1, device=device, dtype=torch.int64).sum().item())
        if got != expected_sum:
            problems.append(f"cuda:{index} summed 1..{SUM_N} to {got}, not {expected_sum}")
        x = torch.arange(16.0, device=device).reshape(4, 4)
        identity = torch.eye(4, device=device)
        if not torch.equal(identity @ x, x):
            problems.append(f"cuda:{index} computed I @ x != x; the GPU or its driver is faulty")
    if problems:
        return failed("; ".join(problems))
    origin = f"matches {source}" if want is not None else f"expected count unknown: {source}"
    return passed(f"{count} GPU(s) usable ({origin}); exact sums on every device", metrics)


CHECK = CheckSpec(
    id="cuda",
    layers=("torch",),
    needs_gpu=True,
    timeout_s=120,
    run=run,
    summary="CUDA available, device count as expected, exact kernel results on every GPU",
)

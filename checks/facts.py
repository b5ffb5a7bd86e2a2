"""Facts read from inside the image; the host tags images from these, so they are always
gathered, each one guarded (a missing library gives null, never a crash).

Static facts (versions) are read in the parent without initialising CUDA; GPU facts
(device names, capability, memory) come from an isolated child, and not at all under --gpu off.
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Callable
from typing import Any, TypeVar

from .isolate import run_isolated
from .nvml import driver_version, proc_driver_version
from .spec import GpuMode, log
from .versioning import nccl_string

T = TypeVar("T")
GPU_FACTS_TIMEOUT_S = 60.0


def _guard(read: Callable[[], T]) -> T | None:
    try:
        return read()
    except Exception:
        return None


def dist_version(name: str) -> str | None:
    """Installed distribution version without importing the package (cheap, side-effect free)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def static_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {
        "torch": None,
        "cuda": None,
        "cudnn": None,
        "nccl": None,
        "python": platform.python_version(),
        "torchvision": dist_version("torchvision"),
        "torchaudio": dist_version("torchaudio"),
        "torchcodec": dist_version("torchcodec"),
        "gpus": [],
        "driver": None,
    }
    try:
        import torch
    except Exception as exc:  # a broken torch is reported by the versions check
        log(f"facts: import torch failed: {type(exc).__name__}: {exc}")
        return facts
    facts["torch"] = str(torch.__version__)
    facts["cuda"] = torch.version.cuda
    # Neither call creates a CUDA context: cudnnGetVersion and ncclGetVersion are pure queries.
    facts["cudnn"] = _guard(torch.backends.cudnn.version)
    facts["nccl"] = _guard(lambda: nccl_string(torch.cuda.nccl.version()))  # type: ignore[no-untyped-call]
    return facts


def gpu_facts() -> dict[str, Any]:
    """Runs in a child: may initialise CUDA."""
    import torch

    gpus: list[dict[str, Any]] = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            gpus.append(
                {
                    "index": index,
                    "name": props.name,
                    "capability": f"{props.major}.{props.minor}",
                    "memory_bytes": int(props.total_memory),
                }
            )
    return {"gpus": gpus, "driver": driver_version()}


def gather_facts(gpu_mode: GpuMode) -> tuple[dict[str, Any], bool, str | None]:
    """All facts, whether a usable GPU is present, and why GPU facts are missing if they
    could not be read (a hung or crashing CUDA init must not pass as "no GPU")."""
    facts = static_facts()
    if gpu_mode == "off" or facts["torch"] is None:
        facts["driver"] = proc_driver_version()  # a file read; touches no GPU
        return facts, False, None
    report = run_isolated(gpu_facts, GPU_FACTS_TIMEOUT_S)
    if report.kind == "returned" and isinstance(report.value, dict):
        facts.update(report.value)
        return facts, bool(facts["gpus"]), None
    facts["driver"] = proc_driver_version()
    problem = (
        f"reading GPU facts (torch.cuda device properties) failed: {report.error or report.kind}; "
        "the CUDA driver or a GPU may be hung - check nvidia-smi on the host"
    )
    log(f"facts: {problem}")
    return facts, False, problem

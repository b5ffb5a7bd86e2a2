"""Optional NVML access (pynvml, shipped by nvidia-ml-py) and the driver-version fallbacks.

pynvml is optional: every helper returns None when the module or the driver library is
missing, and callers say so instead of failing.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from typing import Any

_PROC_VERSION = "/proc/driver/nvidia/version"
# "NVRM version: NVIDIA UNIX x86_64 Kernel Module  570.86.15  Tue Jan ..." (the open kernel
# module says "... Open Kernel Module for x86_64  570.86.15 ...").
_NVRM = re.compile(r"NVRM version:.*?Kernel Module.*?\s(\d+\.\d+(?:\.\d+)?)\s")


def load_pynvml() -> Any | None:
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        return None


def _text(value: object) -> str:
    # Old nvidia-ml-py returned bytes, newer returns str.
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_proc_driver(text: str) -> str | None:
    match = _NVRM.search(text)
    return match.group(1) if match else None


def proc_driver_version(path: str = _PROC_VERSION) -> str | None:
    """Driver version from the kernel module, readable without touching a GPU."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return parse_proc_driver(handle.read())
    except OSError:
        return None


class Nvml:
    """A tiny initialised NVML session: `with Nvml.open() as nvml: ...` (None if unavailable)."""

    def __init__(self, module: Any) -> None:
        self.module = module

    @classmethod
    def open(cls) -> Nvml | None:
        module = load_pynvml()
        if module is None:
            return None
        try:
            module.nvmlInit()
        except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            return None
        return cls(module)

    def __enter__(self) -> Nvml:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.module.nvmlShutdown()

    def driver_version(self) -> str:
        return _text(self.module.nvmlSystemGetDriverVersion())

    def device_count(self) -> int:
        return int(self.module.nvmlDeviceGetCount())

    def handle(self, index: int) -> Any:
        return self.module.nvmlDeviceGetHandleByIndex(index)

    def name(self, handle: Any) -> str:
        return _text(self.module.nvmlDeviceGetName(handle))

    def memory_total(self, handle: Any) -> int:
        return int(self.module.nvmlDeviceGetMemoryInfo(handle).total)

    def uncorrected_ecc(self, handle: Any) -> int | None:
        """Volatile (since driver load) uncorrected ECC errors; None when not supported."""
        m = self.module
        try:
            return int(
                m.nvmlDeviceGetTotalEccErrors(
                    handle, m.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, m.NVML_VOLATILE_ECC
                )
            )
        except m.NVMLError:
            return None


def driver_version() -> str | None:
    """NVML first, then the kernel module's /proc file."""
    nvml = Nvml.open()
    if nvml is not None:
        with nvml:
            try:
                return nvml.driver_version()
            except Exception:
                pass
    return proc_driver_version()


def nvml_device_count() -> int | None:
    nvml = Nvml.open()
    if nvml is None:
        return None
    with nvml:
        try:
            return nvml.device_count()
        except Exception:
            return None

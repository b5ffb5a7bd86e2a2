"""Where an image can run: the driver floor and the GPU architectures its torch carries code for.

One contract per torch + CUDA variant, read from the compat data. It feeds the expect file
(the `versions` check compares the arch flags read inside the image, the `driver` check judges
the GPUs against it), `plan --json`, check records and the node affinity of every Kubernetes
manifest. It is never written into image labels: a label is an input of the image hash.

Compatibility rules (NVIDIA's CUDA compatibility guide): SASS built for sm_XY runs on GPUs of
the same major X at minor >= Y (sm_80 code runs on 8.6 and 8.9, sm_86 code not on 8.0); PTX
for compute_XY is JIT-compiled on any GPU at capability >= X.Y, newer majors included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypedDict

from torchstack.config.compat import CompatError, load_compat

_CAPABILITY = re.compile(r"(?P<major>[0-9]{1,2})\.(?P<minor>[0-9])")
_DRIVER = re.compile(r"[0-9]{1,4}(\.[0-9]{1,4}){0,2}")

Capability = tuple[int, int]


class ContractJson(TypedDict):
    """A contract as check records and `plan --json` carry it."""

    cuda: str
    driver_min: str
    arch: list[str] | None  # "8.0", ...: the capabilities with compiled code
    ptx: str | None
    arch_flags: list[str] | None
    arch_sources: list[str]


@dataclass(frozen=True)
class Contract:
    torch: str
    cuda: str
    driver_min: str  # "570.26"
    sass: tuple[Capability, ...] | None  # None: the arch list is not recorded for this variant
    ptx: Capability | None  # the capability also shipped as PTX, if any
    sources: tuple[str, ...]  # where the arch list comes from (keys of compat sources)

    @property
    def driver_parts(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.driver_min.split("."))

    def arch_flags(self) -> tuple[str, ...] | None:
        """What `torch._C._cuda_getArchFlags()` prints inside the image, as a sorted set."""
        if self.sass is None:
            return None
        flags = [f"sm_{ma}{mi}" for ma, mi in self.sass]
        if self.ptx is not None:
            flags.append(f"compute_{self.ptx[0]}{self.ptx[1]}")
        return tuple(flags)

    def admits_gpu(self, capability: Capability) -> bool | None:
        """Whether a GPU of this capability can run the image's kernels; None: not recorded."""
        if self.sass is None:
            return None
        major, minor = capability
        if any(ma == major and mi <= minor for ma, mi in self.sass):
            return True
        return self.ptx is not None and capability >= self.ptx

    def admits_driver(self, version: str) -> bool:
        """Numeric comparison, part by part: 570.124 admits 570.26, 570.20 does not."""
        parts = tuple(int(p) for p in version.split(".") if p.isdigit())
        return parts >= self.driver_parts

    def to_json(self) -> ContractJson:
        return {
            "cuda": self.cuda,
            "driver_min": self.driver_min,
            "arch": None if self.sass is None else [f"{ma}.{mi}" for ma, mi in self.sass],
            "ptx": None if self.ptx is None else f"{self.ptx[0]}.{self.ptx[1]}",
            "arch_flags": None if self.sass is None else list(self.arch_flags() or ()),
            "arch_sources": list(self.sources),
        }


def contract_for(torch: str, cuda: str) -> Contract:
    """The contract of the torch + CUDA variant (CompatError when the compat data lacks it)."""
    compat = load_compat()
    variant = compat.variant(torch, cuda)
    driver_min = compat.driver(cuda).driver_min
    if not _DRIVER.fullmatch(driver_min):
        raise CompatError(f"driver_min {driver_min!r} of CUDA {cuda} is not a driver version")
    sass: tuple[Capability, ...] | None = None
    ptx: Capability | None = None
    if variant.arch is not None:
        entries = [a for a in variant.arch if a != "PTX"]
        parsed = []
        for entry in entries:
            match = _CAPABILITY.fullmatch(entry)
            if match is None:
                raise CompatError(f"torch {torch} {cuda}: arch {entry!r} is not MAJOR.MINOR")
            parsed.append((int(match["major"]), int(match["minor"])))
        sass = tuple(sorted(set(parsed)))
        if "PTX" in variant.arch:
            ptx = max(sass)
    return Contract(torch, cuda, driver_min, sass, ptx, variant.arch_sources)

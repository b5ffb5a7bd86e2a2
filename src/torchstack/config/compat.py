"""What exists: torch releases, their CUDA variants, Python ranges, library pins, drivers.

The data lives in `data/compat.yaml`, one row per torch series, each citing its sources.
Lookups raise `CompatError` with a sentence that says what IS supported; the matrix loader
adds the file and line.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import NotRequired, TypedDict

import yaml

# The packages released in step with torch (compat data pairs each with its torch release).
COMPANIONS = ("torchvision", "torchaudio", "torchcodec")

# The shape of data/compat.yaml (tests/unit/config/test_compat.py reads every row) ----------
class VariantRow(TypedDict, total=False):
    """A CUDA variant's own values, where they differ from its series' row."""

    experimental: bool
    cudnn: str
    nccl: str
    arch: list[str]
    arch_source: list[str]


class SeriesRow(TypedDict):
    released: dict[str, dict[str, str]]  # torch version -> torchvision/torchaudio pins
    cuda: dict[str, VariantRow | None]
    cudnn: str | None
    nccl: str | None
    python: list[str]  # [min, max]
    torchcodec: NotRequired[str | None]
    pypi_default: str
    source: list[str]


class DriverRow(TypedDict):
    driver_min: str
    compat_floor: str
    source: list[str]


class CompatData(TypedDict):
    sources: dict[str, str]
    torch: dict[str, SeriesRow]
    cuda: dict[str, DriverRow]


class CompatError(ValueError):
    """A combination that does not exist; the message lists what does."""


@dataclass(frozen=True)
class Variant:
    cuda: str  # "12.8"
    experimental: bool
    cudnn: str | None  # "9.10.2.21"; None where not recorded
    nccl: str | None  # "2.27.5"
    arch: tuple[str, ...] | None  # compute capabilities, "PTX" for a PTX fallback
    arch_sources: tuple[str, ...] = ()  # keys of `sources` the arch list was read from

    @property
    def tag(self) -> str:
        return cuda_tag(self.cuda)


@dataclass(frozen=True)
class Release:
    version: str  # "2.9.1"
    series: str  # "2.9"
    torchvision: str
    torchaudio: str
    torchcodec: str | None  # None: TorchCodec's table names no release for this series
    python_min: str
    python_max: str
    pypi_default: str  # CUDA version of the wheel on PyPI
    variants: dict[str, Variant]
    sources: tuple[str, ...]

    def supports_python(self, python: str) -> bool:
        return version_key(self.python_min) <= version_key(python) <= version_key(self.python_max)


@dataclass(frozen=True)
class DriverRequirement:
    cuda: str
    driver_min: str  # what the CUDA toolkit asks for
    compat_floor: str  # the floor under minor version compatibility
    sources: tuple[str, ...]


def cuda_tag(cuda: str) -> str:
    """"12.8" -> "cu128", the name PyTorch gives the variant."""
    return "cu" + cuda.replace(".", "")


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def cudnn_as_int(cudnn: str) -> int:
    """"9.10.2.21" -> 91002, the number `torch.backends.cudnn.version()` returns."""
    major, minor, patch = (int(p) for p in cudnn.split(".")[:3])
    return major * 10000 + minor * 100 + patch if major >= 9 else major * 1000 + minor * 100 + patch


def cudnn_major(version: int) -> int:
    """91002 -> 9, 8902 -> 8: the major release of a number `cudnn_as_int` encodes."""
    return version // 10000 if version >= 90000 else version // 1000


class Compat:
    def __init__(self, raw: CompatData) -> None:
        self.sources: dict[str, str] = dict(raw["sources"])
        self.releases: dict[str, Release] = {}
        for series, row in raw["torch"].items():
            for version, pair in row["released"].items():
                self.releases[version] = _release(series, version, pair, row)
        self.drivers = {
            cuda: DriverRequirement(cuda, str(r["driver_min"]), str(r["compat_floor"]),
                                    tuple(r["source"]))
            for cuda, r in raw["cuda"].items()
        }

    def release(self, version: str) -> Release:
        if version in self.releases:
            return self.releases[version]
        series = ".".join(version.split(".")[:2])
        same = [v for v in self.releases if v.startswith(series + ".")]
        known = ", ".join(same) if same else ", ".join(sorted(self.releases, key=version_key))
        raise CompatError(f"torch {version} was never released; known releases: {known}")

    def variant(self, torch: str, cuda: str) -> Variant:
        release = self.release(torch)
        if cuda in release.variants:
            return release.variants[cuda]
        supported = ", ".join(f"{c} ({cuda_tag(c)})" for c in release.variants)
        message = f"torch {torch} has no CUDA {cuda} build; it ships CUDA {supported}"
        last = self.last_release_with(cuda)
        if last:
            message += f"; {cuda_tag(cuda)} last shipped in torch {last}"
        raise CompatError(message)

    def last_release_with(self, cuda: str) -> str | None:
        having = [v for v, r in self.releases.items() if cuda in r.variants]
        return max(having, key=version_key) if having else None

    def check_python(self, torch: str, python: str) -> None:
        release = self.release(torch)
        if not release.supports_python(python):
            raise CompatError(
                f"torch {torch} supports Python {release.python_min} to {release.python_max},"
                f" not {python}"
            )

    def paired_version(self, torch: str, package: str) -> str:
        release = self.release(torch)
        if package == "torchvision":
            return release.torchvision
        if package == "torchaudio":
            return release.torchaudio
        if package == "torchcodec":
            if release.torchcodec is None:
                raise CompatError(f"no torchcodec release is recorded for torch {torch};"
                                  " TorchCodec's compatibility table names none")
            return release.torchcodec
        raise CompatError(f"no pairing is recorded for {package}; pin it explicitly")

    def driver(self, cuda: str) -> DriverRequirement:
        if cuda not in self.drivers:
            raise CompatError(f"no driver minimum is recorded for CUDA {cuda}")
        return self.drivers[cuda]


def _release(series: str, version: str, pair: dict[str, str], row: SeriesRow) -> Release:
    variants = {}
    for cuda, extra in row["cuda"].items():
        extra = extra or {}
        variants[cuda] = Variant(
            cuda=cuda,
            experimental=bool(extra.get("experimental", False)),
            cudnn=extra.get("cudnn", row["cudnn"]),
            nccl=extra.get("nccl", row["nccl"]),
            arch=tuple(extra["arch"]) if extra.get("arch") else None,
            arch_sources=tuple(extra.get("arch_source", ())),
        )
    python_min, python_max = row["python"]
    return Release(
        version=version,
        series=series,
        torchvision=pair["torchvision"],
        torchaudio=pair["torchaudio"],
        torchcodec=row.get("torchcodec"),
        python_min=python_min,
        python_max=python_max,
        pypi_default=row["pypi_default"],
        variants=variants,
        sources=tuple(row["source"]),
    )


@functools.cache
def load_compat() -> Compat:
    text = resources.files("torchstack.config").joinpath("data/compat.yaml").read_text()
    return Compat(yaml.safe_load(text))

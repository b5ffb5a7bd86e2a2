"""The frozen objects every stage passes on: Matrix, Layer, OsBase, ImageSpec.

They are built once by `matrix.load_matrix` and never read YAML again.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from torchstack.checks.expect import Thresholds
from torchstack.errors import ConfigError
from torchstack.names import DEFAULT_SHM_SIZE, DEFAULT_TIMEOUT_S

CheckLevel = Literal["cpu", "gpu"]
# How pushed layers are compressed (docs/registry.md): gzip every runtime pulls; zstd pulls
# faster but needs containerd >= 1.5 or Docker >= 23; both publishes zstd beside gzip.
Compression = Literal["gzip", "zstd", "both"]
COMPRESSIONS: tuple[Compression, ...] = ("gzip", "zstd", "both")
DEFAULT_COMPRESSION: Compression = "gzip"
DEFAULT_ZSTD_SUFFIX = "-zstd"
Variant = Literal["gzip", "zstd"]  # one published form of an image


def variants_of(compression: Compression) -> tuple[Variant, ...]:
    """The forms a push publishes, gzip first (buildx makes zstd from the gzip one)."""
    return ("gzip", "zstd") if compression == "both" else (compression,)


def variant_ref(ref: str, variant: Variant, compression: Compression, suffix: str) -> str:
    """Where a variant goes: the tag itself, or, for zstd beside gzip (`both`), tag+suffix."""
    return ref + suffix if compression == "both" and variant == "zstd" else ref


@dataclass(frozen=True)
class OsBase:
    name: str  # "bookworm"
    image: str  # reference pulled (or bootstrapped) as the root of every image
    python: str  # major.minor of the distribution's python3
    bootstrap_suite: str | None  # debootstrap suite when it can be built locally
    bootstrap_mirror: str


@dataclass(frozen=True)
class Layer:
    name: str
    parent: str | None
    description: str
    packages: tuple[str, ...]  # exact pins from the package index
    torch_packages: tuple[str, ...]  # torch, torchvision, torchaudio, torchcodec: follow torch
    env: tuple[tuple[str, str], ...]
    checks: tuple[str, ...]  # this layer's own checks; ImageSpec.checks adds the ancestors'
    fragment: str  # Dockerfile instructions run as root in the layer's runtime stage


@dataclass(frozen=True)
class Alias:
    template: str
    only_default: bool  # only for images in the default group
    only_flavor: str | None

    def applies(self, *, default: bool, flavor: str) -> bool:
        return (default or not self.only_default) and self.only_flavor in (None, flavor)


@dataclass(frozen=True)
class TagPolicy:
    release: str
    candidate: str
    aliases: tuple[Alias, ...]


@dataclass(frozen=True)
class ImageSpec:
    id: str
    flavor: str
    layer: str
    layers: tuple[str, ...]  # root first
    parent_id: str | None
    os: str
    base_image: str  # the OS image the root layer starts FROM
    torch: str
    cuda: str
    cuda_tag: str
    python: str
    torchvision: str | None
    torchaudio: str | None
    cudnn: str | None
    nccl: str | None
    driver_min: str
    experimental: bool
    legacy: bool
    default: bool
    index_kind: Literal["pypi", "pytorch"]
    torch_index: str  # where torch-family wheels come from
    pip_index: str  # where every other package comes from
    torch_requirements: tuple[str, ...]
    requirements: tuple[str, ...]
    checks: tuple[str, ...]  # ancestors' first
    release_tag: str
    aliases: tuple[str, ...]
    torchcodec: str | None = None  # paired with torch by compat data when a layer installs it

    @property
    def expected_torch_version(self) -> str:
        return f"{self.torch}+{self.cuda_tag}"

    @property
    def cudnn_major(self) -> str:
        return self.cudnn.split(".")[0] if self.cudnn else "X"


@dataclass(frozen=True)
class RunOptions:
    """How a check container or pod runs the suite (matrix.yaml `checks:`)."""

    shm_size: str = DEFAULT_SHM_SIZE  # Docker's spelling: 2g, 512m, bytes
    timeout_s: float = DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class Matrix:
    root: Path  # folder holding matrix.yaml, layers/ and images/
    file: str
    images: tuple[ImageSpec, ...]
    layers: dict[str, Layer] = field(hash=False)
    os_bases: dict[str, OsBase] = field(hash=False)
    default_group: tuple[str, ...]
    local_repository: str
    push_repository: str
    tags: TagPolicy
    promotion_level: CheckLevel
    thresholds: Thresholds = field(hash=False)  # the suite's own type: parsed once, at load
    run_options: RunOptions
    compression: Compression = DEFAULT_COMPRESSION  # registry.compression
    zstd_suffix: str = DEFAULT_ZSTD_SUFFIX  # registry.zstd_suffix: the zstd tags under `both`

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    def by_id(self) -> dict[str, ImageSpec]:
        return {image.id: image for image in self.images}

    def local_tag(self, image_id: str) -> str:
        return f"{self.local_repository}:{image_id}"

    def select(self, globs: list[str] | tuple[str, ...], *,
               everything: bool = False) -> list[ImageSpec]:
        """Images whose id matches any glob, in matrix order; the default group when none."""
        if everything:
            return list(self.images)
        patterns = list(globs) or list(self.default_group)
        chosen = [i for i in self.images if any(fnmatch.fnmatchcase(i.id, p) for p in patterns)]
        unmatched = [p for p in patterns
                     if not any(fnmatch.fnmatchcase(i.id, p) for i in self.images)]
        if unmatched:
            ids = ", ".join(i.id for i in self.images[:6])
            raise ConfigError(
                f"no image id matches {', '.join(repr(p) for p in unmatched)}",
                tip=f"ids look like {ids}, ...; run `torchstack plan --all` to list them",
            )
        return chosen

    def with_ancestors(self, images: list[ImageSpec]) -> list[ImageSpec]:
        """The images plus every ancestor, parents before children, in matrix order."""
        index = self.by_id()
        wanted: set[str] = set()
        for image in images:
            current: ImageSpec | None = image
            while current is not None and current.id not in wanted:
                wanted.add(current.id)
                current = index[current.parent_id] if current.parent_id else None
        # matrix.images is already topological: parents are expanded before children.
        return [i for i in self.images if i.id in wanted]


def template_fields(image: ImageSpec, **facts: str) -> dict[str, str]:
    """What id and tag templates may use; `facts` read inside a built image override the plan."""
    fields = {
        "id": image.id,
        "torch": image.torch,
        "torch_minor": ".".join(image.torch.split(".")[:2]),
        "cuda": image.cuda,
        "cuda_tag": image.cuda_tag,
        "python": image.python,
        "flavor": image.flavor,
        "os": image.os,
        "cudnn_major": image.cudnn_major if image.cudnn else "X",
    }
    fields.update(facts)
    return fields

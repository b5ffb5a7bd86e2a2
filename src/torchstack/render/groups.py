"""Which locked distributions go into which image layer. Pure: the one place the rule lives.

Each group is one `RUN` (one layer) installing only its own slice of the lock, least-changing
first: the NVIDIA libraries (split so that no layer holds much more than ~1.2 GB installed),
then triton, then torch, then the rest of the root layer's packages. A child layer's own
packages are one group on top of its parent's. Groups are fixed by distribution family, not
packed by size, so a version bump of one library changes only its own group: a torch patch
release rebuilds (and re-pulls) triton and torch and nothing below them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

# NVIDIA wheel families (the part before -cu12 / -cu13), grouped to ~1.0-1.1 GB installed each
# (sizes measured in the torch 2.9.1 cu128 base, shared/facts/torch-cuda.md). A family that is
# not listed goes to the last NVIDIA group.
NVIDIA_GROUPS: tuple[tuple[str, frozenset[str]], ...] = (
    ("nvidia-cudnn", frozenset({"nvidia-cudnn"})),  # 1005 MiB
    ("nvidia-cublas", frozenset({"nvidia-cublas", "nvidia-nvjitlink", "nvidia-curand"})),
    ("nvidia-nccl", frozenset({"nvidia-nccl", "nvidia-nvshmem", "nvidia-cusparselt"})),
    ("nvidia-solvers", frozenset({"nvidia-cusolver", "nvidia-cusparse", "nvidia-cufft"})),
)
NVIDIA_OTHER = "nvidia-other"  # nvrtc, cuda runtime, cupti, nvtx, cufile, ...
ROOT_TAIL = ("triton", "torch")
REST = "python-packages"
_CUDA_SUFFIX = re.compile(r"-cu\d+$")


class Dist(Protocol):
    """What the plan needs of a locked distribution (lock.LockedDist is one)."""

    @property
    def name(self) -> str: ...  # PEP 503 normalised
    @property
    def version(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def size(self) -> int: ...  # bytes of the wheel


@dataclass(frozen=True)
class LayerGroup:
    position: int  # 1-based, in build order within this image
    name: str
    dists: tuple[Dist, ...]  # sorted by name

    @property
    def file(self) -> str:
        """The group's slice of the lock, in the rendered context."""
        return f"groups/{self.position:02d}-{self.name}.txt"

    @property
    def wheel_bytes(self) -> int:
        return sum(d.size for d in self.dists)

    def requirements(self) -> str:
        """The slice as a hash-pinned requirements file (what the install step reads)."""
        return "".join(f"{d.name}=={d.version} --hash=sha256:{d.sha256}\n" for d in self.dists)


def family(name: str) -> str:
    return _CUDA_SUFFIX.sub("", name)


def group_name(name: str, *, root: bool, layer: str) -> str:
    """The group a distribution belongs to (the rule `plan` shows)."""
    if not root:
        return layer
    if name.startswith("nvidia-") and name != "nvidia-ml-py":
        fam = family(name)
        return next((g for g, members in NVIDIA_GROUPS if fam in members), NVIDIA_OTHER)
    return name if name in ROOT_TAIL else REST


def plan_groups(own: Iterable[Dist], *, root: bool, layer: str) -> tuple[LayerGroup, ...]:
    """Groups of the distributions this image adds to its parent, in install order."""
    order = [g for g, _ in NVIDIA_GROUPS] + [NVIDIA_OTHER, *ROOT_TAIL, REST] if root else [layer]
    members: dict[str, list[Dist]] = {}
    for dist in own:
        members.setdefault(group_name(dist.name, root=root, layer=layer), []).append(dist)
    present = [g for g in order if g in members]
    return tuple(LayerGroup(i, g, tuple(sorted(members[g], key=lambda d: d.name)))
                 for i, g in enumerate(present, start=1))


def own_dists(lock: Iterable[Dist], parent_lock: Iterable[Dist] | None) -> list[Dist]:
    """What an image installs on top of its parent: its lock minus the parent's."""
    inherited = {(d.name, d.version) for d in parent_lock or ()}
    return [d for d in lock if (d.name, d.version) not in inherited]

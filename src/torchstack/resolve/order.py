"""Selection, build order and input hashing. Pure: no Docker, no network.

The input hash of an image is sha256 over its rendered build context and its parent's exact
image ID (or the OS base image's ID for a root layer). An image whose hash already exists is
not rebuilt; a rebuilt parent gets a new ID, so its children's hashes change too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

from torchstack.config.model import ImageSpec, Matrix
from torchstack.render.dockerfile import image_groups, render_image
from torchstack.render.groups import LayerGroup


@dataclass(frozen=True)
class PlannedImage:
    spec: ImageSpec
    context_hash: str  # over the rendered files; the parent's ID is added at build time
    requested: bool  # selected by the user, not only pulled in as an ancestor
    groups: tuple[LayerGroup, ...] | None = None  # its install layers; None: unlocked


@dataclass(frozen=True)
class BuildPlan:
    images: tuple[PlannedImage, ...]  # parents before children

    @property
    def ids(self) -> list[str]:
        return [p.spec.id for p in self.images]


def make_plan(matrix: Matrix, globs: list[str], *, everything: bool = False,
              context_of: Callable[[ImageSpec], str] | None = None) -> BuildPlan:
    """The selected images and their ancestors, parents first. `context_of` gives an image's
    context hash (resolve.Resolution passes its own, so that each image renders once a run)."""
    selected = matrix.select(globs, everything=everything)
    wanted = {image.id for image in selected}
    context_of = context_of or (lambda spec: context_hash(render_image(spec, matrix)))
    return BuildPlan(tuple(
        PlannedImage(spec, context_of(spec), spec.id in wanted, image_groups(spec, matrix))
        for spec in matrix.with_ancestors(selected)
    ))


def context_hash(files: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        data = files[name].encode()
        # Length-prefixed so that moving bytes between files changes the hash.
        digest.update(f"{name}\0{len(data)}\0".encode() + data)
    return digest.hexdigest()


def input_hash(context: str, parent_image_id: str) -> str:
    """What the image label records: the context plus the exact image it is built FROM."""
    return hashlib.sha256(f"{context}\0{parent_image_id}".encode()).hexdigest()


class PlanRow(TypedDict):
    """One image as `torchstack plan` shows it."""

    id: str
    parent: str | None
    flavor: str
    layers: list[str]
    torch: str
    cuda: str
    cuda_tag: str
    python: str
    os: str
    index: str
    torch_index: str
    release_tag: str
    aliases: list[str]
    legacy: bool
    experimental: bool
    default: bool
    requested: bool
    depth: int
    context_hash: str
    layer_groups: list[str]
    locked: bool


def plan_rows(plan: BuildPlan) -> list[PlanRow]:
    """One flat dict per image: the table of `torchstack plan` and its --json (CI matrix)."""
    return [
        {
            "id": p.spec.id,
            "parent": p.spec.parent_id,
            "flavor": p.spec.flavor,
            "layers": list(p.spec.layers),
            "torch": p.spec.torch,
            "cuda": p.spec.cuda,
            "cuda_tag": p.spec.cuda_tag,
            "python": p.spec.python,
            "os": p.spec.os,
            "index": p.spec.index_kind,
            "torch_index": p.spec.torch_index,
            "release_tag": p.spec.release_tag,
            "aliases": list(p.spec.aliases),
            "legacy": p.spec.legacy,
            "experimental": p.spec.experimental,
            "default": p.spec.default,
            "requested": p.requested,
            "depth": len(p.spec.layers) - 1,
            "context_hash": p.context_hash,
            # Group names in build order (`plan --layers` shows their sizes); [] when unlocked.
            "layer_groups": [f"{g.position:02d}-{g.name}" for g in p.groups or ()],
            "locked": p.groups is not None,
        }
        for p in plan.images
    ]

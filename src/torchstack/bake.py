"""BuildPlan -> docker-bake.json, for `docker buildx bake` without torchstack. Pure.

One target per image, building the committed context images/<id>/. A child's Dockerfile says
`FROM ${PARENT_IMAGE}`; its target sets PARENT_IMAGE to PARENT_CONTEXT and maps that name in
`contexts` to `target:<parent target>`, so BuildKit builds the parent first and substitutes it
for the FROM. Tags are torchstack's: the local tag, and the release tag and aliases under the
push registry. The input-hash label stays empty: it needs the parent's image ID, which only
exists once the parent is built (see docs/buildkit.md).
"""

from __future__ import annotations

import json
import re
from typing import Any

from torchstack.errors import ConfigError
from torchstack.model import ImageSpec, Matrix
from torchstack.plan import BuildPlan

# What a child's PARENT_IMAGE build arg is set to; `contexts` maps it to the parent target.
# A plain name (no registry, no tag): BuildKit looks named contexts up by the FROM reference.
PARENT_CONTEXT = "torchstack-parent"
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_-]")  # bake target names: [a-zA-Z0-9_-]+


def target_name(image_id: str) -> str:
    """`torch2.9.1-cu128-py3.11-base` -> `torch2_9_1-cu128-py3_11-base`."""
    return _NOT_ALLOWED.sub("_", image_id)


def target_names(images: list[ImageSpec]) -> dict[str, str]:
    """image id -> bake target name, refusing two ids that would share a name."""
    names: dict[str, str] = {}
    owner: dict[str, str] = {}
    for image in images:
        name = target_name(image.id)
        if name in owner:
            raise ConfigError(f"images {owner[name]} and {image.id} both become bake target"
                              f" {name!r}", tip="make the ids differ in more than punctuation")
        if name in ("default", "all"):
            raise ConfigError(f"image id {image.id!r} clashes with a bake group name")
        owner[name] = image.id
        names[image.id] = name
    return names


def tags_for(image: ImageSpec, matrix: Matrix, repository: str) -> list[str]:
    """The tags torchstack gives the image: local, then release and aliases when promoted."""
    return [matrix.local_tag(image.id),
            *(f"{repository}:{tag}" for tag in (image.release_tag, *image.aliases))]


def bake_file(plan: BuildPlan, matrix: Matrix, repository: str,
              default_ids: list[str]) -> dict[str, Any]:
    """The docker-bake.json document: groups `default` and `all`, one target per image."""
    images = [p.spec for p in plan.images]
    names = target_names(images)
    targets: dict[str, Any] = {}
    for planned in plan.images:
        image = planned.spec
        args = {
            "PIP_INDEX_URL": image.pip_index,
            "TORCH_INDEX_URL": image.torch_index,
        }
        target: dict[str, Any] = {
            "context": f"{matrix.images_dir.name}/{image.id}",
            "dockerfile": "Dockerfile",
            "args": args,
            "tags": tags_for(image, matrix, repository),
        }
        if image.parent_id is None:
            args["BASE_IMAGE"] = image.base_image
        else:
            args["PARENT_IMAGE"] = PARENT_CONTEXT
            target["contexts"] = {PARENT_CONTEXT: f"target:{names[image.parent_id]}"}
        targets[names[image.id]] = target
    default = [names[i] for i in default_ids if i in names]
    return {
        "group": {
            "default": {"targets": default},
            "all": {"targets": [names[i.id] for i in images]},
        },
        "target": targets,
    }


def to_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"

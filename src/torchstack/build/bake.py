"""Resolved states -> docker-bake.json, for `docker buildx bake` without torchstack. Pure.

One target per image, building the committed context images/<id>/ with the same secrets as
`torchstack build` (`secret` entries, from environment variables). A child's Dockerfile says
`FROM ${PARENT_IMAGE}`; its target sets PARENT_IMAGE to PARENT_CONTEXT and maps that name in
`contexts` to `target:<parent target>`, so BuildKit builds the parent first and substitutes it
for the FROM. Targets carry staging tags only (resolve/staging.py: computable before any build),
never release tags: only `torchstack promote` moves those, and only onto checked images.
"""

from __future__ import annotations

import json
import re
from typing import NotRequired, TypedDict

from torchstack.backend.buildkit import Secret
from torchstack.config.model import ImageSpec
from torchstack.errors import ConfigError
from torchstack.names import CHAIN_LABEL
from torchstack.render.dockerfile import SECRET_IDS
from torchstack.resolve.staging import staging_tag
from torchstack.resolve.state import Resolved

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


def secret_entries() -> list[dict[str, str]]:
    """The build's secrets as bake `secret` entries (the object form of buildx's bake file
    reference): each read from its environment variable, the names `torchstack build` uses.
    One whose variable is unset is not mounted; the Dockerfiles do not require any."""
    return [{"type": "env", "id": name, "env": Secret(name).env_name} for name in SECRET_IDS]


class BakeTarget(TypedDict):
    context: str
    dockerfile: str
    args: dict[str, str]
    labels: dict[str, str]
    secret: list[dict[str, str]]
    tags: list[str]
    contexts: NotRequired[dict[str, str]]


class BakeFile(TypedDict):
    group: dict[str, dict[str, list[str]]]
    target: dict[str, BakeTarget]


def bake_file(resolved: Resolved, repository: str, default_ids: list[str]) -> BakeFile:
    """The docker-bake.json document: groups `default` and `all`, one target per image."""
    matrix = resolved.matrix
    images = [s.spec for s in resolved.states]
    names = target_names(images)
    targets: dict[str, BakeTarget] = {}
    for state in resolved.states:
        image, chain = state.spec, state.chain_hash
        stage = staging_tag(image, chain)
        target: BakeTarget = {
            "context": f"{matrix.images_dir.name}/{image.id}",
            "dockerfile": "Dockerfile",
            "args": {},
            "labels": {CHAIN_LABEL: chain},
            "secret": secret_entries(),
            "tags": [f"{matrix.local_repository}:{stage}", f"{repository}:{stage}"],
        }
        if image.parent_id is None:
            target["args"]["BASE_IMAGE"] = image.base_image
        else:
            target["args"]["PARENT_IMAGE"] = PARENT_CONTEXT
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


def to_json(document: BakeFile) -> str:
    return json.dumps(document, indent=2) + "\n"

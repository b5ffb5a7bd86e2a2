"""Staging tags: what a static bake file can name before anything is built.

The candidate tag carries the input hash, which needs the parent's image ID, so `docker buildx
bake` cannot compute it. The chain hash can: sha256 over an image's rendered context chained
through its parents' chain hashes, ending at the OS base image's reference. Bake tags and
labels images with it; `check` and `promote` then adopt a staged image when its label matches
and its layers extend its parent's exactly, and from there it is keyed by image ID and input
hash like any image torchstack built itself.
"""

from __future__ import annotations

import hashlib

from torchstack.docker_backend import DockerBackend
from torchstack.model import ImageSpec, Matrix
from torchstack.plan import context_hash
from torchstack.render import LABEL_PREFIX, render_image

CHAIN_LABEL = f"{LABEL_PREFIX}.chain-hash"


def chain_hash(matrix: Matrix, spec: ImageSpec) -> str:
    below = (spec.base_image if spec.parent_id is None
             else chain_hash(matrix, matrix.by_id()[spec.parent_id]))
    context = context_hash(render_image(spec, matrix))
    return hashlib.sha256(f"{context}\0{below}".encode()).hexdigest()


def staging_tag(spec: ImageSpec, chain: str) -> str:
    """The tag (without repository) bake gives an image: `<id>-stage-<chain12>`."""
    return f"{spec.id}-stage-{chain[:12]}"


def adopt_staged(backend: DockerBackend, matrix: Matrix, spec: ImageSpec,
                 parent_id: str) -> str | None:
    """The image bake built for `spec` on top of `parent_id`, or None."""
    chain = chain_hash(matrix, spec)
    suffix = f":{staging_tag(spec, chain)}"
    parent_layers = _layers(backend, parent_id)
    for image_id, tags in backend.images_with_label(CHAIN_LABEL, chain):
        if not any(tag.endswith(suffix) for tag in tags):
            continue  # built FROM a staged image: inherits the label, but is not it
        layers = _layers(backend, image_id)
        if parent_layers and layers[: len(parent_layers)] == parent_layers:
            return image_id
    return None


def _layers(backend: DockerBackend, image_id: str) -> list[str]:
    inspected = backend.inspect(image_id) or {}
    return list((inspected.get("RootFS") or {}).get("Layers") or [])

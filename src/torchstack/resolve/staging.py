"""Staging tags: what a static bake file can name before anything is built.

The candidate tag carries the input hash, which needs the parent's image ID, so `docker buildx
bake` cannot compute it. The chain hash can: sha256 over an image's rendered context chained
through its parents' chain hashes, ending at the OS base image's reference. Bake tags and
labels images with it; resolve/state.py adopts a staged image when its label matches and its layers
extend its parent's exactly, and from there it is keyed by image ID and input hash like any
image torchstack built itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from torchstack.config.model import ImageSpec, Matrix
from torchstack.names import CHAIN_LABEL, HASH_CHARS, STAGING_TAG
from torchstack.render.dockerfile import render_image
from torchstack.resolve.order import context_hash

__all__ = ["CHAIN_LABEL", "chain_hash", "staging_tag"]


def chain_hash(matrix: Matrix, spec: ImageSpec,
               context_of: Callable[[ImageSpec], str] | None = None) -> str:
    """`context_of` gives an image's context hash (resolve.Resolution: each rendered once)."""
    context_of = context_of or (lambda image: context_hash(render_image(image, matrix)))
    below = (spec.base_image if spec.parent_id is None
             else chain_hash(matrix, matrix.by_id()[spec.parent_id], context_of))
    return hashlib.sha256(f"{context_of(spec)}\0{below}".encode()).hexdigest()


def staging_tag(spec: ImageSpec, chain: str) -> str:
    """The tag (without repository) bake gives an image: `<id>-stage-<chain12>`."""
    return STAGING_TAG.format(id=spec.id, chain12=chain[:HASH_CHARS])

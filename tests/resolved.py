"""Tests look images up the way every stage does: through the one resolve path."""

from __future__ import annotations

from torchstack.config.model import Matrix
from torchstack.resolve.state import Images, ImageState, resolve


def local_state(backend: Images, matrix: Matrix, image_id: str) -> ImageState:
    """The state the current matrix resolves `image_id` to on `backend` (no build)."""
    resolved = resolve(matrix, [image_id], backend=backend, repository="torchstack-test")
    return next(s for s in resolved.states if s.id == image_id)


def local_image(backend: Images, matrix: Matrix, image_id: str) -> str | None:
    """The local image ID `image_id` resolves to, or None when it is not built."""
    return local_state(backend, matrix, image_id).local_image_id

"""Which digest identifies an image: the one records, tags and promotion key on.

Records key on the Engine's image ID: the image the checks ran on, as `docker run` took it.
What that ID is depends on the Engine's image store:
- the classic store (graph drivers; Docker up to 28 by default, this project's CI): the ID is
  the **config digest**, which a registry lists as the manifest's `config.digest`. The local
  image has no manifest until a push compresses its layers.
- the containerd image store (the default on fresh Docker 29 installs): the ID is the digest
  of the image's **manifest** (or of its index, for a multi-platform image), which a push
  preserves, since the store keeps the compressed layers: the registry's manifest digest.
BuildKit reports both (`--metadata-file`: containerimage.config.digest and
containerimage.digest); `docker image inspect` says which store answered by carrying a
`Descriptor` only on the containerd store. A pushed tag is proven to be the checked image when
the registry's digest of the same kind equals the record's ID.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Store = Literal["classic", "containerd"]


@dataclass(frozen=True)
class RemoteDigests:
    manifest: str  # what the registry serves the tag as (Docker-Content-Digest)
    config: str  # the manifest's config.digest


def store_of(inspected: Mapping[str, Any]) -> Store:
    """The image store behind an `/images/{name}/json` answer."""
    return "containerd" if inspected.get("Descriptor") else "classic"


def remote_key(store: Store, remote: RemoteDigests) -> str:
    """The registry digest that equals the local image ID on this store."""
    return remote.config if store == "classic" else remote.manifest


def is_same_image(inspected: Mapping[str, Any], remote: RemoteDigests) -> bool:
    """Whether a registry's tag holds exactly the local image `inspected` describes."""
    return str(inspected.get("Id", "")) == remote_key(store_of(inspected), remote)

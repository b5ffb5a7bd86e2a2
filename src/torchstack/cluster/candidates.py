"""Pin an image by its registry digest, and prove which local image a digest is.

The candidate tag (`<id>-<hash12>`) of the build this host resolves the matrix to is read from
the push registry: its manifest digest is what a Kubernetes Job runs (`repo@sha256:...`) and
what the suite echoes back in its report; the manifest's config digest equals the local Docker
image ID, which is what check records are keyed by. So a digest in a report is mapped to an
image ID by the registry, never taken on trust.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torchstack.backend.registry import RegistryError, fetch_manifest
from torchstack.config.model import Matrix
from torchstack.errors import ConfigError
from torchstack.resolve.state import ImageState
from torchstack.resolve.tags import candidate_ref

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")  # matched whole (fullmatch)
# The reference grammar of distribution/reference: [host[:port]/]path[:tag]@digest.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
PINNED = re.compile(rf"(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*"
                    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@(sha256:[0-9a-f]{64})")
PUSH_TIP = ("`torchstack promote --push` pushes the candidate tag of every checked image"
            " (a cpu-level record is enough for the candidate)")


@dataclass(frozen=True)
class Candidate:
    image_id: str  # the torchstack id
    docker_id: str  # the manifest's config digest, equal to the local image ID
    input_hash: str
    ref: str  # repository:candidate-tag
    digest: str  # the registry's manifest digest, sha256:...

    @property
    def pinned(self) -> str:
        """`repository@sha256:...`: what a Job runs, immune to the tag moving."""
        return f"{self.ref.rpartition(':')[0]}@{self.digest}"


def parse_pinned(ref: str, flag: str = "--image-ref") -> str:
    """`repo[:tag]@sha256:<64 hex>` -> the digest; anything without a digest is refused."""
    match = PINNED.fullmatch(ref)
    if match is None:
        raise ConfigError(
            f"{flag} {ref!r} is not an image reference pinned by digest",
            tip="pass REPOSITORY@sha256:<64 hex>, e.g. ghcr.io/acme/torchstack@sha256:…"
                " (`docker buildx imagetools inspect REF` prints it), or leave the flag out"
                " to pin the candidate tag in the push registry")
    digest = match.group(1)
    return str(digest)


def digest_of_image_id(image_id: str) -> str | None:
    """A pod's `imageID` -> the digest in it: `docker-pullable://repo@sha256:…`,
    `repo@sha256:…` or a bare `sha256:…`; None when it holds none."""
    tail = image_id.rpartition("@")[2] if "@" in image_id else image_id.rpartition("//")[2]
    return tail if DIGEST.fullmatch(tail) else None


def resolve_candidate(state: ImageState, matrix: Matrix, repository: str) -> Candidate:
    """The pushed candidate of the image the current matrix resolves to on this host."""
    spec = state.spec
    if state.local_image_id is None or state.input_hash is None:
        raise ConfigError(f"{spec.id}: no local image matches the current matrix, so there is"
                          " no candidate to pin",
                          tip=f"run `torchstack build {spec.id}`, check it, then {PUSH_TIP}")
    docker_id, input_hash = state.local_image_id, state.input_hash
    ref = candidate_ref(spec, matrix, repository, input_hash)
    try:
        remote = fetch_manifest(ref)
    except RegistryError as exc:
        raise ConfigError(f"{spec.id}: cannot read its candidate {ref} from the registry: {exc}",
                          tip=PUSH_TIP) from None
    if not DIGEST.fullmatch(remote.digest):
        raise ConfigError(f"{ref}: the registry sent no Docker-Content-Digest header",
                          tip="use a registry that implements the Docker Registry HTTP API v2")
    if remote.config_digest != docker_id:
        raise ConfigError(f"{ref} in the registry is image {remote.config_digest[:19]}, not the"
                          f" local build {docker_id[:19]} of {spec.id}",
                          tip=f"push this host's build again: {PUSH_TIP}")
    return Candidate(spec.id, docker_id, input_hash, ref, remote.digest)

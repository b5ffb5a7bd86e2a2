"""Pin an image by its registry digest, and prove which local image a digest is.

The candidate tag (`<id>-<hash12>`) of the build this host resolves the matrix to is read from
the push registry, in each published form: the tag itself and, where promote published zstd
beside gzip, the tag + registry.zstd_suffix. A variant counts only when its config (read from
the registry) has the local image's content (identity.Content: diff IDs + OCI config
projection); promote proved its layers. Its manifest digest is what a Kubernetes Job runs
(`repo@sha256:...`) and what the suite echoes back in its report; check records are keyed by
the local Docker image ID. So a digest in a report is mapped to an image ID by the registry,
never taken on trust, whichever published variant it names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torchstack.backend.credentials import ANONYMOUS, Credentials
from torchstack.backend.identity import Content, content_difference, content_of_blob
from torchstack.backend.registry import RegistryError, fetch_config, fetch_manifest
from torchstack.config.model import Matrix, Variant
from torchstack.errors import ConfigError
from torchstack.names import SHA256_DIGEST
from torchstack.release.journal import PublishedVariant
from torchstack.resolve.state import ImageState
from torchstack.resolve.tags import candidate_ref

# The reference grammar of distribution/reference: [host[:port]/]path[:tag]@digest.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
PINNED = re.compile(rf"(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*"
                    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
                    rf"@({SHA256_DIGEST.pattern})")
PUSH_TIP = ("`torchstack promote --push` pushes the candidate tag of every checked image"
            " (a cpu-level record is enough for the candidate)")


@dataclass(frozen=True)
class Candidate:
    image_id: str  # the torchstack id
    docker_id: str  # the manifest's config digest, equal to the local image ID
    input_hash: str
    ref: str  # repository:candidate-tag (of the variant pinned)
    digest: str  # the registry's manifest digest of the variant pinned, sha256:...
    content_id: str = ""  # identity.Content.id shared by every variant
    variants: tuple[PublishedVariant, ...] = ()  # every published form found (gzip, zstd)

    @property
    def digests(self) -> tuple[str, ...]:
        """Every manifest digest that is this image: the pinned one first."""
        return (self.digest, *(v.digest for v in self.variants if v.digest != self.digest))

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
    return tail if SHA256_DIGEST.fullmatch(tail) else None


def resolve_candidate(state: ImageState, matrix: Matrix, repository: str,
                      local: Content | None, compression: Variant | None = None, *,
                      credentials: Credentials = ANONYMOUS) -> Candidate:
    """The pushed candidate of the image the current matrix resolves to on this host: the
    variant of `compression` (None: zstd where published, else the plain tag's), with every
    variant found."""
    spec = state.spec
    if state.local_image_id is None or state.input_hash is None or local is None:
        raise ConfigError(f"{spec.id}: no local image matches the current matrix, so there is"
                          " no candidate to pin",
                          tip=f"run `torchstack build {spec.id}`, check it, then {PUSH_TIP}")
    docker_id, input_hash = state.local_image_id, state.input_hash
    ref = candidate_ref(spec, matrix, repository, input_hash)
    found = [variant for variant in (_variant(ref, local, spec.id, credentials, required=True),
                                     _variant(ref + matrix.zstd_suffix, local, spec.id,
                                              credentials))
             if variant is not None]
    if compression is None:
        # Kubernetes nodes run containerd >= 1.5 or CRI-O, which pull zstd: the faster form
        # where it was published (docs/registry.md).
        chosen = next((v for v in found if v.compression == "zstd"), found[0])
    else:
        matching = [v for v in found if v.compression == compression]
        if not matching:
            forms = ", ".join(f"{v.ref} ({v.compression})" for v in found)
            raise ConfigError(f"{spec.id}: no {compression} variant of its candidate in the"
                              f" registry (found {forms})",
                              tip=f"`torchstack promote {spec.id} --push --compression"
                                  f" {compression}` (or both) publishes it")
        chosen = matching[0]
    return Candidate(spec.id, docker_id, input_hash, chosen.ref, chosen.digest, local.id,
                     tuple(found))


def _variant(ref: str, local: Content, image_id: str, credentials: Credentials,
             required: bool = False) -> PublishedVariant | None:
    """The variant under `ref` if it holds the local image's content; None when the tag does
    not exist (and is not `required`)."""
    try:
        remote = fetch_manifest(ref, credentials=credentials)
        config = fetch_config(ref, remote, credentials=credentials)
    except RegistryError as exc:
        if not required and exc.status == 404:
            return None
        raise ConfigError(f"{image_id}: cannot read its candidate {ref} from the registry:"
                          f" {exc}", tip=PUSH_TIP) from None
    if not SHA256_DIGEST.fullmatch(remote.digest):
        raise ConfigError(f"{ref}: the registry sent no Docker-Content-Digest header",
                          tip="use a registry that implements the Docker Registry HTTP API v2")
    difference = content_difference(local, content_of_blob(config))
    if difference:
        raise ConfigError(f"{ref} in the registry is not the local build of {image_id}: its"
                          f" config {difference}", tip=f"push this host's build again: {PUSH_TIP}")
    compression = remote.compression
    if compression not in ("gzip", "zstd"):
        raise ConfigError(f"{ref}: its layers are {compression}, neither gzip nor zstd",
                          tip=f"push this host's build again: {PUSH_TIP}")
    return PublishedVariant(compression, ref, remote.digest)

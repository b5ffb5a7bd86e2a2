"""Ask a registry (Docker Registry HTTP API v2) what a tag points at: an independent check of
what `docker push` reported, down to the content of each layer.

`prove_content` reads a pushed manifest, its config blob and every layer blob: the config's
projection must equal the checked image's (identity.Content) and each layer must decompress
(gzip, zstd or none, by its media type) to its diff ID, with the compressed bytes hashing to
the descriptor's digest. `put_manifest` puts a proven manifest under more tag names without
uploading anything again.

Credentials (credentials.Credentials, from Settings) are sent as Basic auth, or traded for a
bearer token when the registry asks for one (`WWW-Authenticate: Bearer realm=...`, as GHCR and
Docker Hub do). Plain HTTP is used for loopback registries only (localhost, 127.0.0.0/8, [::1]);
every other registry, and every token realm, is spoken to over HTTPS, so credentials never
cross a network in clear text. The manifest's digest is computed from the bytes received and
must equal what the registry claims.
"""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import json
import re
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPMessage, HTTPResponse
from typing import IO, Literal, cast

import zstandard

from torchstack.backend.credentials import ANONYMOUS, Credentials
from torchstack.backend.identity import Content, content_difference, content_of_blob
from torchstack.config import kinds
from torchstack.errors import PromoteError

MANIFEST_TYPES = ("application/vnd.docker.distribution.manifest.v2+json,"
                  " application/vnd.oci.image.manifest.v1+json")
# An image manifest is a few KiB; a token answer less. Anything larger is not one.
MAX_BODY = 4 << 20


# Layer media types by how their bytes are compressed (Docker's and OCI's names).
LayerCompression = Literal["gzip", "zstd", "none"]
LAYER_COMPRESSION: dict[str, LayerCompression] = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.v1.tar": "none",
}
ZSTD_LAYER = "application/vnd.oci.image.layer.v1.tar+zstd"
CHUNK = 1 << 20


@dataclass(frozen=True)
class LayerBlob:
    media_type: str
    digest: str
    size: int

    @property
    def compression(self) -> LayerCompression | None:
        """gzip, zstd or none; None for a media type that is not an image layer we know."""
        return LAYER_COMPRESSION.get(self.media_type)


@dataclass(frozen=True)
class RemoteImage:
    digest: str  # manifest digest, what `pull <repo>@<digest>` takes
    config_digest: str  # equals the local Docker image ID of the same image (classic store)
    media_type: str = ""  # the manifest's own (Docker schema 2 or OCI)
    layers: tuple[LayerBlob, ...] = ()
    raw: bytes = b""  # the manifest's bytes, as served (put_manifest re-tags them)

    @property
    def compression(self) -> LayerCompression | Literal["mixed"] | None:
        """How its layers are compressed: one kind, "mixed", or None without layers."""
        kinds_seen = {layer.compression or "unknown" for layer in self.layers}
        if not kinds_seen:
            return None
        if len(kinds_seen) > 1 or "unknown" in kinds_seen:
            return "mixed"
        only: LayerCompression = self.layers[0].compression or "none"
        return only


class RegistryError(PromoteError):
    """The registry could not confirm a tag (exit 6 when it reaches the CLI)."""

    def __init__(self, message: str, *, tip: str | None = None, status: int | None = None
                 ) -> None:
        super().__init__(message, tip=tip)
        self.status = status  # the HTTP status that said no, when one did


def split_reference(ref: str) -> tuple[str, str, str]:
    """"127.0.0.1:5000/torchstack:tag" -> ("127.0.0.1:5000", "torchstack", "tag").

    The last part is the tag, or the digest of a `repo@sha256:...` reference.
    """
    problem = kinds.reference_problem(ref)
    name, at, digest = ref.partition("@")
    repository, colon, tag = name.rpartition(":")
    if not colon or "/" in tag:
        repository, tag = name, ""
    host, _, path = repository.partition("/")
    looks_like_host = "." in host or ":" in host or host == "localhost"
    if problem or not path or not looks_like_host or not (tag or at):
        raise RegistryError(
            f"{ref!r} is not a registry reference"
            + (f": it {problem}" if problem else " (host[:port]/repository:tag)"),
            tip="e.g. 127.0.0.1:5000/torchstack:latest or ghcr.io/owner/torchstack:2.9.1")
    return host, path, digest if at else tag


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or [::1], with or without a port."""
    if host.startswith("["):
        name = host[1:host.find("]")] if "]" in host else host
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def base_url(host: str) -> str:
    return f"{'http' if is_loopback(host) else 'https'}://{host}"


def fetch_manifest(ref: str, timeout_s: float = 30, *,
                   credentials: Credentials = ANONYMOUS) -> RemoteImage:
    """The manifest a tag (or `repo@digest`) names, its digest checked against its bytes."""
    host, repository, tag = split_reference(ref)
    url = f"{base_url(host)}/v2/{repository}/manifests/{tag}"
    with _reading(ref, url, {"Accept": MANIFEST_TYPES}, timeout_s, "manifest",
                  credentials) as response:
        body = _read_limited(response, url)
        claimed = str(response.headers.get("Docker-Content-Digest", ""))
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    if claimed and claimed != digest:
        raise RegistryError(f"{ref}: the manifest's bytes hash to {digest}, but the registry"
                            f" says {claimed}; the answer was altered or truncated")
    if tag.startswith("sha256:") and tag != digest:
        raise RegistryError(f"{ref}: the registry answered a manifest whose digest is {digest}")
    return _parse_manifest(ref, body, digest)


def _parse_manifest(ref: str, body: bytes, digest: str) -> RemoteImage:
    try:
        document = json.loads(body)
        config = document["config"]["digest"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise RegistryError(f"{ref}: the registry sent a manifest without a config") from None
    if not isinstance(config, str) or not kinds.DIGEST.fullmatch(config):
        raise RegistryError(f"{ref}: the manifest's config digest is not a digest")
    layers = []
    for index, entry in enumerate(document.get("layers") or []):
        layer = entry if isinstance(entry, dict) else {}
        media, blob, size = layer.get("mediaType"), layer.get("digest"), layer.get("size")
        if not (isinstance(media, str) and isinstance(blob, str)
                and kinds.DIGEST.fullmatch(blob) and type(size) is int and size >= 0):
            raise RegistryError(f"{ref}: layer {index} of the manifest is not a descriptor"
                                " (mediaType, digest, size)")
        layers.append(LayerBlob(media, blob, size))
    media_type = document.get("mediaType")
    return RemoteImage(digest, config, media_type if isinstance(media_type, str) else "",
                       tuple(layers), body)


def fetch_config(ref: str, image: RemoteImage, timeout_s: float = 30, *,
                 credentials: Credentials = ANONYMOUS) -> dict[str, object]:
    """The config blob of a fetched manifest, its bytes checked against the digest."""
    body = _blob(ref, image.config_digest, timeout_s, "config", credentials)
    try:
        config = json.loads(body)
    except (ValueError, RecursionError):
        raise RegistryError(f"{ref}: the config blob {image.config_digest[:19]} is not JSON"
                            ) from None
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    # The shapes identity.content_of_blob reads: a registry's odd answer is no traceback.
    if not isinstance(config, dict) or not isinstance(config.get("config") or {}, dict) \
            or not isinstance(rootfs or {}, dict) \
            or not isinstance((rootfs or {}).get("diff_ids") or [], list):
        raise RegistryError(f"{ref}: the config blob {image.config_digest[:19]} is not an"
                            " image config")
    return config


def prove_content(ref: str, expected: Content, timeout_s: float = 300, *,
                  credentials: Credentials = ANONYMOUS) -> RemoteImage:
    """The manifest at `ref`, once proven to hold exactly `expected`: the same config
    projection and diff IDs, and each layer blob decompressing to its diff ID.
    RegistryError saying what differs otherwise."""
    image = fetch_manifest(ref, credentials=credentials)
    difference = content_difference(
        expected, content_of_blob(fetch_config(ref, image, credentials=credentials)))
    if difference:
        raise RegistryError(f"{ref} ({image.digest[:19]}) is not the checked image: its config"
                            f" {difference}")
    if len(image.layers) != len(expected.diff_ids):
        raise RegistryError(f"{ref} ({image.digest[:19]}) lists {len(image.layers)} layers,"
                            f" but its config names {len(expected.diff_ids)} diff IDs")
    for index, (layer, diff_id) in enumerate(zip(image.layers, expected.diff_ids,
                                                 strict=True)):
        verify_layer(ref, index, layer, diff_id, timeout_s, credentials=credentials)
    return image


def verify_layer(ref: str, index: int, layer: LayerBlob, diff_id: str,
                 timeout_s: float = 300, *, credentials: Credentials = ANONYMOUS) -> None:
    """Stream one layer blob: its bytes must hash to its digest and, decompressed as its media
    type says, to `diff_id`."""
    where = f"{ref}: layer {index} ({layer.digest[:19]}, {layer.media_type})"
    compression = layer.compression
    if compression is None:
        raise RegistryError(f"{where}: not an image layer media type torchstack can verify",
                            tip="layers must be tar, tar+gzip or tar+zstd")
    host, repository, _ = split_reference(ref)
    url = f"{base_url(host)}/v2/{repository}/blobs/{layer.digest}"
    with _reading(ref, url, {}, timeout_s, "layer blob", credentials) as response:
        packed = _Hashing(response)
        try:
            plain = _uncompressed_sha256(packed, compression)
            while packed.read(CHUNK):  # bytes after the last frame still count for the digest
                pass
        except (gzip.BadGzipFile, EOFError, zlib.error, zstandard.ZstdError) as exc:
            raise RegistryError(f"{where} does not decompress as {compression}: {exc}") from None
    if packed.digest() != layer.digest or packed.size != layer.size:
        raise RegistryError(f"{where}: the blob's {packed.size} bytes hash to"
                            f" {packed.digest()[:19]}, not its descriptor's digest and size")
    if plain != diff_id:
        raise RegistryError(f"{where} decompresses to {plain[:19]}, but the image's diff ID"
                            f" there is {diff_id[:19]}")


def _uncompressed_sha256(packed: _Hashing, compression: LayerCompression) -> str:
    stream: IO[bytes] | gzip.GzipFile | zstandard.ZstdDecompressionReader
    if compression == "gzip":
        # every gzip member, as tar readers do
        stream = gzip.GzipFile(fileobj=cast(IO[bytes], packed), mode="rb")
    elif compression == "zstd":
        stream = zstandard.ZstdDecompressor().stream_reader(cast(IO[bytes], packed),
                                                            read_across_frames=True)
    else:
        stream = cast(IO[bytes], packed)
    plain = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        plain.update(chunk)
    return "sha256:" + plain.hexdigest()


class _Hashing:
    """A response read through sha256, counting bytes."""

    def __init__(self, source: HTTPResponse) -> None:
        self.source, self.hash, self.size = source, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data

    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def put_manifest(ref: str, image: RemoteImage, timeout_s: float = 60, *,
                 credentials: Credentials = ANONYMOUS) -> str:
    """Put a fetched manifest's exact bytes under the tag `ref` (same repository); returns the
    digest the registry stored, which must be the manifest's."""
    host, repository, tag = split_reference(ref)
    url = f"{base_url(host)}/v2/{repository}/manifests/{tag}"
    media = image.media_type or json.loads(image.raw).get("mediaType") or ""
    with _reading(ref, url, {"Content-Type": media}, timeout_s, "manifest upload",
                  credentials, method="PUT", data=image.raw) as response:
        stored = str(response.headers.get("Docker-Content-Digest", ""))
    if stored and stored != image.digest:
        raise RegistryError(f"{ref}: the registry stored the manifest as {stored}, not"
                            f" {image.digest}")
    return image.digest


def _blob(ref: str, digest: str, timeout_s: float, what: str,
          credentials: Credentials) -> bytes:
    host, repository, _ = split_reference(ref)
    url = f"{base_url(host)}/v2/{repository}/blobs/{digest}"
    with _reading(ref, url, {}, timeout_s, what, credentials) as response:
        body = _read_limited(response, url)
    if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
        raise RegistryError(f"{ref}: the {what} blob's bytes do not hash to {digest}")
    return body


@contextmanager
def _reading(ref: str, url: str, headers: dict[str, str], timeout_s: float, what: str,
             credentials: Credentials, method: str = "GET",
             data: bytes | None = None) -> Iterator[HTTPResponse]:
    """An open answer from the registry (credentials as it asks for them); RegistryError
    saying what failed and where."""
    host = split_reference(ref)[0]
    try:
        try:
            response = _open(url, {**headers, **credentials.headers()}, timeout_s, method,
                             data)
        except urllib.error.HTTPError as exc:
            challenge = exc.headers.get("WWW-Authenticate", "") if exc.code == 401 else ""
            if not challenge.lower().startswith("bearer "):
                raise
            token = bearer_token(ref, challenge, timeout_s, credentials)
            response = _open(url, {**headers, "Authorization": f"Bearer {token}"}, timeout_s,
                             method, data)
        with response:
            yield response
    except urllib.error.HTTPError as exc:
        hint = {401: " (credentials refused: TORCHSTACK_REGISTRY_USER/_PASSWORD)",
                404: " (no such tag)" if what == "manifest" else f" (no such {what})"
                }.get(exc.code, "")
        raise RegistryError(f"{ref}: the registry answered HTTP {exc.code} for the"
                            f" {what}{hint}", status=exc.code) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RegistryError(f"{ref}: cannot reach the registry at {base_url(host)}"
                            f" ({reason}) for the {what}") from None


def _open(url: str, headers: dict[str, str], timeout_s: float, method: str = "GET",
          data: bytes | None = None) -> HTTPResponse:
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    return cast(HTTPResponse, _OPENER.open(request, timeout=timeout_s))


def _read_limited(response: HTTPResponse, url: str) -> bytes:
    body = response.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise ValueError(f"the answer from {url} is larger than {MAX_BODY >> 20} MiB")
    return body


class _SafeRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only where credentials may go: HTTPS, or plain HTTP on loopback."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: HTTPMessage, newurl: str) -> urllib.request.Request | None:
        parts = urllib.parse.urlsplit(newurl)
        if parts.scheme != "https" and not (parts.scheme == "http"
                                            and is_loopback(parts.netloc)):
            raise urllib.error.URLError(f"refusing a redirect to {newurl}")
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and parts.netloc != urllib.parse.urlsplit(req.full_url).netloc:
            # urllib copies every header; the registry's credentials stay with the registry
            # (a blob store behind the redirect refuses a presigned URL sent with them, too).
            new.remove_header("Authorization")
        return new


_OPENER = urllib.request.build_opener(_SafeRedirects)


def _get(url: str, headers: dict[str, str], timeout_s: float) -> tuple[bytes, str]:
    request = urllib.request.Request(url, headers={"Accept": MANIFEST_TYPES, **headers})
    with _OPENER.open(request, timeout=timeout_s) as response:
        body: bytes = response.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise ValueError(f"the answer from {url} is larger than {MAX_BODY >> 20} MiB")
        return body, str(response.headers.get("Docker-Content-Digest", ""))


def parse_challenge(challenge: str) -> dict[str, str]:
    """`Bearer realm="https://x/token",service="x",scope="repository:a:pull"` -> its fields."""
    fields = re.findall(r'(\w+)="([^"]*)"', challenge)
    return dict(fields)


def bearer_token(ref: str, challenge: str, timeout_s: float, credentials: Credentials) -> str:
    """A token from the challenge's realm (over HTTPS, or HTTP on loopback), asked with the
    credentials as Basic auth."""
    fields = parse_challenge(challenge)
    realm = fields.get("realm", "")
    parts = urllib.parse.urlsplit(realm)
    if not (parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.netloc))):
        raise RegistryError(f"{ref}: the registry's token realm {realm!r} is not an https URL;"
                            " credentials are not sent there")
    query = urllib.parse.urlencode({k: v for k, v in fields.items() if k != "realm"})
    try:
        body, _ = _get(f"{realm}?{query}", credentials.headers(), timeout_s)
    except urllib.error.HTTPError as exc:
        raise RegistryError(f"{ref}: the token endpoint {realm} answered HTTP {exc.code}"
                            + (" (credentials refused)" if exc.code in (401, 403) else "")
                            ) from None
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        raise RegistryError(f"{ref}: the token endpoint {realm} did not answer JSON") from None
    token = answer.get("token") or answer.get("access_token") if isinstance(answer, dict) else None
    if not isinstance(token, str) or not token or kinds.text_problem(token):
        raise RegistryError(f"{ref}: the token endpoint {realm} answered without a token"
                            " ('token' or 'access_token')")
    return token


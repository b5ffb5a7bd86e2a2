"""Registry HTTP for artifacts beside an image: blobs, manifests by tag, tag -> digest.

Attestations live in the image's own repository (cosign's `sha256-<hex>.att` tag), so this
client speaks to one repository. It reuses registry.py's URL rule (plain HTTP on loopback
only) and credentials (credentials.Credentials from Settings: Basic, or a bearer token when
the registry asks for one). Every blob read back is checked against its digest.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.client import HTTPResponse

from torchstack.backend import registry
from torchstack.backend.credentials import ANONYMOUS, Credentials
from torchstack.backend.registry import RegistryError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_TYPES = f"{registry.MANIFEST_TYPES}, {OCI_INDEX}, {DOCKER_LIST}"
MAX_BLOB = 64 << 20  # an envelope or an SBOM is kilobytes to a few MiB
MAX_MANIFEST = registry.MAX_BODY  # 4 MiB: distribution refuses larger manifests itself
MAX_ENVELOPE = 16 << 20  # one DSSE envelope; the largest, an SBOM's, is a few MiB
MAX_LAYERS = 1000  # envelopes in one `.att` (one GET each); a record adds three
MAX_ENVELOPE_BYTES = 64 << 20  # all the envelopes one `verify` reads, together
READ_CHUNK = 64 << 10


@dataclass(frozen=True)
class Published:
    digest: str  # Docker-Content-Digest: the manifest digest the tag serves
    config_digest: str | None  # the manifest's config.digest (None for an index)
    media_type: str = OCI_MANIFEST  # what a descriptor of it (an OCI 1.1 subject) names
    size: int = 0


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]


class Repository:
    """One repository of one registry, e.g. `127.0.0.1:5000/torchstack`."""

    def __init__(self, repository: str, timeout_s: float = 60, *,
                 credentials: Credentials = ANONYMOUS) -> None:
        host, _, path = repository.partition("/")
        if not path:
            raise RegistryError(f"{repository!r} is not host/repository")
        self.name, self.host, self.path, self.timeout_s = repository, host, path, timeout_s
        self.credentials = credentials
        self._auth: dict[str, str] = credentials.headers()

    def _url(self, tail: str) -> str:
        return f"{registry.base_url(self.host)}/v2/{self.path}/{tail}"

    def _send(self, method: str, url: str, body: bytes | None = None,
              headers: dict[str, str] | None = None, limit: int = MAX_BLOB) -> Answer:
        """One request; a 401 with a Bearer challenge is answered once with a token. The
        answer must fit in `limit` bytes and arrive within timeout_s in all (a socket timeout
        alone bounds each read, so a server trickling bytes would hold it for ever)."""
        # The login goes to this registry's host only: an upload Location (or any URL the
        # registry names) on another host gets the request without it.
        own_host = urllib.parse.urlsplit(url).netloc == self.host
        for attempt in (1, 2):
            auth = self._auth if own_host else {}
            request = urllib.request.Request(url, data=body, method=method,
                                             headers={**(headers or {}), **auth})
            try:
                with registry._OPENER.open(request, timeout=self.timeout_s) as response:
                    data = self._read(response, url, limit)
                    return Answer(response.status, data, dict(response.headers.items()))
            except urllib.error.HTTPError as exc:
                challenge = exc.headers.get("WWW-Authenticate", "") if exc.code == 401 else ""
                if attempt == 1 and own_host and challenge.lower().startswith("bearer "):
                    token = registry.bearer_token(self.name, challenge, self.timeout_s,
                                                  self.credentials)
                    self._auth = {"Authorization": f"Bearer {token}"}
                    continue
                return Answer(exc.code, exc.read(4096), dict(exc.headers.items()))
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                raise RegistryError(f"{self.name}: cannot reach the registry at"
                                    f" {registry.base_url(self.host)} ({reason})") from None
        raise AssertionError("unreachable")

    def _read(self, response: HTTPResponse, url: str, limit: int) -> bytes:
        deadline = time.monotonic() + self.timeout_s
        parts: list[bytes] = []
        size = 0
        # read1: one socket read at most, so the deadline is looked at between reads
        while chunk := response.read1(min(READ_CHUNK, limit + 1 - size)):
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                raise RegistryError(f"{url}: the answer is larger than {_size(limit)}")
            if time.monotonic() > deadline:
                raise RegistryError(f"{url}: the registry did not answer within"
                                    f" {self.timeout_s:g} s")
        return b"".join(parts)

    def _fail(self, what: str, answer: Answer) -> RegistryError:
        hint = {401: " (credentials refused: TORCHSTACK_REGISTRY_USER/_PASSWORD)",
                403: " (no permission to write here)"}.get(answer.status, "")
        # The registry's words reach a terminal: no escape sequences or line breaks from it.
        detail = "".join(c if c.isprintable() else "?"
                         for c in answer.body[:300].decode("utf-8", "replace")).strip()
        return RegistryError(f"{self.name}: {what}: HTTP {answer.status}{hint}"
                             + (f": {detail}" if detail else ""))

    def published(self, tag: str) -> Published | None:
        """What `tag` (or a digest) serves (None: no such tag); the digest is checked against
        the bytes, and a digest asked for must be the digest answered."""
        answer = self._send("GET", self._url(f"manifests/{tag}"),
                            headers={"Accept": IMAGE_TYPES}, limit=MAX_MANIFEST)
        if answer.status == 404:
            return None
        if answer.status != 200:
            raise self._fail(f"reading the tag {tag}", answer)
        digest = "sha256:" + hashlib.sha256(answer.body).hexdigest()
        claimed = answer.headers.get("Docker-Content-Digest", "")
        if claimed and claimed != digest:
            raise RegistryError(f"{self.name}:{tag}: the manifest hashes to {digest}, the"
                                f" registry says {claimed}")
        if tag.startswith("sha256:") and tag != digest:
            raise RegistryError(f"{self.name}@{tag}: the registry answered another manifest,"
                                f" {digest}", tip="the registry (or a proxy) is not to be"
                                " trusted with this image")
        try:
            document = json.loads(answer.body)
            config = document.get("config", {}).get("digest")
        except (ValueError, AttributeError, RecursionError):
            document, config = {}, None
        media_type = answer.headers.get("Content-Type") or document.get("mediaType")
        return Published(digest, config if isinstance(config, str) else None,
                         str(media_type or OCI_MANIFEST), len(answer.body))

    def manifest(self, tag: str, accept: str = OCI_MANIFEST) -> bytes | None:
        """A manifest's (or with `accept`, an index's) bytes by tag or digest; None: none."""
        answer = self._send("GET", self._url(f"manifests/{tag}"), headers={"Accept": accept},
                            limit=MAX_MANIFEST)
        if answer.status == 404:
            return None
        if answer.status != 200:
            raise self._fail(f"reading the manifest {tag}", answer)
        return answer.body

    def put_manifest(self, tag: str, body: bytes, media_type: str = OCI_MANIFEST) -> str:
        answer = self._send("PUT", self._url(f"manifests/{tag}"), body,
                            {"Content-Type": media_type})
        if answer.status not in (200, 201):
            raise self._fail(f"writing the manifest {tag}", answer)
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def blob(self, digest: str, limit: int = MAX_BLOB) -> bytes:
        answer = self._send("GET", self._url(f"blobs/{digest}"), limit=limit)
        if answer.status != 200:
            raise self._fail(f"reading the blob {digest}", answer)
        if "sha256:" + hashlib.sha256(answer.body).hexdigest() != digest:
            raise RegistryError(f"{self.name}: the blob {digest} does not hash to its digest")
        return answer.body

    def put_blob(self, data: bytes) -> str:
        """Upload `data` (monolithic POST + PUT) unless the registry has it; its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self._send("HEAD", self._url(f"blobs/{digest}")).status == 200:
            return digest
        started = self._send("POST", self._url("blobs/uploads/"), b"")
        location = started.headers.get("Location", "")
        if started.status != 202 or not location:
            raise self._fail("starting a blob upload", started)
        target = urllib.parse.urljoin(self._url(""), location)
        parts = urllib.parse.urlsplit(target)
        if parts.scheme != "https" and not (parts.scheme == "http" and (
                parts.netloc == self.host or registry.is_loopback(parts.netloc))):
            raise RegistryError(f"{self.name}: the registry named {target[:200]!r} for the"
                                " upload: neither HTTPS nor this registry",
                                tip="the registry (or a proxy) is not to be trusted")
        target += ("&" if "?" in target else "?") + urllib.parse.urlencode({"digest": digest})
        done = self._send("PUT", target, data, {"Content-Type": "application/octet-stream"})
        if done.status != 201:
            raise self._fail(f"uploading the blob {digest}", done)
        return digest

    def referrers(self, digest: str) -> list[dict[str, object]] | None:
        """The OCI 1.1 referrers of `digest`; None where the API is missing (404)."""
        answer = self._send("GET", f"{registry.base_url(self.host)}/v2/{self.path}"
                                   f"/referrers/{digest}", headers={"Accept": OCI_INDEX},
                            limit=MAX_MANIFEST)
        if answer.status in (404, 405):
            return None
        if answer.status != 200:
            raise self._fail(f"listing the referrers of {digest}", answer)
        try:
            manifests = json.loads(answer.body).get("manifests", [])
        except (ValueError, AttributeError, RecursionError):
            return None
        if not isinstance(manifests, list):
            return None  # not an OCI index: no referrers to read
        return [m for m in manifests if isinstance(m, dict)]


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit} bytes"

"""Ask a registry (Docker Registry HTTP API v2) what a tag points at: an independent check of
what `docker push` reported.

Credentials come from TORCHSTACK_REGISTRY_USER/_PASSWORD: sent as Basic auth, or traded for a
bearer token when the registry asks for one (`WWW-Authenticate: Bearer realm=...`, as GHCR and
Docker Hub do). Plain HTTP is used for loopback registries only (localhost, 127.0.0.0/8, [::1]);
every other registry, and every token realm, is spoken to over HTTPS, so credentials never
cross a network in clear text. The manifest's digest is computed from the bytes received and
must equal what the registry claims.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import IO, Any

from torchstack.config import kinds
from torchstack.errors import PromoteError

MANIFEST_TYPES = ("application/vnd.docker.distribution.manifest.v2+json,"
                  " application/vnd.oci.image.manifest.v1+json")
# An image manifest is a few KiB; a token answer less. Anything larger is not one.
MAX_BODY = 4 << 20


@dataclass(frozen=True)
class RemoteImage:
    digest: str  # manifest digest, what `pull <repo>@<digest>` takes
    config_digest: str  # equals the local Docker image ID of the same image


class RegistryError(PromoteError):
    """The registry could not confirm a tag (exit 6 when it reaches the CLI)."""


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


def fetch_manifest(ref: str, timeout_s: float = 30) -> RemoteImage:
    host, repository, tag = split_reference(ref)
    url = f"{base_url(host)}/v2/{repository}/manifests/{tag}"
    try:
        try:
            body, claimed = _get(url, _basic_auth(), timeout_s)
        except urllib.error.HTTPError as exc:
            challenge = exc.headers.get("WWW-Authenticate", "") if exc.code == 401 else ""
            if not challenge.lower().startswith("bearer "):
                raise
            token = _bearer_token(ref, challenge, timeout_s)
            body, claimed = _get(url, {"Authorization": f"Bearer {token}"}, timeout_s)
    except urllib.error.HTTPError as exc:
        hint = {401: " (credentials refused: TORCHSTACK_REGISTRY_USER/_PASSWORD)",
                404: " (no such tag)"}.get(exc.code, "")
        raise RegistryError(f"{ref}: the registry answered HTTP {exc.code}{hint}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RegistryError(f"{ref}: cannot reach the registry at {base_url(host)} ({reason})"
                            ) from None
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    if claimed and claimed != digest:
        raise RegistryError(f"{ref}: the manifest's bytes hash to {digest}, but the registry"
                            f" says {claimed}; the answer was altered or truncated")
    try:
        config = json.loads(body)["config"]["digest"]
    except (ValueError, KeyError, TypeError):
        raise RegistryError(f"{ref}: the registry sent a manifest without a config") from None
    if not isinstance(config, str) or not kinds.DIGEST.fullmatch(config):
        raise RegistryError(f"{ref}: the manifest's config digest is not a digest")
    return RemoteImage(digest=digest, config_digest=config)


class _SafeRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only where credentials may go: HTTPS, or plain HTTP on loopback."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int,
                         msg: str, headers: Any, newurl: str) -> urllib.request.Request | None:
        parts = urllib.parse.urlsplit(newurl)
        if parts.scheme != "https" and not (parts.scheme == "http"
                                            and is_loopback(parts.netloc)):
            raise urllib.error.URLError(f"refusing a redirect to {newurl}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


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


def _bearer_token(ref: str, challenge: str, timeout_s: float) -> str:
    fields = parse_challenge(challenge)
    realm = fields.get("realm", "")
    parts = urllib.parse.urlsplit(realm)
    if not (parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.netloc))):
        raise RegistryError(f"{ref}: the registry's token realm {realm!r} is not an https URL;"
                            " credentials are not sent there")
    query = urllib.parse.urlencode({k: v for k, v in fields.items() if k != "realm"})
    try:
        body, _ = _get(f"{realm}?{query}", _basic_auth(), timeout_s)
    except urllib.error.HTTPError as exc:
        raise RegistryError(f"{ref}: the token endpoint {realm} answered HTTP {exc.code}"
                            + (" (credentials refused)" if exc.code in (401, 403) else "")
                            ) from None
    try:
        answer = json.loads(body)
    except ValueError:
        raise RegistryError(f"{ref}: the token endpoint {realm} did not answer JSON") from None
    token = answer.get("token") or answer.get("access_token") if isinstance(answer, dict) else None
    if not isinstance(token, str) or not token or kinds.text_problem(token):
        raise RegistryError(f"{ref}: the token endpoint {realm} answered without a token"
                            " ('token' or 'access_token')")
    return token


def _basic_auth() -> dict[str, str]:
    user = os.environ.get("TORCHSTACK_REGISTRY_USER")
    password = os.environ.get("TORCHSTACK_REGISTRY_PASSWORD", "")
    if not user:
        return {}
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}

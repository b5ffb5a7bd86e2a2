"""Ask a registry (Docker Registry HTTP API v2) what a tag points at: an independent check of
what `docker push` reported.

Credentials come from TORCHSTACK_REGISTRY_USER/_PASSWORD: sent as Basic auth, or traded for a
bearer token when the registry asks for one (`WWW-Authenticate: Bearer realm=...`, as GHCR and
Docker Hub do). Plain HTTP is used for loopback registries only.
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

MANIFEST_TYPES = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
))


@dataclass(frozen=True)
class RemoteImage:
    digest: str  # manifest digest, what `pull <repo>@<digest>` takes
    config_digest: str  # equals the local Docker image ID of the same image


class RegistryError(Exception):
    pass


def split_reference(ref: str) -> tuple[str, str, str]:
    """"127.0.0.1:5000/torchstack:tag" -> ("127.0.0.1:5000", "torchstack", "tag")."""
    name, _, tag = ref.rpartition(":")
    host, _, repository = name.partition("/")
    looks_like_host = "." in host or ":" in host or host == "localhost"
    if not repository or not tag or not looks_like_host:
        raise RegistryError(f"'{ref}' does not name a registry host, repository and tag")
    return host, repository, tag


def fetch_manifest(ref: str, timeout_s: float = 30) -> RemoteImage:
    host, repository, tag = split_reference(ref)
    scheme = "http" if _is_local(host) else "https"
    url = f"{scheme}://{host}/v2/{repository}/manifests/{tag}"
    try:
        try:
            body, digest = _get(url, _basic_auth(), timeout_s)
        except urllib.error.HTTPError as exc:
            challenge = exc.headers.get("WWW-Authenticate", "") if exc.code == 401 else ""
            if not challenge.lower().startswith("bearer "):
                raise
            token = _bearer_token(challenge, timeout_s)
            body, digest = _get(url, {"Authorization": f"Bearer {token}"}, timeout_s)
    except urllib.error.HTTPError as exc:
        raise RegistryError(f"{ref}: the registry answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise RegistryError(f"{ref}: cannot reach the registry ({exc})") from None
    try:
        config = json.loads(body)["config"]["digest"]
    except (ValueError, KeyError, TypeError):
        raise RegistryError(f"{ref}: the registry sent a manifest without a config") from None
    return RemoteImage(digest=digest, config_digest=str(config))


def _is_local(host: str) -> bool:
    name = host.split(":")[0]
    return name in ("localhost", "::1") or name.startswith("127.")


def _get(url: str, headers: dict[str, str], timeout_s: float) -> tuple[bytes, str]:
    request = urllib.request.Request(url, headers={"Accept": MANIFEST_TYPES, **headers})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return response.read(), response.headers.get("Docker-Content-Digest", "")


def parse_challenge(challenge: str) -> dict[str, str]:
    """`Bearer realm="https://x/token",service="x",scope="repository:a:pull"` -> its fields."""
    fields = re.findall(r'(\w+)="([^"]*)"', challenge)
    return dict(fields)


def _bearer_token(challenge: str, timeout_s: float) -> str:
    fields = parse_challenge(challenge)
    if "realm" not in fields:
        raise ValueError(f"unusable auth challenge: {challenge}")
    query = urllib.parse.urlencode({k: v for k, v in fields.items() if k != "realm"})
    body, _ = _get(f"{fields['realm']}?{query}", _basic_auth(), timeout_s)
    answer = json.loads(body)
    return str(answer.get("token") or answer["access_token"])


def _basic_auth() -> dict[str, str]:
    user = os.environ.get("TORCHSTACK_REGISTRY_USER")
    password = os.environ.get("TORCHSTACK_REGISTRY_PASSWORD", "")
    if not user:
        return {}
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}

"""Ask a registry (Docker Registry HTTP API v2) what a tag points at: an independent check of
what `docker push` reported. Anonymous or basic-auth (TORCHSTACK_REGISTRY_USER/_PASSWORD)."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
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
    if not repository or not tag or "." not in host and ":" not in host and host != "localhost":
        raise RegistryError(f"'{ref}' does not name a registry host, repository and tag")
    return host, repository, tag


def fetch_manifest(ref: str, timeout_s: float = 30) -> RemoteImage:
    host, repository, tag = split_reference(ref)
    scheme = "http" if _is_local(host) else "https"
    request = urllib.request.Request(f"{scheme}://{host}/v2/{repository}/manifests/{tag}",
                                     headers={"Accept": MANIFEST_TYPES, **_auth_header()})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read()
            digest = response.headers.get("Docker-Content-Digest", "")
    except urllib.error.HTTPError as exc:
        raise RegistryError(f"{ref}: the registry answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise RegistryError(f"{ref}: cannot reach the registry ({exc})") from None
    try:
        config = json.loads(body)["config"]["digest"]
    except (ValueError, KeyError, TypeError):
        raise RegistryError(f"{ref}: the registry sent a manifest without a config") from None
    return RemoteImage(digest=digest, config_digest=str(config))


def _is_local(host: str) -> bool:
    name = host.split(":")[0]
    return name in ("localhost", "::1") or name.startswith("127.")


def _auth_header() -> dict[str, str]:
    user = os.environ.get("TORCHSTACK_REGISTRY_USER")
    password = os.environ.get("TORCHSTACK_REGISTRY_PASSWORD", "")
    if not user:
        return {}
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}

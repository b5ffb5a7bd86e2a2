"""Where an image came from: OCI source, revision and created labels, read from git.

They are passed at build time, outside the rendered files and the input hash, so a new commit
does not rebuild unchanged images. `created` is the time of the last commit that touched the
image's context, not the wall clock: the same commit labels the same time on any machine.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

OCI = "org.opencontainers.image"


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def public_url(remote: str) -> str:
    """A remote as a browsable https URL without credentials (scp-style remotes included)."""
    if "://" not in remote and ":" in remote and "@" in remote.split(":", 1)[0]:
        host, _, path = remote.partition(":")
        remote = f"https://{host.rpartition('@')[2]}/{path}"
    parts = urlsplit(remote)
    if parts.scheme in ("ssh", "git"):
        parts = parts._replace(scheme="https")
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=netloc)).removesuffix(".git")


def oci_labels(root: Path, context: Path) -> dict[str, str]:
    """source, revision and created for an image whose context is `context` (empty: no git)."""
    labels: dict[str, str] = {}
    remote = _git(root, "remote", "get-url", "origin")
    if remote:
        labels[f"{OCI}.source"] = public_url(remote)
    revision = _git(root, "rev-parse", "HEAD")
    if revision:
        labels[f"{OCI}.revision"] = revision
    created = _git(root, "log", "-1", "--format=%cI", "--", str(context))
    if created:
        labels[f"{OCI}.created"] = created
    return labels

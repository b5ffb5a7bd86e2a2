"""OCI source/revision/created labels from a real git repository (build/provenance.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from torchstack.build.provenance import oci_labels, public_url


def git(root: Path, *args: str, when: str = "2026-01-02T03:04:05+00:00") -> str:
    env = {**os.environ, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when,
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    return subprocess.run(["git", "-C", str(root), *args], check=True, env=env,
                          capture_output=True, text=True).stdout.strip()


def test_created_is_the_last_commit_that_touched_the_context(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    git(tmp_path, "remote", "add", "origin", "https://tok:secret@github.com/acme/stack.git")
    (tmp_path / "images/a").mkdir(parents=True)
    (tmp_path / "images/a/Dockerfile").write_text("FROM scratch\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "a", when="2026-01-02T03:04:05+00:00")
    (tmp_path / "README").write_text("later\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "b", when="2026-03-04T05:06:07+00:00")
    labels = oci_labels(tmp_path, tmp_path / "images/a")
    assert labels == {
        "org.opencontainers.image.source": "https://github.com/acme/stack",
        "org.opencontainers.image.revision": git(tmp_path, "rev-parse", "HEAD"),
        # Not the newer commit's time: it did not touch images/a.
        "org.opencontainers.image.created": "2026-01-02T03:04:05+00:00",
    }


def test_outside_git_there_are_no_labels(tmp_path: Path) -> None:
    assert oci_labels(tmp_path, tmp_path) == {}


@pytest.mark.parametrize(("remote", "url"), [
    ("git@github.com:acme/stack.git", "https://github.com/acme/stack"),
    ("ssh://git@gitlab.example/acme/stack.git", "https://gitlab.example/acme/stack"),
    ("https://user:pw@example.org/x/y", "https://example.org/x/y"),
])
def test_public_url_drops_credentials(remote: str, url: str) -> None:
    assert public_url(remote) == url

"""Failures that stop before any Docker build: no daemon, an unreachable package index."""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dockerutil import last_build, run_cli, statuses
from tests.integration.fixture_matrix import ALPHA, BASE, change_layer, write_fixture_matrix

CU126 = "torch2.9.1-cu126-py3.11-base"


def test_no_daemon_exits_3_with_how_to_start_or_install_one(
        tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "matrix"
    write_fixture_matrix(root)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon-here.sock")
    code, output = run_cli(capsys, root, "build", "--no-progress")
    assert code == 3, output
    assert "cannot reach a Docker Engine" in output and "nothing was built" in output
    for how in ("sudo systemctl start docker", "dockerd &", "scripts/start-services.sh",
                "apt-get install docker.io", "DOCKER_HOST"):
        assert how in output
    assert "Traceback" not in output
    assert not (root / ".torchstack/runs").exists()


@pytest.mark.docker
def test_an_unlocked_variant_fails_at_once_naming_its_index(
        repo_matrix_copy: Path, capsys: Any, docker_api: Any, os_base: str) -> None:
    """cu126 cannot be locked here (the PyTorch index is out of reach): refused, no build."""
    started = time.monotonic()
    code, output = run_cli(capsys, repo_matrix_copy, "build", "torch2.9.1-cu126-*",
                           "--no-progress")
    elapsed = time.monotonic() - started
    assert code == 4, output
    assert elapsed < 30, f"took {elapsed:.0f}s"
    build = last_build(repo_matrix_copy)
    assert statuses(build) == {CU126: "failed", "torch2.9.1-cu126-py3.11-vision": "skipped",
                               "torch2.9.1-cu126-py3.11-nlp": "skipped"}
    assert build["docker_builds"] == 0
    reason = build["images"][CU126]["reason"]
    assert f"images/{CU126}/pylock.toml does not exist" in reason
    assert "where https://download.pytorch.org/whl/cu126 is reachable" in reason
    assert f"torchstack lock {CU126}" in output


@pytest.mark.docker
def test_an_unreachable_mirror_fails_fast_naming_the_url(
        fixture_copy: Path, capsys: Any, docker_api: Any) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    mirror = f"http://127.0.0.1:{port}/simple"
    change_layer(fixture_copy, "alpha", f"mirror-{uuid.uuid4().hex[:8]}")  # must be built
    started = time.monotonic()
    code, output = run_cli(capsys, fixture_copy, "build", ALPHA, "--index", f"pypi={mirror}",
                           "--no-progress")
    elapsed = time.monotonic() - started
    assert code == 4, output
    assert elapsed < 30, f"took {elapsed:.0f}s; the probe should fail within ~10s"
    build = last_build(fixture_copy)
    assert statuses(build) == {BASE: "cached", ALPHA: "failed"}
    assert build["docker_builds"] == 0
    reason = build["images"][ALPHA]["reason"]
    assert reason.startswith(f"the package index {mirror}:"), reason
    assert "--index pypi=URL" in reason and "TORCHSTACK_PIP_INDEX_URL" in reason

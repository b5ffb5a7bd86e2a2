"""Failures that stop before any Docker build: no daemon, an unreachable package index."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dockerutil import last_build, run_cli, statuses
from tests.integration.fixture_matrix import write_fixture_matrix

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
def test_an_unreachable_torch_index_fails_fast_and_says_how_to_use_a_mirror(
        repo_matrix_copy: Path, capsys: Any, docker_api: Any, os_base: str) -> None:
    started = time.monotonic()
    code, output = run_cli(capsys, repo_matrix_copy, "build", CU126, "--no-progress")
    elapsed = time.monotonic() - started
    assert code == 4, output
    assert elapsed < 30, f"took {elapsed:.0f}s; the probe should fail within ~10s"
    build = last_build(repo_matrix_copy)
    assert statuses(build) == {CU126: "failed"}
    assert build["docker_builds"] == 0
    reason = build["images"][CU126]["reason"]
    assert "https://download.pytorch.org/whl/cu126" in reason
    assert "--index cu126=URL" in reason and "TORCHSTACK_TORCH_INDEX_URL" in reason
    assert "https://download.pytorch.org/whl/cu126" in output and "--index cu126=" in output


@pytest.mark.docker
def test_children_of_an_unreachable_variant_are_skipped(
        repo_matrix_copy: Path, capsys: Any, docker_api: Any, os_base: str) -> None:
    code, output = run_cli(capsys, repo_matrix_copy, "build", "torch2.9.1-cu126-*",
                           "--no-progress")
    assert code == 4, output
    assert statuses(last_build(repo_matrix_copy)) == {
        CU126: "failed", "torch2.9.1-cu126-py3.11-vision": "skipped",
        "torch2.9.1-cu126-py3.11-nlp": "skipped"}

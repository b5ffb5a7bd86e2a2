"""`nox -s build -- <base> --push` on the real torch 2.9.1 + CUDA 12.8 base image.

The session's three verbs (build, check --gpu auto, promote --push) run in-process on a copy of
the repository's matrix; the image is found by its input hash, not rebuilt. Each test pushes
into a repository of its own, where the registry mounts the layers the project already pushed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from tests.integration.dockerutil import last_build, run_cli
from tests.integration.promoteutil import (
    configure,
    http_config_digest,
    http_manifest,
    local_id,
    pull_by_digest,
    skopeo_inspect,
    write_record,
)

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.torch_image]
BASE = "torch2.9.1-cu128-py3.11-base"
RELEASE = "2.9.1-cuda12.8-cudnn9-py3.11-base"
ALIASES = ("2.9-cuda12.8-base", "v2.9", "latest")


def nox_build_push(root: Path, capsys: Any) -> tuple[dict[str, Any], int, str]:
    """What `nox -s build -- BASE --no-progress --push` runs. Returns (the check run's report
    entry for BASE, promote's exit code, promote's output)."""
    code, output = run_cli(capsys, root, "build", BASE, "--no-progress")
    assert code == 0, output
    assert last_build(root)["images"][BASE]["status"] in ("cached", "built")
    code, output = run_cli(capsys, root, "check", "--gpu", "auto", BASE)
    assert code == 0, output
    report = json.loads((root / ".torchstack/runs/latest/report.json").read_text())
    entry: dict[str, Any] = next(i for i in report["images"] if i["id"] == BASE)
    assert entry["status"] == "pass" and entry["level"] == "cpu", entry
    code, promoted = run_cli(capsys, root, "promote", BASE, "--push")
    return entry, code, promoted


def record_of(root: Path, docker_id: str) -> dict[str, Any]:
    path = root / ".torchstack/records" / (docker_id.removeprefix("sha256:") + ".json")
    rows: list[dict[str, Any]] = json.loads(path.read_text())
    return rows[-1]


def test_cpu_policy_pushes_the_checked_image_under_its_release_tag(
        repo_matrix_copy: Path, it_repository: str, docker_api: Any, capsys: Any,
        os_base: str) -> None:
    configure(repo_matrix_copy, require="cpu")
    checked, code, output = nox_build_push(repo_matrix_copy, capsys)
    assert code == 0, output
    checked_id = checked["docker_id"]
    assert record_of(repo_matrix_copy, checked_id)["passed"] is True
    release = f"{it_repository}:{RELEASE}"
    assert http_config_digest(release) == checked_id
    digest, config = skopeo_inspect(release)
    assert config == checked_id and digest == http_manifest(release)[2]
    for alias in ALIASES:
        assert http_manifest(f"{it_repository}:{alias}")[2] == digest, alias
        assert local_id(docker_api, f"{it_repository}:{alias}") == checked_id
    assert pull_by_digest(docker_api, it_repository, digest) == checked_id
    assert f"pushed {release}" in output and "FAILED" not in output

    # The manifest lists what is inside, and its SBOM is valid CycloneDX 1.5.
    folder = repo_matrix_copy / ".torchstack/runs/latest/manifests"
    manifest = json.loads((folder / f"{BASE}.manifest.json").read_text())
    assert manifest["docker_id"] == checked_id and manifest["release_tag"] == release
    assert manifest["input_hash"] == checked["input_hash"]
    assert manifest["checks"]["summary"] == checked["suite"]["summary"]
    python = {p["name"].lower(): p["version"] for p in manifest["packages"]["python"]}
    assert python["torch"] == "2.9.1" and python["numpy"] == "2.2.6"  # PyPI: no +cu128
    sbom = (folder / f"{BASE}.cdx.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(sbom) is None
    assert "pkg:pypi/torch@2.9.1\"" in sbom

    # An unchanged image with a passing record is not checked again.
    code, output = run_cli(capsys, repo_matrix_copy, "check", "--gpu", "auto", BASE)
    assert code == 0, output
    assert "CACHED" in output and "passed cpu checks" in output


def test_gpu_policy_pushes_only_the_candidate_until_a_gpu_runner_passes(
        repo_matrix_copy: Path, it_repository: str, docker_api: Any, capsys: Any,
        os_base: str) -> None:
    checked, code, output = nox_build_push(repo_matrix_copy, capsys)
    assert code == 0, output
    checked_id = checked["docker_id"]
    assert "a release needs gpu" in output and "candidate only" in output
    candidate = f"{it_repository}:{BASE}-{checked['input_hash'][:12]}"
    assert http_config_digest(candidate) == checked_id
    assert skopeo_inspect(candidate)[1] == checked_id
    for tag in (RELEASE, *ALIASES):
        assert http_manifest(f"{it_repository}:{tag}")[0] == 404, tag
        assert local_id(docker_api, f"{it_repository}:{tag}") is None, tag

    # The GPU runner's `check --gpu required` passes: the record it writes, with the facts the
    # image reported to the real cpu check, lets the next promote move the release tags.
    write_record(repo_matrix_copy, BASE, checked_id, checked["input_hash"], "gpu",
                 facts=record_of(repo_matrix_copy, checked_id)["facts"])
    code, output = run_cli(capsys, repo_matrix_copy, "promote", BASE, "--push")
    assert code == 0, output
    for tag in (RELEASE, *ALIASES):
        assert http_config_digest(f"{it_repository}:{tag}") == checked_id, tag
    assert skopeo_inspect(f"{it_repository}:{RELEASE}")[1] == checked_id

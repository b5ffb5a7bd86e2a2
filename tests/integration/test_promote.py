"""`torchstack promote` on the small fixture images against the real local registry.

The fixture images hold no torch, so a GPU runner's passing `check --gpu required` is stood in
for by a record written as `check` writes it, with the facts an exact image reports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from tests.integration.dockerutil import run_cli
from tests.integration.fixture_matrix import ALPHA, BASE
from tests.integration.promoteutil import (
    built,
    configure,
    http_config_digest,
    http_manifest,
    local_id,
    pull_by_digest,
    skopeo_inspect,
    write_record,
)

pytestmark = [pytest.mark.docker, pytest.mark.registry]
BASE_RELEASES = ("it-2.9.1-cuda12.8-base", "2.9-cuda12.8-base", "v2.9", "latest")


def assert_served(api: Any, ref: str, docker_id: str) -> str:
    """`ref` is `docker_id` locally, through the Registry API and through skopeo; its digest."""
    assert local_id(api, ref) == docker_id, ref
    status, manifest, digest = http_manifest(ref)
    assert status == 200 and manifest is not None, f"{ref}: HTTP {status}"
    assert manifest["config"]["digest"] == docker_id, ref
    assert skopeo_inspect(ref) == (digest, docker_id), ref
    return digest


def manifests_of(root: Path, image_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    folder = root / ".torchstack/runs/latest/manifests"
    manifest = json.loads((folder / f"{image_id}.manifest.json").read_text())
    sbom = json.loads((folder / f"{image_id}.cdx.json").read_text())
    return manifest, sbom


def test_gpu_policy_pushes_the_candidate_then_a_gpu_pass_releases_with_aliases(
        fixture_copy: Path, it_repository: str, docker_api: Any, capsys: Any) -> None:
    configure(fixture_copy, require="gpu", aliases=True)
    docker_id, input_hash = built(docker_api, fixture_copy, BASE)
    candidate = f"{it_repository}:{BASE}-{input_hash[:12]}"
    releases = [f"{it_repository}:{tag}" for tag in BASE_RELEASES]

    # A CPU-only builder: its passing cpu checks earn the candidate tag, and nothing else.
    write_record(fixture_copy, BASE, docker_id, input_hash, "cpu")
    code, output = run_cli(capsys, fixture_copy, "promote", BASE, "--push")
    assert code == 0, output
    assert "a release needs gpu" in output and "candidate only" in output
    assert_served(docker_api, candidate, docker_id)
    for ref in releases:
        assert http_manifest(ref)[0] == 404, ref
        assert local_id(docker_api, ref) is None, ref

    # The GPU runner's record (as gpu_smoke writes it) promotes the very same image.
    write_record(fixture_copy, BASE, docker_id, input_hash, "gpu")
    code, output = run_cli(capsys, fixture_copy, "promote", BASE, "--push")
    assert code == 0, output
    digests = {ref: assert_served(docker_api, ref, docker_id) for ref in releases}
    assert len(set(digests.values())) == 1  # one manifest under every name
    for ref in releases:
        assert f"pushed {ref}" in output
    assert "FAILED" not in output
    digest = digests[releases[0]]
    assert pull_by_digest(docker_api, it_repository, digest) == docker_id
    manifest, _ = manifests_of(fixture_copy, BASE)
    assert manifest["release_tag"] == releases[0]
    assert f"{it_repository}@{digest}" in manifest["repo_digests"]
    assert manifest["checks"]["level"] == "gpu"
    assert {t["ref"]: t["digest"] for t in manifest["tags"]} == {
        candidate: digest, **dict.fromkeys(releases, digest)}
    assert not (fixture_copy / ".torchstack/promote-journal.json").exists()


def test_manifest_and_sbom_describe_the_promoted_image(
        fixture_copy: Path, it_repository: str, docker_api: Any, capsys: Any) -> None:
    configure(fixture_copy, aliases=True)  # the fixture's policy: cpu
    docker_id, input_hash = built(docker_api, fixture_copy, ALPHA)
    write_record(fixture_copy, ALPHA, docker_id, input_hash, "cpu")
    code, output = run_cli(capsys, fixture_copy, "promote", ALPHA)  # tags only, no push
    assert code == 0, output
    release = f"{it_repository}:it-2.9.1-cuda12.8-alpha"
    assert local_id(docker_api, release) == docker_id
    assert local_id(docker_api, f"{it_repository}:2.9-cuda12.8-alpha") == docker_id
    assert local_id(docker_api, f"{it_repository}:latest") is None  # base only
    assert http_manifest(release)[0] == 404  # nothing was pushed

    manifest, sbom = manifests_of(fixture_copy, ALPHA)
    inspected = docker_api.inspect_image(docker_id)
    assert manifest["image_id"] == ALPHA and manifest["docker_id"] == docker_id
    assert manifest["input_hash"] == input_hash
    assert manifest["size_bytes"] == inspected["Size"] > 0
    assert manifest["release_tag"] == release
    assert manifest["checks"]["level"] == "cpu" and manifest["checks"]["passed"] is True
    assert manifest["checks"]["summary"]["fail"] == 0
    assert manifest["checks"]["facts"]["torch"] == "2.9.1+cu128"
    assert all(not t["pushed"] and t["error"] is None for t in manifest["tags"])
    python = {p["name"]: p["version"] for p in manifest["packages"]["python"]}
    assert python["idna"] == "3.10" and python["six"] == "1.17.0"
    debian = {p["name"]: p for p in manifest["packages"]["debian"]}
    assert "python3" in debian and debian["dpkg"]["architecture"]

    errors = JsonStrictValidator(SchemaVersion.V1_5).validate_str(json.dumps(sbom))
    assert errors is None, f"the SBOM is not valid CycloneDX 1.5: {str(errors)[:500]}"
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.5"
    assert sbom["metadata"]["component"]["name"] == ALPHA
    assert sbom["metadata"]["component"]["type"] == "container"
    purls = {c["purl"] for c in sbom["components"]}
    assert "pkg:pypi/idna@3.10" in purls and "pkg:pypi/six@1.17.0" in purls
    assert any(p.startswith("pkg:deb/debian/python3@") for p in purls)
    assert len(sbom["components"]) == len(python) + len(debian)


def test_facts_that_disagree_with_the_matrix_move_no_release_tag(
        fixture_copy: Path, it_repository: str, docker_api: Any, capsys: Any) -> None:
    docker_id, input_hash = built(docker_api, fixture_copy, ALPHA)
    facts = {"torch": "2.9.0+cu128", "cuda": "12.8", "python": "3.11.2"}
    write_record(fixture_copy, ALPHA, docker_id, input_hash, "gpu", facts=facts)
    code, output = run_cli(capsys, fixture_copy, "promote", ALPHA, "--push")
    assert code == 6, output
    assert "not promoted" in output and "facts disagree with the matrix" in output
    assert "torch is '2.9.0+cu128' inside the image" in output
    release = f"{it_repository}:it-2.9.1-cuda12.8-alpha"
    assert local_id(docker_api, release) is None
    assert http_config_digest(release) is None
    # The candidate names one build and promises nothing: it is pushed, as any builder would.
    assert http_config_digest(f"{it_repository}:{ALPHA}-{input_hash[:12]}") == docker_id

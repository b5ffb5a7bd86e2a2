"""The Kubernetes loop on the small fixture images, the real local registry and a stand-in API
server: `k8s` pins the candidate's digest, `record import` proves a report's digest against
the registry and the pod's imageID, and `promote` releases on the imported gpu record.

No GPU and no cluster here: the passing GPU report is the synthetic one
(tests/unit/reports/synthetic-*.json), the failing one is the real suite run on this host with
`--gpu required`, and the cluster is tests/unit/kubeapi_server.py. This never ran against a
real cluster.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.dockerutil import run_cli
from tests.integration.fixture_matrix import BASE, write_fixture_matrix
from tests.integration.promoteutil import (
    built,
    configure,
    expected_facts,
    http_manifest,
    write_record,
)
from tests.paths import REPO
from tests.unit.kubeapi_server import FakeApiServer, FakeCluster, FakePod, write_kubeconfig
from tests.unit.reportutil import finish, start_suite, synthetic
from torchstack.check.container import suite_version
from torchstack.checks.frame import frame
from torchstack.cli import main
from torchstack.config.matrix import load_matrix
from torchstack.resolve.records import RecordStore
from torchstack.resolve.tags import decide

pytestmark = [pytest.mark.docker, pytest.mark.registry]


@pytest.fixture(scope="module")
def fixture_template(tmp_path_factory: pytest.TempPathFactory, os_base: str,
                     _built_roots: list[Path]) -> Path:
    """conftest's fixture matrix, locked before it is built (builds install only from locks;
    conftest's own template does not lock yet)."""
    root = tmp_path_factory.mktemp("fixture") / "matrix"
    write_fixture_matrix(root, salt=uuid.uuid4().hex[:12], base_image=os_base)
    _built_roots.append(root)
    for verb in (["lock"], ["render"], ["build", "--no-progress"]):
        code = main(["--matrix", str(root / "matrix.yaml"), *verb])
        assert code == 0, f"`torchstack {verb[0]}` of the fixture matrix failed ({code})"
    return root


def pushed_candidate(root: Path, repository: str, api: Any, capsys: Any) -> tuple[str, str]:
    """Policy gpu; the candidate tag pushed (as `promote --push` does once a cpu record exists;
    pushed here with the Engine API because promote now also compares the installed packages
    with the lock, which needs pip, and the fixture images have none).
    Returns (local image ID, the candidate's manifest digest as the Registry API reports it)."""
    configure(root, require="gpu", checks={"root": ["versions", "cuda", "driver"]})
    shutil.copytree(REPO / "checks", root / "checks",
                    ignore=shutil.ignore_patterns("__pycache__"))
    docker_id, input_hash = built(api, root, BASE)
    write_record(root, BASE, docker_id, input_hash, "cpu")
    candidate = f"{repository}:{BASE}-{input_hash[:12]}"
    api.tag(docker_id, *candidate.rsplit(":", 1))
    for line in api.push(*candidate.rsplit(":", 1), stream=True, decode=True):
        assert "error" not in line, line
    status, manifest, digest = http_manifest(candidate)
    assert status == 200 and manifest and manifest["config"]["digest"] == docker_id
    return docker_id, digest


def records(root: Path, docker_id: str) -> list[Any]:
    return RecordStore(root / ".torchstack" / "records").all_for(docker_id)


def promote_decision(root: Path, api: Any, repository: str) -> Any:
    """commands/promote.py's lookup of the record and the decision it acts on."""
    matrix = load_matrix(root / "matrix.yaml")
    docker_id, input_hash = built(api, root, BASE)
    store = RecordStore.for_matrix(matrix)
    record = (store.verdict(docker_id, input_hash, suite_version(), matrix.promotion_level)
              or store.verdict(docker_id, input_hash, suite_version(), "cpu"))
    return decide(matrix.by_id()[BASE], matrix, repository, input_hash, record,
                  matrix.promotion_level)


def synthetic_pass(root: Path, digest: str) -> str:
    spec = load_matrix(root / "matrix.yaml").by_id()[BASE]
    return "kubelet noise\n" + frame(synthetic(BASE, digest, facts=expected_facts(spec))) + "\n"


def test_k8s_pins_the_candidate_and_a_genuine_gpu_failure_blocks_release(
        fixture_copy: Path, it_repository: str, docker_api: Any, capsys: Any,
        tmp_path: Path) -> None:
    docker_id, digest = pushed_candidate(fixture_copy, it_repository, docker_api, capsys)
    code, output = run_cli(capsys, fixture_copy, "k8s", BASE)
    assert code == 0, output
    docs = [d for d in yaml.safe_load_all(output) if d]
    (job,) = [d for d in docs if d["kind"] == "Job"]
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{it_repository}@{digest}"
    expect = json.loads(config_map["data"]["expect.json"])
    assert expect["image_digest"] == digest

    # The suite, run here on that expect file with --gpu required, fails (no GPU): genuine.
    (tmp_path / "expect.json").write_text(config_map["data"]["expect.json"])
    log = finish(start_suite(tmp_path / "expect.json", "required"))
    report = tmp_path / "job.log"
    report.write_text(log)
    code, output = run_cli(capsys, fixture_copy, "record", "import", str(report))
    assert code == 5, output
    assert "FAILED gpu-level record" in output and "cuda fail" in output
    (failed,) = [r for r in records(fixture_copy, docker_id) if r.level == "gpu"]
    assert not failed.passed and failed.source["path"] == str(report)
    decision = promote_decision(fixture_copy, docker_api, it_repository)
    assert decision.refused and "checks failed at level gpu" in decision.reason


def test_an_imported_gpu_pass_releases_and_a_foreign_digest_is_refused(
        fixture_copy: Path, it_repository: str, docker_api: Any, capsys: Any,
        tmp_path: Path) -> None:
    docker_id, digest = pushed_candidate(fixture_copy, it_repository, docker_api, capsys)
    before = records(fixture_copy, docker_id)
    foreign = tmp_path / "foreign.txt"
    foreign.write_text(synthetic_pass(fixture_copy, "sha256:" + "f" * 64))
    code, output = run_cli(capsys, fixture_copy, "record", "import", str(foreign))
    assert code == 2 and f"is {digest}" in output and "nothing was recorded" in output
    assert records(fixture_copy, docker_id) == before

    good = tmp_path / "synthetic-pass.txt"
    good.write_text(synthetic_pass(fixture_copy, digest))
    code, output = run_cli(capsys, fixture_copy, "record", "import", str(good))
    assert code == 0, output
    assert "passing gpu-level record" in output and "NVIDIA H100 80GB HBM3" in output
    decision = promote_decision(fixture_copy, docker_api, it_repository)
    # The fixture matrix's release template is it-{torch}-cuda{cuda}-{flavor}.
    assert decision.releases == (f"{it_repository}:it-2.9.1-cuda12.8-base",)


def test_from_job_cross_checks_the_pods_image_id(fixture_copy: Path, it_repository: str,
                                                 docker_api: Any, capsys: Any, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    docker_id, digest = pushed_candidate(fixture_copy, it_repository, docker_api, capsys)
    log = synthetic_pass(fixture_copy, digest)
    other = "sha256:" + "0" * 64
    cluster = FakeCluster(job="ts-check-it", image=f"{it_repository}@{digest}", pods=[
        FakePod("ts-check-it-abcde", log, f"docker-pullable://{it_repository}@{other}")])
    with FakeApiServer(cluster) as server:
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kc", server.url)))
        before = records(fixture_copy, docker_id)
        code, output = run_cli(capsys, fixture_copy, "record", "import", "--from-job",
                               "ts-check-it")
        assert code == 2 and f"ran image 'docker-pullable://{it_repository}@{other}'" in output
        assert records(fixture_copy, docker_id) == before

        cluster.pods[0].image_id = f"docker-pullable://{it_repository}@{digest}"
        code, output = run_cli(capsys, fixture_copy, "record", "import", "--from-job",
                               "ts-check-it")
        assert code == 0, output
    (imported,) = [r for r in records(fixture_copy, docker_id) if r.level == "gpu"]
    assert imported.passed and imported.source["kind"] == "kubernetes"
    assert (imported.source["context"], imported.source["namespace"], imported.source["job"],
            imported.source["pod"]) == ("fake", "ml", "ts-check-it", "ts-check-it-abcde")
    assert imported.node["device_count"] == 1

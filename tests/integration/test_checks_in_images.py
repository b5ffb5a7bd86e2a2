"""`torchstack check` runs the real suite inside the real torch 2.9.1 cu128 images (CPU mode).

The images are the project's own, found by input hash (built once by test_torch_images or
here). Broken variants are made from them: a /dev/shm of 64 MB, and a torchvision that does
not match torch; the right check must fail and say how to fix it.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dockerutil import run_cli
from tests.paths import REPO
from tests.resolved import local_image
from torchstack.backend.docker import DockerBackend
from torchstack.check.container import run_suite
from torchstack.cli import main
from torchstack.config.matrix import load_matrix

pytestmark = [pytest.mark.docker, pytest.mark.torch_image]
GROUP = ("torch2.9.1-cu128-py3.11-base", "torch2.9.1-cu128-py3.11-vision",
         "torch2.9.1-cu128-py3.11-nlp")
VISION = GROUP[1]
BROKEN_TAG = "torchstack-it:broken-torchvision"


@pytest.fixture
def built_group(repo_matrix_copy: Path, os_base: str) -> Path:
    """The repo matrix's default group, built (found by input hash once it exists)."""
    assert main(["--matrix", str(repo_matrix_copy / "matrix.yaml"), "build", "--no-progress"]) == 0
    return repo_matrix_copy


def suites(root: Path) -> dict[str, dict[str, Any]]:
    report = json.loads((root / ".torchstack/runs/latest/report.json").read_text())
    return {image["id"]: image for image in report["images"]}


def test_cpu_mode_suite_passes_and_reads_versions_inside(built_group: Path, capsys: Any) -> None:
    code, output = run_cli(capsys, built_group, "check", "--gpu", "auto", "--force")
    assert code == 0, output
    run = built_group / ".torchstack/runs/latest"
    assert {p.name for p in run.iterdir()} >= {"report.json", "junit.xml", "summary.md"}
    images = suites(built_group)
    assert set(images) == set(GROUP)
    for image_id, image in images.items():
        assert image["status"] == "pass", image["message"]
        facts = image["suite"]["facts"]
        assert (facts["torch"], facts["cuda"], facts["cudnn"], facts["nccl"]) == (
            "2.9.1+cu128", "12.8", 91002, "2.27.5"), image_id
        checks = {c["id"]: c for c in image["suite"]["checks"]}
        for gpu_check in ("cuda", "driver"):
            assert checks[gpu_check]["status"] == "skip"
            assert "GPU" in checks[gpu_check]["message"]
        assert checks["nccl"]["status"] == "pass" and "gloo" in checks["nccl"]["message"]
        assert checks["matmul"]["metrics"]["fp32_cpu_gflops"]["value"] > 0
        assert checks["versions"]["status"] == "pass"
    summary = (run / "summary.md").read_text()
    assert "CPU GFLOP/s" in summary and all(f"`{i}`" in summary for i in GROUP)
    # Unchanged images with a passing record are not checked again.
    code, output = run_cli(capsys, built_group, "check", "--gpu", "auto")
    assert code == 0, output
    assert [i["status"] for i in suites(built_group).values()] == ["cached"] * 3


def test_small_shm_fails_the_shm_check_with_the_fix(built_group: Path, capsys: Any,
                                                    tmp_path: Path) -> None:
    matrix_file = built_group / "matrix.yaml"
    original = matrix_file.read_text()
    matrix_file.write_text(original.replace("shm_size: 2g", "shm_size: 64m"))
    try:
        code, output = run_cli(capsys, built_group, "check", GROUP[0], "--force")
    finally:
        matrix_file.write_text(original)
    assert code == 5, output
    assert "Traceback" not in output
    checks = {c["id"]: c for c in suites(built_group)[GROUP[0]]["suite"]["checks"]}
    assert checks["shm"]["status"] == "fail"
    assert "--shm-size" in checks["shm"]["message"]
    assert checks["versions"]["status"] == "pass"


def test_gpu_required_without_gpus_fails_clearly(built_group: Path, capsys: Any) -> None:
    code, output = run_cli(capsys, built_group, "check", GROUP[0], "--gpu", "required")
    assert code == 5, output
    assert "Traceback" not in output
    assert "NVIDIA Container Toolkit" in output or "GPU" in output


def test_mismatched_torchvision_fails_versions(built_group: Path, docker_api: Any,
                                              tmp_path: Path) -> None:
    matrix = load_matrix(built_group / "matrix.yaml")
    vision_id = docker_api.inspect_image(matrix.local_tag(VISION))["Id"]
    broken = _with_torchvision(docker_api, vision_id, "0.24.0")
    try:
        backend = DockerBackend(docker_api)
        # It inherits the vision image's hash label; it must not pass for the vision image.
        assert local_image(backend, matrix, VISION) == vision_id
        result = run_suite(backend, matrix, matrix.by_id()[VISION], broken, "test", "auto",
                           tmp_path)
        assert result.status == "fail"
        versions = next(c for c in result.report["checks"] if c["id"] == "versions")  # type: ignore[index]
        assert versions["status"] == "fail"
        assert "torchvision" in versions["message"] and "0.24.1" in versions["message"]
    finally:
        docker_api.remove_image(BROKEN_TAG, force=True)


def _with_torchvision(api: Any, image: str, version: str) -> str:
    """A copy of `image` whose torchvision is another release (no deps, so torch stays)."""
    dockerfile = (
        f"FROM {image}\nUSER 0\nCOPY ca.crt /tmp/ca.crt\n"
        f"RUN PIP_CERT=/tmp/ca.crt pip install --no-deps --no-cache-dir torchvision=={version}"
        " && rm /tmp/ca.crt\nUSER 1000:1000\n"
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile.encode()),
                           ("ca.crt", Path("/etc/ssl/certs/ca-certificates.crt").read_bytes())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    for _ in api.build(fileobj=buffer, custom_context=True, tag=BROKEN_TAG, rm=True,
                       forcerm=True, decode=True):
        pass
    image_id: str = api.inspect_image(BROKEN_TAG)["Id"]
    return image_id


def check_containers(api: Any) -> set[str]:
    """IDs of every check container on the host (running or not)."""
    return {c["Id"] for c in api.containers(all=True,
                                            filters={"label": "io.torchstack.role=check"})}


def test_suite_past_its_timeout_is_stopped_and_removed(built_group: Path, capsys: Any,
                                                       docker_api: Any) -> None:
    matrix_file = built_group / "matrix.yaml"
    original = matrix_file.read_text()
    matrix_file.write_text(original.replace("timeout_s: 900", "timeout_s: 3"))
    before = check_containers(docker_api)
    try:
        code, output = run_cli(capsys, built_group, "check", GROUP[0], "--force")
    finally:
        matrix_file.write_text(original)
    assert code == 5, output
    image = suites(built_group)[GROUP[0]]
    assert image["status"] == "error" and "was stopped" in image["message"]
    assert check_containers(docker_api) - before == set()


def test_sigterm_stops_the_check_and_removes_its_container(built_group: Path,
                                                           docker_api: Any) -> None:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"}
    before = check_containers(docker_api)
    process = subprocess.Popen(
        [sys.executable, "-m", "torchstack", "--matrix", str(built_group / "matrix.yaml"),
         "check", GROUP[0], "--force"], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not check_containers(docker_api) - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert check_containers(docker_api) - before, "the check container never appeared"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert check_containers(docker_api) - before == set()

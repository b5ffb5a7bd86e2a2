"""Deliberately broken variants of the real images fail the right check, with its fix tip.

Thin child Dockerfiles FROM the built torch 2.9.1 cu128 images (outside the matrix and its
locks) remove the C++ compiler, remove TorchCodec, or install a TorchCodec of the wrong
pairing. The suite then runs in them the way the Kubernetes Job runs it: read-only root
filesystem, only /tmp writable (a tmpfs), uid 1000, every capability dropped, no network.
The unbroken images are run the same way first, so a failure is the breakage, not the setup.

Built with the docker.io CLI and BuildKit (`DOCKER_BUILDKIT=1 /usr/bin/docker build`), tagged
torchstack-it:broken-*, removed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.paths import REPO
from torchstack import checks
from torchstack.checks.frame import unframe
from torchstack.checks.result import CheckResult, Report, parse_report
from torchstack.config.expected import expect_for
from torchstack.config.matrix import load_matrix

pytestmark = [pytest.mark.docker, pytest.mark.torch_image]

DOCKER = "/usr/bin/docker"
BASE = "torch2.9.1-cu128-py3.11-base"
NLP = "torch2.9.1-cu128-py3.11-nlp"
WRONG_TORCHCODEC = "0.7.0"  # TorchCodec's table pairs 0.7 with torch 2.8, not 2.9
CA = "/etc/ssl/certs/ca-certificates.crt"

# The child Dockerfiles: each breaks one thing and returns to the image's own user.
NO_COMPILER = """\
FROM {image}
USER 0
RUN rm -f /usr/bin/g++* /usr/bin/c++* /usr/bin/*-g++* /usr/bin/clang++* \\
    /etc/alternatives/c++ && ! command -v g++ && ! command -v c++
USER 1000:1000
"""
NO_TORCHCODEC = """\
FROM {image}
USER 0
RUN python -m pip uninstall -y torchcodec && ! python -c "import torchcodec"
USER 1000:1000
"""
WRONG_PAIRING = """\
FROM {image}
USER 0
RUN --mount=type=secret,id=ca,target=/run/ca.crt PIP_CERT=/run/ca.crt \\
    python -m pip install --no-deps --no-cache-dir torchcodec=={version}
USER 1000:1000
"""


def docker(*args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env}, check=False)


def local_tag(image_id: str) -> str:
    return f"{load_matrix(REPO / 'matrix.yaml').local_repository}:{image_id}"


def require_image(image_id: str, probe: str, missing: str) -> str:
    """The real image's tag, after checking it holds what this test breaks; skip if not."""
    if not shutil.which(DOCKER):
        pytest.skip(f"{DOCKER} (the docker.io CLI with BuildKit) is not installed")
    tag = local_tag(image_id)
    if docker("image", "inspect", tag, timeout=60).returncode != 0:
        pytest.skip(f"{tag} is not built here; build it with `torchstack build {image_id}`")
    found = docker("run", "--rm", "--network", "none", "--entrypoint", "sh", tag, "-c", probe,
                   timeout=120)
    if found.returncode != 0:
        pytest.skip(f"{tag} {missing}, so there is nothing to break (rebuild it from main)")
    return tag


@pytest.fixture(scope="module")
def broken_tags() -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for tag in made:
        docker("image", "rm", "--force", tag, timeout=120)


def build_child(dockerfile: str, tag: str, context: Path, made: list[str]) -> str:
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text(dockerfile)
    made.append(tag)
    proc = docker("build", "--secret", f"id=ca,src={CA}", "--tag", tag, str(context),
                  DOCKER_BUILDKIT="1")
    assert proc.returncode == 0, f"building {tag} failed:\n{proc.stderr[-3000:]}"
    return tag


def run_like_the_job(tag: str, image_id: str, only: str, workdir: Path) -> Report:
    """The suite in `tag`, constrained as the Kubernetes Job runs it; the parsed report."""
    matrix = load_matrix(REPO / "matrix.yaml")
    expect = expect_for(matrix.by_id()[image_id], matrix)
    expect.pop("checks")  # --only picks the checks; the layers' lists may predate them
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "expect.json").write_text(json.dumps(expect))
    workdir.chmod(0o755)
    (workdir / "expect.json").chmod(0o644)
    package = Path(checks.__file__).resolve().parent
    proc = docker(
        "run", "--rm", "--read-only", "--tmpfs", "/tmp:rw,exec,size=1g",
        "--user", "1000:1000", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--network", "none", "--shm-size", "1g",
        "-v", f"{package}:/opt/torchstack/checks/checks:ro",
        "-v", f"{workdir}:/opt/torchstack/expect:ro",
        "-e", "PYTHONPATH=/opt/torchstack/checks", "--entrypoint", "python", tag,
        "-m", "checks", "--json", "--frame", "--gpu", "off",
        "--expect", "/opt/torchstack/expect/expect.json", "--only", only,
        timeout=900,
    )
    assert "Traceback" not in proc.stdout
    try:
        return parse_report(unframe(proc.stdout))
    except ValueError as exc:
        raise AssertionError(
            f"no report from {tag} ({exc}); stderr:\n{proc.stderr[-3000:]}"
        ) from None


def result_of(report: Report, check_id: str) -> CheckResult:
    return next(r for r in report.results if r.id == check_id)


def test_compile_passes_as_the_job_runs_and_fails_without_a_compiler(
    broken_tags: list[str], tmp_path: Path
) -> None:
    tag = require_image(BASE, "command -v g++", "has no g++")
    good = result_of(run_like_the_job(tag, BASE, "compile", tmp_path / "good"), "compile")
    assert good.status == "pass", good.message
    assert good.metrics["built_objects"].value > 0
    broken = build_child(NO_COMPILER.format(image=tag), "torchstack-it:broken-no-compiler",
                         tmp_path / "ctx", broken_tags)
    result = result_of(run_like_the_job(broken, BASE, "compile", tmp_path / "bad"), "compile")
    assert result.status == "fail"
    assert "no C++ compiler found" in result.message
    assert "apt-get install g++ python3-dev" in result.message  # the fix tip


def test_audio_passes_as_the_job_runs_and_fails_without_torchcodec(
    broken_tags: list[str], tmp_path: Path
) -> None:
    tag = require_image(NLP, "python -c 'import torchcodec'", "has no TorchCodec")
    good = result_of(run_like_the_job(tag, NLP, "audio", tmp_path / "good"), "audio")
    assert good.status == "pass", good.message
    broken = build_child(NO_TORCHCODEC.format(image=tag), "torchstack-it:broken-no-torchcodec",
                         tmp_path / "ctx", broken_tags)
    result = result_of(run_like_the_job(broken, NLP, "audio", tmp_path / "bad"), "audio")
    assert result.status == "fail"
    assert "TorchCodec is not installed" in result.message
    assert "install TorchCodec in the nlp layer" in result.message  # the fix tip


def test_a_torchcodec_of_the_wrong_pairing_fails_naming_both_versions(
    broken_tags: list[str], tmp_path: Path
) -> None:
    tag = require_image(NLP, "python -c 'import torchcodec'", "has no TorchCodec")
    paired = load_matrix(REPO / "matrix.yaml").by_id()[NLP].torchcodec
    assert paired is not None and paired != WRONG_TORCHCODEC
    broken = build_child(WRONG_PAIRING.format(image=tag, version=WRONG_TORCHCODEC),
                         "torchstack-it:broken-torchcodec-pairing", tmp_path / "ctx",
                         broken_tags)
    report = run_like_the_job(broken, NLP, "audio,versions", tmp_path / "bad")
    audio = result_of(report, "audio")
    assert audio.status == "fail"
    assert f"torchcodec {WRONG_TORCHCODEC} is installed" in audio.message
    assert f"pin torchcodec=={paired}" in audio.message  # both versions and the fix
    versions = result_of(report, "versions")
    assert versions.status == "fail" and f"needs {paired}" in versions.message

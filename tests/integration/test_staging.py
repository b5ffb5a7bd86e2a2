"""Images built outside torchstack the way `docker buildx bake` builds them (staging tags and
the chain-hash label, no input hash) are found by build, check and promote (resolve/staging.py).

buildx is not installed here: the bake file's own targets are replayed with the Engine's
built-in BuildKit, one `docker build` per target with the target's args, labels and tags; a
child's named parent context becomes the parent's staging tag, which is what Bake substitutes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.paths import FIXTURES
from tests.resolved import local_image
from torchstack.backend.docker import DockerBackend
from torchstack.cli import main
from torchstack.config.matrix import load_matrix

pytestmark = pytest.mark.docker
FIXTURE = FIXTURES / "bake"
CLI = "/usr/bin/docker"


@pytest.fixture
def fixture(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "bake"
    shutil.copytree(FIXTURE, root)
    yield root
    tags = subprocess.run([CLI, "images", "--format", "{{.Repository}}:{{.Tag}}"],
                          capture_output=True, text=True, check=False)
    for tag in tags.stdout.split():  # the local and the staging-registry tags bake gives
        if tag.rpartition(":")[0].rpartition("/")[2] == "torchstack-bake":
            subprocess.run([CLI, "rmi", tag], capture_output=True, check=False)


def replay(root: Path, document: dict) -> dict[str, str]:  # type: ignore[type-arg]
    """Build every target as Bake would; returns target -> its local staging tag."""
    staged: dict[str, str] = {}
    ca = "/etc/ssl/certs/ca-certificates.crt"
    for name, target in document["target"].items():  # parents come first in the file
        args = dict(target["args"])
        for context, source in target.get("contexts", {}).items():
            args = {k: staged[source.removeprefix("target:")] if v == context else v
                    for k, v in args.items()}
        command = [CLI, "build", "--progress=plain", "--secret", f"id=ca-bundle,src={ca}"]
        command += [f"--build-arg={k}={v}" for k, v in args.items()]
        command += [f"--label={k}={v}" for k, v in target["labels"].items()]
        command += [f"--tag={t}" for t in target["tags"]]
        subprocess.run([*command, str(root / target["context"])], check=True,
                       env={**os.environ, "DOCKER_BUILDKIT": "1"}, capture_output=True)
        staged[name] = target["tags"][0]
    return staged


def test_a_bake_built_image_is_adopted_not_rebuilt(fixture: Path) -> None:
    matrix_file = str(fixture / "matrix.yaml")
    out = fixture / "docker-bake.json"
    assert main(["--matrix", matrix_file, "bake", "--all", "--out", str(out)]) == 0
    document = json.loads(out.read_text())
    staged = replay(fixture, document)
    matrix = load_matrix(fixture / "matrix.yaml")
    backend = DockerBackend.connect()
    try:
        for spec in matrix.images:
            image = local_image(backend, matrix, spec.id)
            tag = staged[next(n for n, t in document["target"].items()
                              if t["context"].endswith(spec.id))]
            assert image is not None and image == backend.image_id(tag), spec.id
    finally:
        backend.close()
    # `torchstack build` takes them as they are: nothing to build.
    assert main(["--matrix", matrix_file, "build", "--no-progress"]) == 0
    build = json.loads((fixture / ".torchstack/runs/latest/build.json").read_text())
    assert build["docker_builds"] == 0
    assert {i["status"] for i in build["images"].values()} == {"cached"}


def test_a_staged_image_on_another_parent_is_not_taken(fixture: Path) -> None:
    matrix_file = str(fixture / "matrix.yaml")
    out = fixture / "docker-bake.json"
    assert main(["--matrix", matrix_file, "bake", "--all", "--out", str(out)]) == 0
    document = json.loads(out.read_text())
    replay(fixture, document)
    matrix = load_matrix(fixture / "matrix.yaml")
    root, child = matrix.images
    backend = DockerBackend.connect()
    try:
        staged_root = local_image(backend, matrix, root.id)
        assert staged_root is not None
        # A new root image (another build of it) makes the staged child someone else's.
        subprocess.run([CLI, "tag", staged_root, f"torchstack-bake:keep-{staged_root[7:19]}"],
                       check=True)
        for tag in (backend.inspect(staged_root) or {}).get("RepoTags") or []:
            if "-stage-" in tag:
                subprocess.run([CLI, "rmi", tag], check=True, capture_output=True)
        assert local_image(backend, matrix, root.id) is None
        assert local_image(backend, matrix, child.id) is None
    finally:
        backend.close()

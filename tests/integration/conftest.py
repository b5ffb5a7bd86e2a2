"""Integration tests talk to a real Docker Engine.

Without one they are skipped with the reason, except when CI is set: there a missing daemon
is a failure, so a broken runner cannot pass by skipping everything.
Images the tests build are tagged `torchstack-it:*` and removed at the end of the session, with
the images their builds made that are left untagged (their build.json names them) and their
pin tags (set TORCHSTACK_IT_KEEP=1 to keep them); BuildKit's cache, the real torch images and
debian:bookworm-slim are never removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from tests.integration.dockerutil import images_in_logs, remove_test_images
from tests.integration.fixture_matrix import (
    LOCAL_REPOSITORY,
    copy_matrix,
    rerender,
    write_fixture_matrix,
)
from tests.integration.promoteutil import (
    REGISTRY,
    registry_problem,
    sweep_test_repositories,
    untag_repository,
)
from tests.paths import REPO
from torchstack.backend.docker import DockerBackend
from torchstack.cli import main
from torchstack.errors import DockerUnavailableError

OS_IMAGE = "debian:bookworm-slim"
# Variables that would change what a build does; tests set them explicitly where needed.
BUILD_ENV = ("TORCHSTACK_PIP_INDEX_URL", "TORCHSTACK_TORCH_INDEX_URL", "GITHUB_ACTIONS",
             "TORCHSTACK_MATRIX")


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in BUILD_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def docker_api() -> Iterator[Any]:
    """The Engine API client; skip (or, with CI set, fail) when no daemon answers."""
    try:
        backend = DockerBackend.connect()
    except DockerUnavailableError as exc:
        message = f"integration tests need a running Docker Engine: {exc.message} ({exc.tip})"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so this is a failure, not a skip: {message}")
        pytest.skip(message)
    yield backend.api
    backend.close()


@pytest.fixture(scope="session")
def os_base(docker_api: Any) -> str:
    """The real debian:bookworm-slim, bootstrapped with the verb under test when missing."""
    try:
        docker_api.inspect_image(OS_IMAGE)
    except Exception:
        code = main(["--matrix", str(REPO / "matrix.yaml"), "base", "bootstrap", "bookworm"])
        assert code == 0, f"`torchstack base bootstrap bookworm` failed ({code})"
    return OS_IMAGE


@pytest.fixture(scope="session")
def _built_roots(docker_api: Any) -> Iterator[list[Path]]:
    """Every matrix folder the session built in; their build.json name the images to clean up.

    Only `torchstack-it:*` tags (and pins of our images) are removed; other images go only if
    a build here made them and they are left dangling, so the real torch images stay.
    """
    roots: list[Path] = []
    yield roots
    if not os.environ.get("TORCHSTACK_IT_KEEP"):
        remove_test_images(docker_api, LOCAL_REPOSITORY, images_in_logs(roots))


@pytest.fixture(scope="session")
def fixture_template(tmp_path_factory: pytest.TempPathFactory, os_base: str,
                     _built_roots: list[Path]) -> Path:
    """The fixture matrix with a per-session salt in its root layer, locked by the real lock
    stage (uv against PyPI), built once (default group)."""
    root = tmp_path_factory.mktemp("fixture") / "matrix"
    write_fixture_matrix(root, salt=uuid.uuid4().hex[:12], base_image=os_base, locks="pypi")
    _built_roots.append(root)
    code = main(["--matrix", str(root / "matrix.yaml"), "build", "--no-progress"])
    assert code == 0, f"building the fixture matrix failed ({code}); see {root}/.torchstack/runs"
    return root


@pytest.fixture
def fixture_copy(fixture_template: Path, tmp_path: Path, _built_roots: list[Path],
                 docker_api: Any) -> Iterator[Path]:
    """A private copy of the built fixture matrix: same input hashes, free to change.

    The `torchstack-it:<id>` tags are shared by every copy; those a test moves (by building a
    changed layer) are put back afterwards, so the next test finds the template's images.
    """
    root = copy_matrix(fixture_template, tmp_path / "matrix")
    _built_roots.append(root)
    before = {tag: image["Id"] for image in docker_api.images(name=LOCAL_REPOSITORY)
              for tag in image.get("RepoTags") or [] if tag.startswith(LOCAL_REPOSITORY + ":")}
    yield root
    for tag, image_id in before.items():
        with contextlib.suppress(docker.errors.APIError):  # removed by the test: fine
            docker_api.tag(image_id, *tag.rsplit(":", 1), force=True)


@pytest.fixture
def repo_matrix_copy(tmp_path: Path, _built_roots: list[Path]) -> Path:
    """The repository's matrix.yaml and layers/, rendered afresh in tmp_path (runs stay there).

    The committed locks come along (only cu128 is locked: the PyTorch index is out of reach
    here). Its images are the project's own (torchstack:<id>), found by input hash: kept.
    """
    root = tmp_path / "repo-matrix"
    _built_roots.append(root)
    shutil.copytree(REPO / "layers", root / "layers")
    shutil.copy2(REPO / "matrix.yaml", root / "matrix.yaml")
    for lock in REPO.glob("images/*/pylock.toml"):
        target = root / lock.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lock, target)
    rerender(root)
    return root


@pytest.fixture(scope="session")
def registry(docker_api: Any) -> Iterator[str]:
    """The local registry (127.0.0.1:5000); skip (or, with CI set, fail) when it is not there.
    At the session's end, local references into test repositories (`torchstack-it-<hex>`) go."""
    problem = registry_problem()
    if problem is not None:
        message = (f"promotion tests need the registry at http://{REGISTRY}/v2/ ({problem});"
                   " start it with `bash scripts/start-services.sh`")
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so this is a failure, not a skip: {message}")
        pytest.skip(message)
    yield REGISTRY
    if not os.environ.get("TORCHSTACK_IT_KEEP"):
        sweep_test_repositories(docker_api)


@pytest.fixture
def it_repository(registry: str, docker_api: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A registry repository of this test's own (TORCHSTACK_REGISTRY); its local tags go after."""
    repository = f"{registry}/torchstack-it-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("TORCHSTACK_REGISTRY", repository)
    yield repository
    if not os.environ.get("TORCHSTACK_IT_KEEP"):
        untag_repository(docker_api, repository)

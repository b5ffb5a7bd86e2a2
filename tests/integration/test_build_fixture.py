"""`torchstack build` on the small fixture matrix against a real Docker Engine (BuildKit)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dockerutil import (
    BUILDKIT_MARK,
    install_groups,
    last_build,
    run_cli,
    statuses,
)
from tests.integration.fixture_matrix import (
    ALPHA,
    BASE,
    BETA,
    BROKEN,
    FAILING,
    FAILING_MESSAGE,
    LOCAL_REPOSITORY,
    ORPHAN,
    change_layer,
    tamper_hash,
    write_fixture_matrix,
)
from torchstack.config.matrix import load_matrix
from torchstack.lock.pylock import LOCK_NAME
from torchstack.render.dockerfile import render_image
from torchstack.resolve.order import context_hash, input_hash

pytestmark = [pytest.mark.docker, pytest.mark.network]


def tag_id(api: Any, image: str) -> str:
    return str(api.inspect_image(f"{LOCAL_REPOSITORY}:{image}")["Id"])


def test_the_real_lock_stage_wrote_the_canned_locks(fixture_template: Path,
                                                    tmp_path: Path) -> None:
    """The unit tests' canned locks are what uv resolves from PyPI for the fixture now."""
    canned = write_fixture_matrix(tmp_path / "canned")
    for spec in canned.images:
        real = fixture_template / "images" / spec.id / LOCK_NAME
        mine = canned.images_dir / spec.id / LOCK_NAME
        assert real.is_file() == mine.is_file(), spec.id
        if real.is_file():
            assert real.read_text() == mine.read_text(), spec.id


def test_build_tags_each_image_from_its_parents_exact_id(fixture_template: Path,
                                                         docker_api: Any) -> None:
    build = last_build(fixture_template)
    assert build["docker_builds"] == 3
    assert statuses(build) == {BASE: "built", ALPHA: "built", BETA: "built"}
    base_id = build["images"][BASE]["image_id"]
    for image in (BASE, ALPHA, BETA):
        entry = build["images"][image]
        inspected = docker_api.inspect_image(entry["image_id"])
        assert tag_id(docker_api, image) == entry["image_id"]
        assert inspected["Config"]["Labels"]["io.torchstack.input-hash"] == entry["input_hash"]
        assert entry["size"] == inspected["Size"] and entry["duration_s"] > 0
        assert (fixture_template / ".torchstack/runs/latest" / entry["log"]).is_file()
    base_layers = docker_api.inspect_image(base_id)["RootFS"]["Layers"]
    for child in (ALPHA, BETA):
        child_layers = docker_api.inspect_image(build["images"][child]["image_id"])["RootFS"]
        assert child_layers["Layers"][: len(base_layers)] == base_layers
    # The pin tags that gave BuildKit's FROM the exact parent IDs are gone again.
    for parent in (base_id,):
        assert not docker_api.images(name=f"{LOCAL_REPOSITORY}-pin:{parent[7:]}")
    # The recorded hash is the contract's: context hash + the parent's exact image ID.
    matrix = load_matrix(fixture_template / "matrix.yaml")
    alpha = matrix.by_id()[ALPHA]
    expected = input_hash(context_hash(render_image(alpha, matrix)), base_id)
    assert build["images"][ALPHA]["input_hash"] == expected


def test_history_shows_buildkits_steps_and_the_groups_in_order(fixture_template: Path,
                                                               docker_api: Any) -> None:
    build = last_build(fixture_template)
    base, alpha = (build["images"][i]["image_id"] for i in (BASE, ALPHA))
    created = [h["CreatedBy"] for h in docker_api.history(base)]
    ours = [c for c in created if "install-group.sh" in c or "uv venv" in c]
    assert ours and all(c.endswith(BUILDKIT_MARK) for c in ours)
    assert install_groups(docker_api, base) == ["01-python-packages"]
    assert install_groups(docker_api, alpha) == ["01-python-packages", "01-alpha"]
    # The venv comes before the first group; uv's own stage never reaches the history.
    history = "\n".join(reversed(created))
    assert history.index("uv venv") < history.index("01-python-packages")
    assert "fetch-uv.py 0.13.9" not in history  # (the mount points name the file)


def test_second_build_of_an_unchanged_matrix_builds_nothing(fixture_copy: Path, capsys: Any,
                                                            docker_api: Any) -> None:
    before = {image: tag_id(docker_api, image) for image in (BASE, ALPHA, BETA)}
    code, output = run_cli(capsys, fixture_copy, "build", "--no-progress")
    assert code == 0, output
    build = last_build(fixture_copy)
    assert build["docker_builds"] == 0
    assert statuses(build) == {BASE: "cached", ALPHA: "cached", BETA: "cached"}
    assert {image: tag_id(docker_api, image) for image in before} == before
    assert "0 Docker builds" in output


def test_changing_one_layer_rebuilds_only_its_image(fixture_copy: Path, capsys: Any,
                                                    docker_api: Any) -> None:
    beta_before = tag_id(docker_api, BETA)
    change_layer(fixture_copy, "alpha", f"changed-{uuid.uuid4().hex[:8]}")
    code, output = run_cli(capsys, fixture_copy, "build", "--no-progress")
    assert code == 0, output
    build = last_build(fixture_copy)
    assert build["docker_builds"] == 1
    assert statuses(build) == {BASE: "cached", ALPHA: "built", BETA: "cached"}
    assert tag_id(docker_api, BETA) == beta_before


def test_failed_images_skip_their_children_and_the_rest_still_build(
        fixture_copy: Path, capsys: Any, docker_api: Any) -> None:
    change_layer(fixture_copy, "beta", f"changed-{uuid.uuid4().hex[:8]}")  # must build after
    code, output = run_cli(capsys, fixture_copy, "build", "*-orphan", "*-failing", "*-alpha",
                           "*-beta", "--no-progress")
    assert code == 4, output
    build = last_build(fixture_copy)
    assert list(build["images"]) == [BASE, BROKEN, ORPHAN, FAILING, ALPHA, BETA]
    assert statuses(build) == {BASE: "cached", BROKEN: "failed", ORPHAN: "skipped",
                               FAILING: "failed", ALPHA: "cached", BETA: "built"}
    assert build["docker_builds"] == 2  # failing and beta: broken never reached BuildKit
    broken = build["images"][BROKEN]
    assert f"images/{BROKEN}/pylock.toml does not exist" in broken["reason"]
    assert f"torchstack lock {BROKEN}" in broken["reason"]
    assert build["images"][ORPHAN]["reason"] == f"parent {BROKEN} failed"
    failing = build["images"][FAILING]
    assert failing["failed_step"].startswith("step ") and "exit 3" in failing["failed_step"]
    assert "exit code: 3" in failing["reason"]
    assert any(line.endswith(FAILING_MESSAGE) for line in failing["log_tail"])
    assert 5 <= len(failing["log_tail"]) <= 20
    # The summary printed names the step and shows the log tail; the error says exit 4's why.
    assert f"FAILED {FAILING} at step" in output and "last " in output and "| " in output
    assert f"2 of 6 images failed to build: {BROKEN}" in output
    for image in (BROKEN, FAILING):
        assert not docker_api.images(name=f"{LOCAL_REPOSITORY}:{image}")


def test_a_tampered_hash_in_the_lock_fails_naming_the_package_and_both_hashes(
        fixture_copy: Path, capsys: Any, docker_api: Any) -> None:
    root = fixture_copy
    fake = uuid.uuid4().hex + uuid.uuid4().hex
    real, _ = tamper_hash(root, BASE, "six", fake)  # its children's locks are stale now
    code, output = run_cli(capsys, root, "build", BASE, "--no-progress")
    assert code == 4, output
    build = last_build(root)
    assert statuses(build) == {BASE: "failed"}
    base = build["images"][BASE]
    assert base["failed_step"].endswith("install groups/01-python-packages.txt")
    assert "Hash mismatch for `six==1.17.0`" in base["reason"]
    assert f"Expected: sha256:{fake}" in base["reason"]
    assert f"Computed: sha256:{real}" in base["reason"]
    tail = "\n".join(base["log_tail"])
    assert f"sha256:{fake}" in tail and f"sha256:{real}" in tail
    assert "packages came from https://pypi.org/simple" in base["reason"]


def test_a_missing_os_base_image_fails_with_how_to_get_it(tmp_path: Path, capsys: Any,
                                                          docker_api: Any) -> None:
    root = tmp_path / "matrix"
    write_fixture_matrix(root, base_image="torchstack-it-no-such-base:bookworm")
    code, output = run_cli(capsys, root, "build", "*-alpha", "--no-progress")
    assert code == 4, output
    build = last_build(root)
    assert statuses(build) == {BASE: "failed", ALPHA: "skipped"}
    assert "torchstack base bootstrap bookworm" in build["images"][BASE]["reason"]
    assert build["docker_builds"] == 0


def test_a_stale_images_folder_is_a_config_error(fixture_copy: Path, capsys: Any,
                                                 docker_api: Any) -> None:
    dockerfile = fixture_copy / "images" / ALPHA / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "# edited by hand\n")
    code, output = run_cli(capsys, fixture_copy, "build", "--no-progress")
    assert code == 2, output
    assert "images/ is stale" in output and "torchstack render" in output

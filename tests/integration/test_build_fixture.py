"""`torchstack build` on the small fixture matrix against a real Docker Engine."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from tests.integration.dockerutil import INSTALL_STEP_IMAGE, last_build, run_cli, statuses
from tests.integration.fixture_matrix import (
    ALPHA,
    BASE,
    BETA,
    BROKEN,
    LOCAL_REPOSITORY,
    ORPHAN,
    change_layer,
    write_fixture_matrix,
)
from torchstack.plan import context_hash, input_hash
from torchstack.render import render_image

pytestmark = pytest.mark.docker


def tag_id(api: Any, image: str) -> str:
    return str(api.inspect_image(f"{LOCAL_REPOSITORY}:{image}")["Id"])


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
    # The discarded build stage's images are gone (they hold the build inputs).
    for image in (BASE, ALPHA, BETA):
        log = (fixture_template / ".torchstack/runs/latest" / build["images"][image]["log"])
        stage = INSTALL_STEP_IMAGE.search(log.read_text())
        assert stage, f"no install step image in {log}"
        with pytest.raises(docker.errors.ImageNotFound):
            docker_api.inspect_image(stage.group(1))
    # The recorded hash is the contract's: context hash + the parent's exact image ID.
    from torchstack.matrix import load_matrix

    matrix = load_matrix(fixture_template / "matrix.yaml")
    alpha = matrix.by_id()[ALPHA]
    expected = input_hash(context_hash(render_image(alpha, matrix)), base_id)
    assert build["images"][ALPHA]["input_hash"] == expected


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


def test_a_failed_image_skips_its_children_and_the_rest_still_build(
        fixture_copy: Path, capsys: Any, docker_api: Any) -> None:
    change_layer(fixture_copy, "beta", f"changed-{uuid.uuid4().hex[:8]}")  # must build after
    code, output = run_cli(capsys, fixture_copy, "build", "*-orphan", "*-alpha", "*-beta",
                           "--no-progress")
    assert code == 4, output
    build = last_build(fixture_copy)
    assert list(build["images"]) == [BASE, BROKEN, ORPHAN, ALPHA, BETA]  # the failure comes first
    assert statuses(build) == {BASE: "cached", BROKEN: "failed", ORPHAN: "skipped",
                               ALPHA: "cached", BETA: "built"}
    broken = build["images"][BROKEN]
    assert "RUN sh /tmp/layer/install.sh" in broken["failed_step"]
    assert broken["failed_step"].startswith("step ")
    assert "https://pypi.org/simple" in broken["reason"]
    assert any("torchstack-it-no-such-package" in line for line in broken["log_tail"])
    assert 5 <= len(broken["log_tail"]) <= 20
    assert build["images"][ORPHAN]["reason"] == f"parent {BROKEN} failed"
    # The summary printed names the step and shows the log tail; the error says exit 4's why.
    assert f"FAILED {BROKEN} at step" in output and "last " in output and "| " in output
    assert f"1 of 5 images failed to build: {BROKEN}" in output
    with pytest.raises(Exception, match="No such image"):
        docker_api.inspect_image(f"{LOCAL_REPOSITORY}:{BROKEN}")


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

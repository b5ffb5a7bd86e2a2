"""`torchstack bake`: docker-bake.json mirrors `torchstack plan --json --all` one to one."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.paths import REPO
from torchstack.build.bake import PARENT_CONTEXT, target_name, target_names
from torchstack.cli import main
from torchstack.config.matrix import load_matrix
from torchstack.config.model import Matrix
from torchstack.errors import ConfigError

MATRIX = str(REPO / "matrix.yaml")


@pytest.fixture(autouse=True)
def _no_registry_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCHSTACK_REGISTRY", raising=False)


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix(REPO / "matrix.yaml")


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main(["--matrix", MATRIX, *argv]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def plan(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = run_json(capsys, "plan", "--json", "--all")["include"]
    return rows


@pytest.fixture
def bake(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    document: dict[str, Any] = run_json(capsys, "bake", "--all")
    return document


def test_structure(bake: dict[str, Any]) -> None:
    assert set(bake) == {"group", "target"}
    assert set(bake["group"]) == {"default", "all"}
    for name, target in bake["target"].items():
        assert re.fullmatch(r"[A-Za-z0-9_-]+", name), name
        assert {"context", "dockerfile", "args", "tags"} <= set(target)
        assert target["dockerfile"] == "Dockerfile"
        assert (REPO / target["context"] / target["dockerfile"]).is_file()
        # Index URLs and the CA bundle are secrets, from the variables torchstack build uses.
        assert set(target["args"]) in ({"BASE_IMAGE"}, {"PARENT_IMAGE"})
        assert target["secret"] == [
            {"type": "env", "id": "ca-bundle", "env": "TORCHSTACK_SECRET_CA_BUNDLE"},
            {"type": "env", "id": "index-url", "env": "TORCHSTACK_SECRET_INDEX_URL"},
            {"type": "env", "id": "extra-index-url", "env": "TORCHSTACK_SECRET_EXTRA_INDEX_URL"}]
        assert re.fullmatch(r"[0-9a-f]{64}", target["labels"]["io.torchstack.chain-hash"])


def test_exactly_one_target_per_planned_image(plan: list[dict[str, Any]],
                                              bake: dict[str, Any]) -> None:
    ids = [row["id"] for row in plan]
    names = [target_name(i) for i in ids]
    assert len(set(names)) == len(ids) == len(bake["target"])
    assert sorted(names) == sorted(bake["target"])
    for image_id in ids:
        assert bake["target"][target_name(image_id)]["context"] == f"images/{image_id}"
    assert bake["group"]["all"]["targets"] == names


def test_tags_are_staging_tags_never_release_tags(plan: list[dict[str, Any]],
                                                  bake: dict[str, Any], matrix: Matrix) -> None:
    for row in plan:
        target = bake["target"][target_name(row["id"])]
        stage = f"{row['id']}-stage-{target['labels']['io.torchstack.chain-hash'][:12]}"
        assert target["tags"] == [f"{matrix.local_repository}:{stage}",
                                  f"{matrix.push_repository}:{stage}"]
        for release in [row["release_tag"], *row["aliases"]]:
            assert not [t for t in target["tags"] if t.endswith(f":{release}")]
    every = [t for target in bake["target"].values() for t in target["tags"]]
    assert len(every) == len(set(every)), "two targets share a tag"


def render(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--matrix", str(root / "matrix.yaml"), "render"]) == 0
    capsys.readouterr()


def chains(root: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    assert main(["--matrix", str(root / "matrix.yaml"), "bake", "--all"]) == 0
    targets = json.loads(capsys.readouterr().out)["target"]
    return {name: t["labels"]["io.torchstack.chain-hash"] for name, t in targets.items()}


def test_a_chain_hash_follows_the_image_and_its_ancestors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("layers", "images"):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy2(REPO / "matrix.yaml", tmp_path / "matrix.yaml")
    before = chains(tmp_path, capsys)
    nlp = tmp_path / "layers/nlp/layer.yaml"
    nlp.write_text(nlp.read_text().replace('HF_HUB_OFFLINE: "1"', 'HF_HUB_OFFLINE: "0"'))
    render(tmp_path, capsys)
    after = chains(tmp_path, capsys)
    assert {n for n in before if before[n] != after[n]} == {n for n in before
                                                            if n.endswith("-nlp")}
    torch = tmp_path / "layers/torch/layer.yaml"  # the root layer: every chain changes
    torch.write_text(torch.read_text().replace("plus numpy", "plus numpy (changed)"))
    render(tmp_path, capsys)
    rooted = chains(tmp_path, capsys)
    assert not [n for n in after if after[n] == rooted[n]]


def test_children_chain_to_their_parent_target(plan: list[dict[str, Any]],
                                               bake: dict[str, Any], matrix: Matrix) -> None:
    for row in plan:
        target = bake["target"][target_name(row["id"])]
        dockerfile = (REPO / target["context"] / "Dockerfile").read_text(encoding="utf-8")
        if row["parent"] is None:
            assert "contexts" not in target and "PARENT_IMAGE" not in target["args"]
            assert target["args"]["BASE_IMAGE"] == matrix.by_id()[row["id"]].base_image
            continue
        # The Dockerfile builds FROM ${PARENT_IMAGE}; bake names it and maps the name.
        assert "FROM ${PARENT_IMAGE}" in dockerfile
        assert target["args"]["PARENT_IMAGE"] == PARENT_CONTEXT
        assert target["contexts"] == {PARENT_CONTEXT: f"target:{target_name(row['parent'])}"}
        assert target_name(row["parent"]) in bake["target"]


def test_default_group_is_the_matrix_default_group(bake: dict[str, Any],
                                                   matrix: Matrix) -> None:
    assert bake["group"]["default"]["targets"] == [target_name(i.id) for i in matrix.select([])]


def test_a_selection_brings_its_ancestors(capsys: pytest.CaptureFixture[str]) -> None:
    document = run_json(capsys, "bake", "torch2.9.1-cu126-py3.11-nlp")
    assert sorted(document["target"]) == ["torch2_9_1-cu126-py3_11-base",
                                          "torch2_9_1-cu126-py3_11-nlp"]
    assert document["group"]["default"]["targets"] == ["torch2_9_1-cu126-py3_11-nlp"]


def test_registry_override_and_out_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TORCHSTACK_REGISTRY", "ghcr.io/acme/torchstack")
    out = tmp_path / "docker-bake.json"
    assert main(["--matrix", MATRIX, "bake", "--all", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    document = json.loads(out.read_text())
    tags = [t for target in document["target"].values() for t in target["tags"][1:]]
    assert tags and all(t.startswith("ghcr.io/acme/torchstack:") for t in tags)


def test_output_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--matrix", MATRIX, "bake", "--all"]) == 0
    first = capsys.readouterr().out
    assert main(["--matrix", MATRIX, "bake", "--all"]) == 0
    assert capsys.readouterr().out == first


def test_ids_that_collide_as_target_names_are_refused(matrix: Matrix) -> None:
    from dataclasses import replace

    spec = matrix.images[0]
    twin = replace(spec, id=spec.id.replace(".", "_"))
    with pytest.raises(ConfigError):
        target_names([spec, twin])

"""Selection, build order and hashing (torchstack.resolve.order), on the repo matrix and copies
of it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.paths import REPO
from torchstack.config.matrix import load_matrix
from torchstack.config.model import Matrix
from torchstack.errors import ConfigError
from torchstack.lock.pylock import lock_status
from torchstack.render.dockerfile import render_image
from torchstack.resolve.order import context_hash, input_hash, make_plan, plan_rows

DEFAULT = ["torch2.9.1-cu128-py3.11-base", "torch2.9.1-cu128-py3.11-vision",
           "torch2.9.1-cu128-py3.11-nlp"]


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix(REPO / "matrix.yaml")


def test_default_group_is_torch_291_cu128(matrix: Matrix) -> None:
    assert matrix.default_group == ("torch2.9.1-cu128-*",)
    plan = make_plan(matrix, [])
    assert plan.ids == DEFAULT
    assert all(p.requested for p in plan.images)
    assert [i.id for i in matrix.images if i.default] == DEFAULT


def test_everything_parents_first(matrix: Matrix) -> None:
    plan = make_plan(matrix, [], everything=True)
    assert len(plan.ids) == len(matrix.images) >= 11
    position = {image_id: n for n, image_id in enumerate(plan.ids)}
    for planned in plan.images:
        if planned.spec.parent_id:
            assert position[planned.spec.parent_id] < position[planned.spec.id]


def test_glob_pulls_in_ancestors_without_requesting_them(matrix: Matrix) -> None:
    plan = make_plan(matrix, ["torch2.9.1-cu126-*-vision"])
    assert plan.ids == ["torch2.9.1-cu126-py3.11-base", "torch2.9.1-cu126-py3.11-vision"]
    assert [p.requested for p in plan.images] == [False, True]


def test_several_globs_and_no_duplicates(matrix: Matrix) -> None:
    plan = make_plan(matrix, ["*-nlp", "*-vision", "torch2.9.1-cu130-py3.11-base"])
    assert len(plan.ids) == len(set(plan.ids)) == 9
    assert [p.spec.id for p in plan.images if not p.requested] == [
        "torch2.9.1-cu126-py3.11-base", "torch2.9.1-cu128-py3.11-base"]


def test_unknown_glob_is_a_config_error_with_a_tip(matrix: Matrix) -> None:
    with pytest.raises(ConfigError) as caught:
        make_plan(matrix, ["*-vision", "torch9*"])
    assert caught.value.message == "no image id matches 'torch9*'"
    assert caught.value.tip is not None
    assert "torchstack plan --all" in caught.value.tip
    assert "torch2.9.1-cu126-py3.11-base" in caught.value.tip


def test_legacy_images_and_their_tags(matrix: Matrix) -> None:
    legacy = {i.id: i for i in matrix.images if i.legacy}
    assert set(legacy) == {"torch2.7.1-cu118-py3.11-base", "torch2.5.1-cu121-py3.11-base"}
    assert all(i.index_kind == "pytorch" and i.parent_id is None for i in legacy.values())
    assert legacy["torch2.7.1-cu118-py3.11-base"].torch_requirements == ("torch==2.7.1+cu118",)
    assert legacy["torch2.7.1-cu118-py3.11-base"].torch_index.endswith("/whl/cu118")


def test_aliases_only_where_the_policy_says(matrix: Matrix) -> None:
    by_id = matrix.by_id()
    assert by_id["torch2.9.1-cu128-py3.11-base"].aliases == ("2.9-cuda12.8-base", "v2.9", "latest")
    assert by_id["torch2.9.1-cu126-py3.11-base"].aliases == ("2.9-cuda12.6-base",)
    assert by_id["torch2.9.1-cu128-py3.11-vision"].aliases == ("2.9-cuda12.8-vision",)


def test_context_hash_is_over_names_and_contents() -> None:
    files = {"Dockerfile": "FROM x\n", "requirements.txt": "a==1\n"}
    assert context_hash(files) == context_hash(dict(reversed(files.items())))
    assert len(context_hash(files)) == 64
    assert context_hash(files) != context_hash({**files, "requirements.txt": "a==2\n"})
    assert context_hash(files) != context_hash({"Dockerfile2": "FROM x\n",
                                                "requirements.txt": "a==1\n"})
    # Length-prefixed: moving bytes from one file to the next changes the hash.
    assert context_hash({"a": "xy", "b": ""}) != context_hash({"a": "x", "b": "y"})


def test_input_hash_follows_the_parent() -> None:
    assert input_hash("c" * 64, "sha256:1") != input_hash("c" * 64, "sha256:2")
    assert input_hash("c" * 64, "sha256:1") == input_hash("c" * 64, "sha256:1")


def test_plan_hashes_are_the_rendered_contexts(matrix: Matrix) -> None:
    plan = make_plan(matrix, [], everything=True)
    for planned in plan.images:
        assert planned.context_hash == context_hash(render_image(planned.spec, matrix))
    assert len({p.context_hash for p in plan.images}) == len(plan.images)


def context_hashes(root: Path) -> dict[str, str]:
    plan = make_plan(load_matrix(root / "matrix.yaml"), [], everything=True)
    return {p.spec.id: p.context_hash for p in plan.images}


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """matrix.yaml, layers/ and images/ (with the committed locks) in tmp_path."""
    shutil.copy(REPO / "matrix.yaml", tmp_path / "matrix.yaml")
    shutil.copytree(REPO / "layers", tmp_path / "layers")
    shutil.copytree(REPO / "images", tmp_path / "images")
    return tmp_path


def test_a_layer_change_changes_only_the_images_that_use_it(repo_copy: Path) -> None:
    before = context_hashes(repo_copy)
    layer = repo_copy / "layers/nlp/layer.yaml"
    layer.write_text(layer.read_text().replace('HF_HUB_OFFLINE: "1"', 'HF_HUB_OFFLINE: "0"'))
    after = context_hashes(repo_copy)
    changed = {i for i in before if before[i] != after[i]}
    assert changed == {i for i in before if i.endswith("-nlp")}
    assert len(changed) == 3


def test_what_installs_is_the_lock_not_the_pins(repo_copy: Path) -> None:
    """A pin change alone changes no context (the lock goes stale); a lock change changes its
    image's context only, and not its siblings' nor its parent's."""
    nlp = "torch2.9.1-cu128-py3.11-nlp"
    before = context_hashes(repo_copy)
    layer = repo_copy / "layers/nlp/layer.yaml"
    layer.write_text(layer.read_text().replace("sentencepiece==0.2.1", "sentencepiece==0.2.0"))
    assert context_hashes(repo_copy) == before
    matrix = load_matrix(repo_copy / "matrix.yaml")
    assert lock_status(matrix, matrix.by_id()[nlp]) == "stale"
    lock = repo_copy / "images" / nlp / "pylock.toml"
    text = lock.read_text()
    sentencepiece = re.search(r'name = "sentencepiece"\n.*?sha256 = "([0-9a-f]{64})"', text,
                              re.DOTALL)
    assert sentencepiece, "the nlp lock has no sentencepiece wheel"
    lock.write_text(text.replace(sentencepiece.group(1), "0" * 64))
    after = context_hashes(repo_copy)
    assert {i for i in before if before[i] != after[i]} == {nlp}


def test_rows_are_flat(matrix: Matrix) -> None:
    rows = plan_rows(make_plan(matrix, [], everything=True))
    assert len(rows) == len(matrix.images)
    assert len({tuple(row) for row in rows}) == 1  # the same keys, in the same order
    for row in rows:
        for key, value in row.items():
            if isinstance(value, list):
                assert all(isinstance(item, str) for item in value), key
            else:
                assert value is None or isinstance(value, str | int | bool), key
    root = rows[0]
    assert root["parent"] is None and root["depth"] == 0
    assert rows[1]["parent"] == root["id"] and rows[1]["depth"] == 1

"""Names refused at load that used to fail far later: tags past 128 characters (candidate and
staging included), ids that differ only in case, one package pinned twice in a layer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.hostileutil import copy_project, run_cli, tree

LONG = "v" * 95  # id 119 and release tag 124 characters: valid; candidate 132, staging 138


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_a_candidate_tag_over_128_characters_is_refused_at_load(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    matrix = project / "matrix.yaml"
    edit(matrix, "  vision: vision\n", f"  {LONG}: vision\n")
    edit(matrix, "flavor: [base, vision, nlp]", f"flavor: [base, {LONG}, nlp]")
    before = tree(project)
    code, err = run_cli(capsys, "--matrix", str(matrix), "plan")
    assert code == 2, err
    assert "(tags.candidate): the candidate tag of torch2.9.1-cu126-py3.11-vvv" in err
    assert "is 132 characters; a Docker tag has at most 128" in err
    assert tree(project) == before


def test_ids_that_differ_only_in_case_are_refused_at_load(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    matrix = project / "matrix.yaml"
    edit(matrix, "  nlp: nlp\n", "  Vision: nlp\n")  # the nlp flavor renamed
    edit(matrix, "flavor: [base, vision, nlp]", "flavor: [base, vision, Vision]")
    code, err = run_cli(capsys, "--matrix", str(matrix), "render")
    assert code == 2, err
    assert ("the image ids 'torch2.9.1-cu126-py3.11-vision' and 'torch2.9.1-cu126-py3.11-Vision'"
            " differ only in case") in err
    assert not (project / "images" / "torch2.9.1-cu126-py3.11-Vision").exists()


def test_one_package_pinned_twice_in_a_layer_is_refused(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layer = project / "layers" / "torch" / "layer.yaml"
    edit(layer, "  - numpy==2.2.6\n", "  - numpy==2.2.6\n  - NumPy==2.3.0\n")
    code, err = run_cli(capsys, "--matrix", str(project / "matrix.yaml"), "plan")
    assert code == 2, err
    assert "layers/torch/layer.yaml:" in err
    assert "numpy is pinned twice in this layer ('numpy==2.2.6' at line" in err

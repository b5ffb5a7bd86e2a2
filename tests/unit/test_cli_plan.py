"""`torchstack plan` on the repo matrix: the table, --json for a GitHub Actions matrix, globs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.paths import REPO
from torchstack.cli import main

MATRIX = str(REPO / "matrix.yaml")
EXPECTED = {
    *(f"torch2.9.1-{cuda}-py3.11-{flavor}" for cuda in ("cu126", "cu128", "cu130")
      for flavor in ("base", "vision", "nlp")),
    "torch2.7.1-cu118-py3.11-base",
    "torch2.5.1-cu121-py3.11-base",
}


def plan_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["--matrix", MATRIX, "plan", "--json", *args]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    document: dict[str, Any] = json.loads(out)
    return document


def test_json_lists_every_image(capsys: pytest.CaptureFixture[str]) -> None:
    rows = plan_json(capsys, "--all")["include"]
    ids = [row["id"] for row in rows]
    assert len(ids) >= 11
    assert set(ids) >= EXPECTED
    assert len(ids) == len(set(ids))
    by_id = {row["id"]: row for row in rows}
    assert by_id["torch2.7.1-cu118-py3.11-base"]["legacy"] is True
    assert by_id["torch2.5.1-cu121-py3.11-base"]["cuda"] == "12.1"
    assert by_id["torch2.9.1-cu130-py3.11-nlp"]["experimental"] is True
    assert by_id["torch2.9.1-cu126-py3.11-vision"]["parent"] == "torch2.9.1-cu126-py3.11-base"


def test_json_is_a_github_actions_matrix(capsys: pytest.CaptureFixture[str]) -> None:
    document = plan_json(capsys, "--all")
    # fromJSON(...) as `strategy.matrix`: an object whose "include" is a list of objects
    # whose values are scalars (or lists of strings); nothing nested deeper.
    assert list(document) == ["include"]
    assert isinstance(document["include"], list) and document["include"]
    for row in document["include"]:
        assert isinstance(row, dict)
        for value in row.values():
            assert not isinstance(value, dict)
            if isinstance(value, list):
                assert all(isinstance(item, str) for item in value)
        assert isinstance(row["id"], str) and row["id"]


def test_default_is_the_default_group(capsys: pytest.CaptureFixture[str]) -> None:
    ids = [row["id"] for row in plan_json(capsys)["include"]]
    assert ids == ["torch2.9.1-cu128-py3.11-base", "torch2.9.1-cu128-py3.11-vision",
                   "torch2.9.1-cu128-py3.11-nlp"]


def test_glob_includes_ancestors(capsys: pytest.CaptureFixture[str]) -> None:
    rows = plan_json(capsys, "torch2.9.1-cu130-*-nlp")["include"]
    assert [(r["id"], r["requested"]) for r in rows] == [
        ("torch2.9.1-cu130-py3.11-base", False), ("torch2.9.1-cu130-py3.11-nlp", True)]


def test_glob_for_legacy(capsys: pytest.CaptureFixture[str]) -> None:
    rows = plan_json(capsys, "torch2.[57].*")["include"]
    assert {r["id"] for r in rows} == {"torch2.7.1-cu118-py3.11-base",
                                       "torch2.5.1-cu121-py3.11-base"}


def test_unknown_glob_exits_2_with_a_tip(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--matrix", MATRIX, "plan", "--json", "torch3.*"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    assert err.startswith("error: no image id matches 'torch3.*'\n")
    assert "tip: ids look like torch2.9.1-cu126-py3.11-base" in err
    assert "torchstack plan --all" in err


def test_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--matrix", MATRIX, "plan", "--all"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "PARENT", "FLAVOR", "TORCH", "CUDA", "PYTHON", "INDEX",
                                "TAGS"]
    assert all(any(line.startswith(image_id + " ") for line in lines) for image_id in EXPECTED)
    legacy = next(line for line in lines if line.startswith("torch2.7.1-cu118"))
    assert "(legacy)" in legacy
    assert lines[-1] == f"{len(lines) - 3} images; default group: torch2.9.1-cu128-*"


def test_bad_matrix_path_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--matrix", str(tmp_path / "matrix.yaml"), "plan", "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "matrix.yaml: file not found" in err


def test_plan_shows_the_layer_groups_of_locked_images(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--all", "--layers"]) == 0
    blocks = {b.split(" ")[0].rstrip(":"): b for b in capsys.readouterr().out.split("\n\n")}
    base = blocks["torch2.9.1-cu128-py3.11-base"].splitlines()
    assert base[0].startswith("torch2.9.1-cu128-py3.11-base (on bookworm;")
    assert [line.split()[1] for line in base[2:]] == [
        "nvidia-cudnn", "nvidia-cublas", "nvidia-nccl", "nvidia-solvers", "nvidia-other",
        "triton", "torch", "python-packages"]
    torch_row = base[2:][6].split()
    assert torch_row[2] == "1" and int(torch_row[3].replace(",", "")) > 500  # ~900 MB wheel
    assert blocks["torch2.9.1-cu126-py3.11-base"].endswith(
        "unlocked (run `torchstack lock torch2.9.1-cu126-py3.11-base`)")
    assert main(["plan", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)["include"]}
    assert rows["torch2.9.1-cu128-py3.11-vision"]["layer_groups"] == ["01-vision"]
    assert rows["torch2.9.1-cu128-py3.11-base"]["layer_groups"][6] == "07-torch"

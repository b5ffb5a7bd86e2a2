"""render writes only inside the project, deletes only what it wrote, follows no symlink."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.paths import REPO
from torchstack.cli import main
from torchstack.config.matrix import load_matrix
from torchstack.errors import ConfigError
from torchstack.render.context import remove_orphans, write_images


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(REPO / "matrix.yaml", root)
    shutil.copytree(REPO / "layers", root / "layers")
    shutil.copytree(REPO / "images", root / "images")
    return root


def first_id(project: Path) -> str:
    return load_matrix(project / "matrix.yaml").images[0].id


def test_a_symlinked_image_folder_out_of_the_tree_is_refused(
        project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    image_id = first_id(project)
    shutil.rmtree(project / "images" / image_id)
    (project / "images" / image_id).symlink_to(elsewhere)
    code = main(["--matrix", str(project / "matrix.yaml"), "render"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"images/{image_id}" in err and "symlink that leads out of the project" in err
    assert list(elsewhere.iterdir()) == []


def test_a_symlinked_images_folder_is_refused(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(project / "images"), elsewhere)
    (project / "images").symlink_to(elsewhere)
    before = sorted(p.name for p in elsewhere.rglob("*"))
    matrix = load_matrix(project / "matrix.yaml")
    with pytest.raises(ConfigError, match="leads out of the project"):
        write_images(matrix, list(matrix.images))
    assert sorted(p.name for p in elsewhere.rglob("*")) == before


def test_a_symlinked_dockerfile_pointing_out_is_refused(project: Path, tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    image_id = first_id(project)
    dockerfile = project / "images" / image_id / "Dockerfile"
    dockerfile.unlink()
    dockerfile.symlink_to(target)
    matrix = load_matrix(project / "matrix.yaml")
    with pytest.raises(ConfigError, match=f"images/{image_id}/Dockerfile"):
        write_images(matrix, list(matrix.images))
    assert target.read_text() == "keep me"


def orphan(project: Path, name: str) -> Path:
    """A rendered folder of an image the matrix no longer has (a copy of a real one)."""
    folder = project / "images" / name
    shutil.copytree(project / "images" / first_id(project), folder, symlinks=True)
    return folder


def test_an_orphan_torchstack_rendered_is_removed(project: Path) -> None:
    folder = orphan(project, "torch0.0-gone")
    assert remove_orphans(load_matrix(project / "matrix.yaml")).removed == (folder,)
    assert not folder.exists()


def test_a_symlinked_orphan_folder_is_not_followed(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(project / "images" / first_id(project), elsewhere)
    before = sorted(str(p.relative_to(elsewhere)) for p in elsewhere.rglob("*"))
    (project / "images" / "torch0.0-gone").symlink_to(elsewhere)
    assert remove_orphans(load_matrix(project / "matrix.yaml")).removed == ()
    assert sorted(str(p.relative_to(elsewhere)) for p in elsewhere.rglob("*")) == before
    assert (project / "images" / "torch0.0-gone").is_symlink()


def test_an_orphan_keeps_what_torchstack_did_not_write(project: Path, tmp_path: Path) -> None:
    folder = orphan(project, "torch0.0-gone")
    (folder / "notes.md").write_text("mine")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data.bin").write_text("x")
    (folder / "linked").symlink_to(outside)
    assert remove_orphans(load_matrix(project / "matrix.yaml")).removed == ()
    assert sorted(p.name for p in folder.iterdir()) == ["linked", "notes.md"]
    assert (outside / "data.bin").read_text() == "x"


def test_a_folder_torchstack_did_not_render_is_left_alone(project: Path) -> None:
    folder = project / "images" / "hand-made"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM scratch\n")
    assert remove_orphans(load_matrix(project / "matrix.yaml")).removed == ()
    assert (folder / "Dockerfile").exists()

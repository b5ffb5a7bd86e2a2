"""Every file torchstack writes goes through one writer: no symlink followed, atomic, unique
temporary names, and each OS refusal an exit 2 naming the path (never a traceback)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import torchstack
from tests.unit.hostileutil import ROOT_IMAGE, copy_project, run_cli, tree
from torchstack.cli import main
from torchstack.errors import ConfigError
from torchstack.workspace.files import write_text
from torchstack.workspace.runs import create_run

PINNED = "reg.example/ts@sha256:" + "a" * 64


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    """DOCKER_HOST at a closed port: a refusal that came after asking the Engine is exit 3."""
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{closed_port()}")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


@pytest.mark.parametrize("verb", ["build", "check", "promote"])
def test_a_symlinked_state_folder_is_refused_before_anything_is_written(
        project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], verb: str) -> None:
    """Finding 4: runs, reports and records went through a symlinked `.torchstack`."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (project / ".torchstack").symlink_to(elsewhere)
    before = tree(project)
    code, err = run_cli(capsys, "--matrix", str(project / "matrix.yaml"), verb, ROOT_IMAGE)
    assert code == 2, err  # refused before the Engine is asked (that would be 3)
    assert ".torchstack: refusing to write through a symlink that leads out of the project" in err
    assert tree(project) == before
    assert list(elsewhere.iterdir()) == []


def test_a_symlink_inside_the_project_is_refused_too(project: Path) -> None:
    (project / "inside").mkdir()
    (project / ".torchstack").symlink_to(project / "inside")
    with pytest.raises(ConfigError, match=r"^\.torchstack: refusing to write through a symlink"):
        create_run(project)
    assert list((project / "inside").iterdir()) == []


@pytest.mark.parametrize("inside", [False, True], ids=["leading-out", "leading-inside"])
def test_a_symlinked_file_is_not_replaced_or_followed(project: Path, tmp_path: Path,
                                                      inside: bool) -> None:
    """Not even a symlink that stays inside the project is written through or replaced: the
    writer cannot know what else points at the file, nor that the link will not change."""
    target = (project if inside else tmp_path) / "victim"
    target.write_text("keep me")
    link = project / "images" / ROOT_IMAGE / "Dockerfile"
    link.unlink()
    link.symlink_to(target)
    with pytest.raises(ConfigError, match=f"images/{ROOT_IMAGE}/Dockerfile: refusing"):
        write_text(project, link, "FROM evil\n")
    assert target.read_text() == "keep me" and link.is_symlink()


@pytest.mark.parametrize(("setup", "words"), [
    pytest.param(lambda p: _replace_with_file(p / "images"), "images", id="images-is-a-file"),
    pytest.param(lambda p: _replace_with_file(p / "images" / ROOT_IMAGE),
                 f"images/{ROOT_IMAGE}", id="image-folder-is-a-file"),
    pytest.param(lambda p: _replace_with_folder(p / "images" / ROOT_IMAGE / "Dockerfile"),
                 f"images/{ROOT_IMAGE}/Dockerfile: is a folder", id="dockerfile-is-a-folder"),
])
def test_what_stands_in_the_way_is_exit_2_naming_the_path(
        project: Path, capsys: pytest.CaptureFixture[str], setup: object, words: str) -> None:
    assert callable(setup)
    setup(project)
    before = tree(project)
    code, err = run_cli(capsys, "--matrix", str(project / "matrix.yaml"), "render")
    assert code == 2, err
    assert f"error: {words}" in err, err
    assert tree(project) == before


def _replace_with_file(path: Path) -> None:
    shutil.rmtree(path)
    path.write_text("a file where a folder belongs")


def _replace_with_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def test_an_unwritable_folder_is_exit_2() -> None:
    """As root (which writes anywhere) the render runs as `nobody` through setpriv; otherwise
    the folder is made read-only for this user."""
    base = Path(tempfile.mkdtemp(prefix="torchstack-unwritable-"))  # pytest's tmp is 0700
    project = copy_project(base / "project")
    folder = project / "images" / ROOT_IMAGE
    (folder / "Dockerfile").unlink()
    command = [sys.executable, "-m", "torchstack", "--matrix", str(project / "matrix.yaml"),
               "render"]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: no user to see EACCES as")
        base.chmod(0o755)  # nobody may read the project, but write nothing in it
        command = [setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups", *command]
    else:
        folder.chmod(0o555)
    env = {**os.environ, "PYTHONPATH": str(Path(torchstack.__file__).parents[1])}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300,
                              check=False)
    finally:
        folder.chmod(0o755)
        shutil.rmtree(base)
    assert done.returncode == 2, done.stderr
    assert f"error: images/{ROOT_IMAGE}/Dockerfile: cannot write: Permission denied" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (folder / "Dockerfile").exists()


def test_concurrent_renders_do_not_collide(project: Path) -> None:
    """Six renders at once, each rewriting every Dockerfile: one shared `.partial` name made
    them replace each other's temporary files (FileNotFoundError)."""
    dockerfiles = sorted(project.glob("images/*/Dockerfile"))
    expected = {path: path.read_bytes() for path in dockerfiles}
    for _ in range(1):
        for path in dockerfiles:
            path.write_text("stale\n")
        command = [sys.executable, "-m", "torchstack", "--matrix", str(project / "matrix.yaml"),
                   "render"]
        env = {**os.environ, "PYTHONPATH": str(Path(torchstack.__file__).parents[1])}
        runs = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 env=env) for _ in range(6)]
        errors = [run.communicate()[1].decode() for run in runs]
        assert [run.returncode for run in runs] == [0] * 6, errors
        assert {path: path.read_bytes() for path in dockerfiles} == expected
    assert not [p for p in project.rglob("*") if p.name.endswith(".partial")]


def test_concurrent_writes_of_one_file_never_share_a_temporary_name(tmp_path: Path) -> None:
    """Writers in parallel (threads stand in for processes: the name must differ per call,
    not only per process): each write lands whole, none fails on another's temporary file."""
    target = tmp_path / "images" / "x" / "Dockerfile"
    texts = [f"{n}\n" * 2000 for n in range(8)]
    failures: list[BaseException] = []

    def writer(text: str) -> None:
        try:
            for _ in range(150):
                write_text(tmp_path, target, text)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(text,)) for text in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert target.read_text() in texts
    assert sorted(p.name for p in target.parent.iterdir()) == ["Dockerfile"]


def test_k8s_out_through_a_symlinked_file_is_refused(
        project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (out / f"{ROOT_IMAGE}.yaml").symlink_to(victim)
    code, err = run_cli(capsys, "--matrix", str(project / "matrix.yaml"), "k8s", ROOT_IMAGE,
                        "--image-ref", PINNED, "--out", str(out))
    assert code == 2 and "symlink" in err, err
    assert victim.read_text() == "keep me"


def test_k8s_out_below_a_file_is_exit_2(project: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    code, err = run_cli(capsys, "--matrix", str(project / "matrix.yaml"), "k8s", ROOT_IMAGE,
                        "--image-ref", PINNED, "--out", str(tmp_path / "file" / "sub"))
    assert code == 2, err
    assert (tmp_path / "file").read_text() == "x"


# --- the property: any --out path is written whole, or refused; never through a symlink -------

SEGMENTS = st.sampled_from(["a", "b", "..", ".", "file", "link-out", "link-in", "link-victim",
                            "dir", "x" * 300, "", "nul\x00", "new", "sp ace", "\u200b"])


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(SEGMENTS, min_size=1, max_size=4))
def test_any_out_path_is_written_or_refused_never_through_a_symlink(
        tmp_path_factory: pytest.TempPathFactory, segments: list[str]) -> None:
    """`--out` values reach the writer as given: a ConfigError (exit 2) or the text at exactly
    that path; the file a symlink points at is never changed, no temporary file is left."""
    base = tmp_path_factory.mktemp("out")
    root, outside = base / "root", base / "outside"
    for folder in (root / "dir", outside):
        folder.mkdir(parents=True)
    (root / "file").write_text("a file")
    (outside / "victim").write_text("keep me")
    (root / "link-out").symlink_to(outside)
    (root / "link-in").symlink_to(root / "dir")
    (root / "link-victim").symlink_to(outside / "victim")
    target = root.joinpath(*segments)
    try:
        write_text(root, target, "written\n")
    except ConfigError as exc:
        assert exc.exit_code == 2 and "Traceback" not in exc.message
        event("refused")
    else:
        event("written")
        assert target.read_text() == "written\n" and not target.is_symlink()
        assert all(not p.is_symlink() for p in target.parents if root in p.parents)
    assert (outside / "victim").read_text() == "keep me"
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert not list(root.rglob("*.partial"))


def test_render_never_deletes_a_lock_and_reverting_an_id_change_finds_it(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A renamed flavor orphaned every vision folder; render deleted their locks, and reverting
    left the images unlocked until the network gave them back (maybe at newer versions)."""
    matrix = project / "matrix.yaml"
    original = matrix.read_text()
    vision = project / "images" / "torch2.9.1-cu128-py3.11-vision"
    lock = (vision / "pylock.toml").read_bytes()
    matrix.write_text(original.replace("  vision: vision\n", "  vis: vision\n")
                      .replace("flavor: [base, vision, nlp]", "flavor: [base, vis, nlp]"))
    capsys.readouterr()
    assert main(["--matrix", str(matrix), "render"]) == 0
    out = capsys.readouterr().out
    assert "kept    images/torch2.9.1-cu128-py3.11-vision/: no image has this id, but it holds" \
           " a lock" in out
    assert (vision / "pylock.toml").read_bytes() == lock
    assert "removed images/torch2.9.1-cu126-py3.11-vision" in out  # no lock: removed
    matrix.write_text(original)
    assert main(["--matrix", str(matrix), "render"]) == 0
    capsys.readouterr()
    assert not list(project.glob("images/*-vis"))  # rendered, lock-less: removed again
    assert main(["--matrix", str(matrix), "render", "--check"]) == 0
    assert "images/ is up to date" in capsys.readouterr().out

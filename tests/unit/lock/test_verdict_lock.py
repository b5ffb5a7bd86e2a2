"""A child's lock never changes its parent's packages (issue 22, item 9: behaviours 13, 14).

Works on a temp copy of matrix.yaml, layers/ and the committed locks. Locking runs through
`lock_images` with a stand-in uv (a script that answers what uv would print, resolved against a
mirror) and a real HTTP server on loopback as the mirror's index, which `torchstack lock`
probes first. Each test's docstring names the one-line bug it catches.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.httpserver import serving
from tests.paths import copy_matrix_and_locks
from torchstack.config.inputs import BuildInputs
from torchstack.config.matrix import load_matrix
from torchstack.errors import ConfigError
from torchstack.lock.pylock import LockedDist, check_locks, read_lock
from torchstack.lock.uv import LockRequest, Uv, lock_images

BASE = "torch2.9.1-cu128-py3.11-base"
VISION = "torch2.9.1-cu128-py3.11-vision"
NUMPY_SHA256 = "ba10f8411898fc418a521833e014a77d3ca01c15b0c6cdcce6a0d2897e6dbbdf"  # the lock's
OTHER_SHA256 = "0123456789abcdef" * 4
MIRROR_FILES = "https://mirror.internal.example/packages"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """matrix.yaml, layers/ and the committed locks, nothing rendered."""
    copy_matrix_and_locks(tmp_path)
    return tmp_path


# --- 13. a parent's version with another wheel sha256 ----------------------------------------

def test_a_child_lock_keeping_a_parents_version_with_another_sha256_is_refused(
        tree: Path) -> None:
    """Bug caught: validate_lock() comparing the parent's packages by version only
    (`found[d.name].version != d.version`), so a child installing another numpy 2.2.6 wheel
    (another build, or a tampered file) than the one its parent was checked with passes."""
    vision = tree / "images" / VISION / "pylock.toml"
    text = vision.read_text(encoding="utf-8")
    assert text.count(NUMPY_SHA256) == 1
    stale, _ = check_locks(load_matrix(tree / "matrix.yaml"))  # the control: accepted as is
    assert stale == []
    vision.write_text(text.replace(NUMPY_SHA256, OTHER_SHA256), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"keep its parent's packages as they are: numpy 2\.2\.6"
                                          r" \(parent\)") as caught:
        check_locks(load_matrix(tree / "matrix.yaml"))
    assert caught.value.exit_code == 2
    assert caught.value.message.startswith(f"images/{VISION}/pylock.toml: ")


# --- 14. the parent's entries copied verbatim, even under a mirror ---------------------------

class Index(BaseHTTPRequestHandler):
    """A package index that answers every page: all `torchstack lock` asks it is /torch/."""

    def do_GET(self) -> None:
        body = b"<html><body></body></html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def mirror() -> Iterator[str]:
    with serving(Index) as server:
        yield f"http://127.0.0.1:{server.server_port}/simple"


def uv_answer(dists: list[LockedDist]) -> str:
    """What uv writes (`--format pylock.toml`) when the mirror serves every wheel: the same
    files and hashes, the mirror's URLs, and no markers."""
    out = ['lock-version = "1.0"\ncreated-by = "uv"\nrequires-python = "==3.11.*"\n']
    for d in dists:
        url = f"{MIRROR_FILES}/{d.filename}"
        out.append(f'\n[[packages]]\nname = {json.dumps(d.name)}\nversion = {json.dumps(d.version)}'
                   f'\nindex = "{MIRROR_FILES}"\nwheels = [{{ url = {json.dumps(url)},'
                   f' size = {d.size}, hashes = {{ sha256 = {json.dumps(d.sha256)} }} }}]\n')
    return "".join(out)


def fake_uv(folder: Path, answer: str) -> Uv:
    """A `uv` that writes `answer` as its pylock.toml output (`-o pylock.toml`, in its cwd)."""
    (folder / "answer.toml").write_text(answer, encoding="utf-8")
    script = folder / "uv"
    script.write_text(f"#!{sys.executable}\nimport shutil\n"
                      f"shutil.copyfile({str(folder / 'answer.toml')!r}, 'pylock.toml')\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return Uv(script, "0.13.9")


def test_the_parents_entries_are_copied_verbatim_under_a_mirror(
        tree: Path, tmp_path_factory: pytest.TempPathFactory, mirror: str) -> None:
    """Bugs caught: _dists() taking the parent's packages from uv's answer (dropping its
    `continue`), or rebuilding them from it (`LockedDist(name, version, filename, sha256,
    size)`, losing url and marker): under a mirror the child would list the parent's wheels
    at the mirror's URLs without their markers, so the two locks disagree on the same files."""
    matrix = load_matrix(tree / "matrix.yaml")
    base = read_lock(matrix, matrix.by_id()[BASE])
    vision = read_lock(matrix, matrix.by_id()[VISION])
    assert base is not None and vision is not None
    assert any(d.marker for d in base.dists)  # markers are part of what must survive
    uv = fake_uv(tmp_path_factory.mktemp("uv"), uv_answer(list(vision.dists)))
    request = LockRequest(environ=os.environ, inputs=BuildInputs(pip_index=mirror))
    (outcome,) = lock_images(matrix, [matrix.by_id()[VISION]], request, uv)
    assert outcome.error is None, outcome.error
    child = read_lock(matrix, matrix.by_id()[VISION])
    assert child is not None and child.mirror == mirror
    by_name = child.by_name()
    for parent_dist in base.dists:
        assert by_name[parent_dist.name] == parent_dist  # name, version, file, url, marker
    # The image's own packages did come from the mirror: the stand-in was asked.
    assert by_name["torchvision"].url.startswith(MIRROR_FILES)

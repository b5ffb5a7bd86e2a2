"""No matrix or layer value can add a Dockerfile instruction.

Every string in matrix.yaml and the layer.yaml files (values and user-chosen keys), one at a
time, gets a newline + RUN, a quote, a backslash or `$(...)`. The loader must refuse it (exit
2, naming file:line and the key path), or the rendered Dockerfiles must hold exactly the
instructions the unchanged matrix renders (parsed by lines, continuations joined), and every
requirements file just as many lines.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.paths import REPO
from torchstack.config.matrix import load_matrix
from torchstack.config.model import Matrix
from torchstack.errors import ConfigError
from torchstack.render.dockerfile import render_image

PAYLOADS = {
    "newline": "\nRUN echo INJECTED",
    "crlf": "\r\nRUN echo INJECTED",
    "quote": '" \\\nRUN echo INJECTED "',
    "backslash": "\\",
    "command": "$(echo INJECTED)",
}
LAYERS = ("torch", "vision", "nlp")


def instructions(dockerfile: str) -> list[str]:
    """The instruction keywords of a Dockerfile, as Docker's parser splits them by lines."""
    found: list[str] = []
    continued = False
    for line in dockerfile.split("\n"):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comment and blank lines, also inside a continuation
        if not continued:
            found.append(stripped.split()[0].upper())
        continued = stripped.endswith("\\")
    return found


def contexts(matrix: Matrix) -> dict[str, tuple[list[str], dict[str, int]]]:
    """Per image: the Dockerfile's instructions, and the line count of every other file."""
    rendered = {}
    for image in matrix.images:
        files = render_image(image, matrix)
        counts = {name: text.count("\n") for name, text in files.items() if name != "Dockerfile"}
        rendered[image.id] = (instructions(files["Dockerfile"]), counts)
    return rendered


def strings(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], bool]]:
    """(path, is_key) of every string value and every key below `node`."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key), True
            yield from strings(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from strings(value, (*path, index))
    elif isinstance(node, str):
        yield path, False


def edited(doc: Any, path: tuple[Any, ...], is_key: bool, payload: str) -> Any:
    doc = yaml.safe_load(yaml.safe_dump(doc))  # a deep copy
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if is_key:
        parent[f"{last}{payload}"] = parent.pop(last)
    else:
        parent[last] = f"{parent[last]}{payload}"
    return doc


def key_path(path: tuple[Any, ...]) -> str:
    """("include", 0, "torch") -> "include[0].torch", as error messages spell it."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else f".{step}" if text else str(step)
    return text


def documents() -> dict[str, Any]:
    docs = {"matrix.yaml": yaml.safe_load((REPO / "matrix.yaml").read_text())}
    for name in LAYERS:
        docs[f"layers/{name}/layer.yaml"] = yaml.safe_load(
            (REPO / "layers" / name / "layer.yaml").read_text())
    return docs


# Keys that are fixed names of the format: renaming them is an unknown-key error, not a value.
def user_key(file: str, path: tuple[Any, ...]) -> bool:
    if file == "matrix.yaml":
        return len(path) == 2 and path[0] in ("os_bases", "flavors")
    return len(path) == 2 and path[0] == "env"


CASES = [
    pytest.param(file, path, is_key, payload, id=f"{file}:{'.'.join(map(str, path))}"
                 f"{'(key)' if is_key else ''}:{kind}")
    for file, doc in documents().items()
    for path, is_key in strings(doc)
    if not is_key or user_key(file, path)
    for kind, payload in PAYLOADS.items()
]


@pytest.fixture(scope="module")
def baseline() -> dict[str, tuple[list[str], dict[str, int]]]:
    return contexts(load_matrix(REPO / "matrix.yaml"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("inject")
    shutil.copytree(REPO / "layers", root / "layers")
    shutil.copytree(REPO / "images", root / "images")  # the locks the render reads
    return root


def test_the_cases_cover_every_kind_of_field() -> None:
    cases = [tuple(case.values) for case in CASES]
    covered = {values[1][:2] for values in cases if values[0] == "matrix.yaml"}  # type: ignore[index]
    for field in [("os_bases", "bookworm"), ("indexes", "pypi"), ("registry", "push"),
                  ("tags", "release"), ("checks", "shm_size"), ("flavors", "base")]:
        assert any(path[:len(field)] == field for path in covered), field
    layer_paths = {values[1][0] for values in cases if values[0] != "matrix.yaml"}  # type: ignore[index]
    assert {"description", "packages", "env", "checks", "parent", "torch_packages"} <= layer_paths


@pytest.mark.parametrize(("file", "path", "is_key", "payload"), CASES)
def test_a_hostile_value_is_refused_or_changes_no_instruction(
        workdir: Path, baseline: dict[str, tuple[list[str], dict[str, int]]], file: str,
        path: tuple[Any, ...], is_key: bool, payload: str) -> None:
    docs = documents()
    docs[file] = edited(docs[file], path, is_key, payload)
    for name, doc in docs.items():
        (workdir / name).write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    try:
        matrix = load_matrix(workdir / "matrix.yaml")
    except ConfigError as exc:
        assert exc.exit_code == 2
        # Where: file:line (key path); what to do: a tip or the allowed values.
        where = re.match(rf"{re.escape(file)}:\d+ \((.+?)\): ", exc.message, re.DOTALL)
        assert where, exc.message
        if not is_key:  # the key path named is the edited value or one above it
            assert key_path(path).startswith(where.group(1)), exc.message
        assert exc.tip, exc.message
        return
    rendered = contexts(matrix)
    # Only images whose ids stayed the same are comparable; an id change is not an injection.
    for image_id, (found, counts) in rendered.items():
        if image_id in baseline:
            assert found == baseline[image_id][0], f"{image_id}: instructions changed"
            assert counts == baseline[image_id][1], f"{image_id}: a context file gained lines"
    for image in matrix.images:
        assert "INJECTED" not in "".join(
            line for line in render_image(image, matrix)["Dockerfile"].split("\n")
            if line.lstrip().startswith("RUN echo INJECTED"))


def test_the_issue_reproducer_renders_nothing(workdir: Path) -> None:
    text = (REPO / "matrix.yaml").read_text()
    hostile = text.replace('pypi: "https://pypi.org/simple"',
                           'pypi: "https://pypi.org/simple\\nRUN echo INJECTED"')
    assert hostile != text
    for name, doc in documents().items():
        (workdir / name).write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    (workdir / "matrix.yaml").write_text(hostile)
    line = next(i for i, text in enumerate(hostile.splitlines(), 1) if "INJECTED" in text)
    with pytest.raises(ConfigError) as caught:
        load_matrix(workdir / "matrix.yaml")
    assert caught.value.message.startswith(f"matrix.yaml:{line} (indexes.pypi): ")
    assert "line break" in caught.value.message and caught.value.tip


@pytest.mark.parametrize("fragment", [
    "RUN apt-get update \\\n",
    "RUN true \\\n# a comment after the continuation\n",
    "RUN cat <<EOF\nnever closed\n",
    "FROM alpine AS mine\nRUN true\n",
])
def test_a_fragment_that_would_leak_into_the_next_instruction(workdir: Path,
                                                              fragment: str) -> None:
    for name, doc in documents().items():
        (workdir / name).write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    target = workdir / "layers" / "vision" / "Dockerfile.fragment"
    target.write_text(fragment)
    try:
        with pytest.raises(ConfigError, match=r"^layers/vision/Dockerfile\.fragment:\d+: "):
            load_matrix(workdir / "matrix.yaml")
    finally:
        target.unlink()

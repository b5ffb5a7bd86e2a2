"""Fuzzing the loader: whatever the files hold, load_matrix returns a Matrix or raises ConfigError.

Any other exception (KeyError, TypeError, RecursionError, a yaml error...) would reach the user
as a traceback, so it fails these tests.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.paths import REPO
from torchstack.config.matrix import load_matrix
from torchstack.config.model import Matrix
from torchstack.errors import ConfigError


def _schema_keys(node: Any) -> set[str]:
    """Every property name the schemas know, at any depth."""
    if isinstance(node, list):
        return set().union(*map(_schema_keys, node)) if node else set()
    if not isinstance(node, dict):
        return set()
    own = set(node.get("properties", {}))
    return own.union(*map(_schema_keys, node.values()))


REAL_KEYS = sorted(_schema_keys([json.loads(p.read_text(encoding="utf-8"))
                                 for p in (REPO / "schema").glob("*.schema.json")]))
WORDS = ["base", "vision", "nlp", "torch", "bookworm", "noble", "2.9.1", "2.7.1", "12.8",
         "11.8", "13.0", "3.11", "3.9", "{torch}", "{hash12}", "{nope}", "gpu", "cpu",
         "numpy==2.2.6", "numpy>=1", "torch==2.9.1", "https://pypi.org/simple", "*", "torch2.9*"]
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def near_miss(key: str) -> st.SearchStrategy[str]:
    """A real key with one typo: a dropped, doubled or swapped letter, or another case."""
    n = len(key)
    return st.one_of(
        st.integers(0, n - 1).map(lambda i: key[:i] + key[i + 1:]),
        st.integers(0, n - 1).map(lambda i: key[:i] + key[i] + key[i:]),
        st.integers(0, max(n - 2, 0)).map(lambda i: key[:i] + key[i + 1:i + 2] + key[i:i + 1]
                                          + key[i + 2:]),
        st.just(key.upper()),
    ).filter(bool)


KEYS = st.one_of(
    st.sampled_from(REAL_KEYS),
    st.sampled_from(REAL_KEYS).flatmap(near_miss),
    st.text(min_size=1, max_size=8),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10**12), st.floats(allow_nan=False),
    st.sampled_from(WORDS), st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(KEYS, inner, max_size=5)),
    max_leaves=25,
)
FRAGMENTS = st.sampled_from([
    "&a ", "*a", "<<: ", "!!python/object:os.system ", "---\n", "\t", "{", "}", "[", "]",
    ": ", "- ", "\n  ", "\n", "~", "'", '"', "? ", "%YAML 1.1\n", "!!binary ", "&b [*b]",
])
TEXTS = st.lists(
    st.one_of(FRAGMENTS, st.sampled_from(REAL_KEYS), st.sampled_from(WORDS),
              st.text(st.characters(exclude_categories=["Cs"]), max_size=6)),
    max_size=40,
).map("".join)


# Trees written as YAML text by `emit`, with anchors on collections and aliases that may
# point at an earlier anchor or at an enclosing one (a recursive alias), and merge keys.
TREES = st.recursive(
    st.one_of(st.tuples(st.just("scalar"), SCALARS),
              st.tuples(st.just("alias"), st.integers(0, 9))),
    lambda inner: st.one_of(
        st.tuples(st.just("seq"), st.lists(inner, max_size=4), st.booleans()),
        st.tuples(st.just("map"), st.lists(st.tuples(st.one_of(KEYS, st.just("<<")), inner),
                                           max_size=4), st.booleans()),
    ),
    max_leaves=30,
)


def emit(tree: Any, anchors: list[str]) -> str:
    kind = tree[0]
    if kind == "scalar":
        return json.dumps(tree[1])
    if kind == "alias":
        return f"*{anchors[tree[1] % len(anchors)]}" if anchors else "null"
    anchor = ""
    if tree[2]:
        anchors.append(f"a{len(anchors)}")
        anchor = f"&{anchors[-1]} "
    if kind == "seq":
        return anchor + "[" + ", ".join(emit(item, anchors) for item in tree[1]) + "]"
    items = (f"{json.dumps(k) if k != '<<' else k}: {emit(v, anchors)}" for k, v in tree[1])
    return anchor + "{" + ", ".join(items) + "}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copy(REPO / "matrix.yaml", root / "matrix.yaml")
    shutil.copytree(REPO / "layers", root / "layers")
    return root


@pytest.fixture(scope="module")
def repo_doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((REPO / "matrix.yaml").read_text())
    return doc


def load_or_config_error(path: Path) -> Matrix | ConfigError:
    """The property itself: nothing but a Matrix or a ConfigError with a location comes out."""
    try:
        return load_matrix(path)
    except ConfigError as exc:
        assert exc.message and exc.exit_code == 2
        assert ".yaml" in exc.message or "layers" in exc.message, exc.message
        return exc


def put(root: Path, matrix_text: str | None = None, **layers: str) -> Path:
    if matrix_text is not None:
        (root / "matrix.yaml").write_text(matrix_text, encoding="utf-8")
    for name, text in layers.items():
        (root / "layers" / name / "layer.yaml").write_text(text, encoding="utf-8")
    return root / "matrix.yaml"


@pytest.fixture
def fresh(workdir: Path) -> Path:
    """The repo matrix and layers again (an example may have changed them)."""
    shutil.copy(REPO / "matrix.yaml", workdir / "matrix.yaml")
    for name in ("torch", "vision", "nlp"):
        shutil.copy(REPO / "layers" / name / "layer.yaml", workdir / "layers" / name)
    return workdir


def test_the_unchanged_repo_matrix_loads(fresh: Path) -> None:
    assert isinstance(load_or_config_error(fresh / "matrix.yaml"), Matrix)


@SETTINGS
@given(doc=VALUES)
def test_random_documents(fresh: Path, doc: Any) -> None:
    load_or_config_error(put(fresh, yaml.safe_dump(doc)))


@SETTINGS
@given(doc=st.dictionaries(KEYS, VALUES, max_size=8))
def test_random_mappings_with_real_and_near_miss_keys(fresh: Path, doc: dict[str, Any]) -> None:
    load_or_config_error(put(fresh, yaml.safe_dump(doc)))


@SETTINGS
@given(text=TEXTS)
def test_random_text(fresh: Path, text: str) -> None:
    load_or_config_error(put(fresh, text))


@SETTINGS
@given(tree=TREES, key=st.sampled_from(REAL_KEYS))
def test_documents_with_anchors_aliases_and_merge_keys(fresh: Path, tree: Any, key: str) -> None:
    text = emit(tree, [])
    assert yaml.compose(text) is not None or text == "null"  # the emitter writes valid YAML
    load_or_config_error(put(fresh, f"{key}: {text}\n"))
    load_or_config_error(put(fresh, text))


@SETTINGS
@given(data=st.binary(max_size=64))
def test_random_bytes(fresh: Path, data: bytes) -> None:
    (fresh / "matrix.yaml").write_bytes(data)
    load_or_config_error(fresh / "matrix.yaml")


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


def mutate(doc: Any, data: st.DataObject) -> Any:
    """Replace, delete, rename or add at one random place of a valid document."""
    doc = copy.deepcopy(doc)
    path = data.draw(st.sampled_from(paths(doc)[1:]))
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    action = data.draw(st.sampled_from(["replace", "delete", "rename", "add", "scalar"]))
    if action == "replace":
        parent[last] = data.draw(VALUES)
    elif action == "scalar":
        parent[last] = data.draw(SCALARS)
    elif action == "delete":
        del parent[last]
    elif action == "rename" and isinstance(parent, dict):
        parent[data.draw(KEYS)] = parent.pop(last)
    elif isinstance(parent, dict):
        parent[data.draw(KEYS)] = data.draw(VALUES)
    else:
        parent.insert(last, data.draw(VALUES))
    return doc


@SETTINGS
@given(data=st.data())
def test_mutations_of_the_repo_matrix(fresh: Path, repo_doc: dict[str, Any],
                                      data: st.DataObject) -> None:
    doc = repo_doc
    for _ in range(data.draw(st.integers(1, 3))):
        doc = mutate(doc, data)
    load_or_config_error(put(fresh, yaml.safe_dump(doc, sort_keys=False)))


@SETTINGS
@given(data=st.data())
def test_mutations_of_the_layers(fresh: Path, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(["torch", "vision", "nlp"]))
    layer = yaml.safe_load((REPO / "layers" / name / "layer.yaml").read_text())
    text = data.draw(st.one_of(st.just(yaml.safe_dump(mutate(layer, data))), TEXTS))
    load_or_config_error(put(fresh, None, **{name: text}))

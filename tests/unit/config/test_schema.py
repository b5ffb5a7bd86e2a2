"""schema/*.schema.json: valid draft 2020-12, accepts the repo's files, rejects bad ones, and
gives the loader its key sets, and reaches the user as file:line errors."""

from __future__ import annotations

import copy
import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from tests.paths import REPO
from torchstack.checks.expect import Thresholds
from torchstack.config import expand, layers, matrix, schemas
from torchstack.config.located import parse_yaml
from torchstack.config.model import CheckLevel
from torchstack.errors import ConfigError

MATRIX_SCHEMA = REPO / "schema" / "matrix.schema.json"
LAYER_SCHEMA = REPO / "schema" / "layer.schema.json"

# Where each of the loader's key sets lives in the matrix schema.
KEY_SETS = {
    "TOP_KEYS": (),
    "AXIS_KEYS": ("$defs", "axes"),
    "ENTRY_KEYS": ("$defs", "include_entry"),
    "OS_KEYS": ("$defs", "os_base"),
    "BOOTSTRAP_KEYS": ("$defs", "bootstrap"),
    "INDEX_KEYS": ("$defs", "indexes"),
    "REGISTRY_KEYS": ("$defs", "registry"),
    "TAG_KEYS": ("$defs", "tags"),
    "ALIAS_KEYS": ("$defs", "alias"),
    "PROMOTION_KEYS": ("$defs", "promotion"),
    "CHECKS_KEYS": ("$defs", "checks"),
}


def load(path: Path) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def at(schema: dict[str, Any], where: tuple[str, ...]) -> dict[str, Any]:
    node = schema
    for step in where:
        node = node[step]
    return node


@pytest.fixture(scope="module")
def matrix_schema() -> dict[str, Any]:
    return load(MATRIX_SCHEMA)


@pytest.fixture(scope="module")
def layer_schema() -> dict[str, Any]:
    return load(LAYER_SCHEMA)


def errors(schema: dict[str, Any], document: Any) -> list[str]:
    """'path: message' for each validation error, path in dotted form."""
    found = Draft202012Validator(schema).iter_errors(document)
    return sorted(".".join(str(p) for p in e.absolute_path) + ": " + e.message for e in found)


def test_schemas_are_valid_draft_2020_12(matrix_schema: dict[str, Any],
                                          layer_schema: dict[str, Any]) -> None:
    for schema in (matrix_schema, layer_schema):
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)


def test_matrix_yaml_points_editors_at_the_schema() -> None:
    first = (REPO / "matrix.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=schema/matrix.schema.json"
    assert (REPO / first.split("$schema=")[1]).is_file()


def test_the_repo_matrix_and_layers_are_valid(matrix_schema: dict[str, Any],
                                              layer_schema: dict[str, Any]) -> None:
    assert errors(matrix_schema, yaml.safe_load((REPO / "matrix.yaml").read_text())) == []
    layer_files = sorted((REPO / "layers").glob("*/layer.yaml"))
    assert len(layer_files) >= 3
    for path in layer_files:
        assert errors(layer_schema, yaml.safe_load(path.read_text())) == [], path


def test_loader_key_sets_come_from_the_schema() -> None:
    # Literal sets: a wrong $defs lookup or a dropped `required` would change them.
    assert schemas.keys(schemas.MATRIX, "registry") == schemas.KeySet(
        frozenset({"local", "push", "compression", "zstd_suffix"}), frozenset({"local", "push"}))
    assert schemas.keys(schemas.MATRIX, "alias") == schemas.KeySet(
        frozenset({"tag", "default", "flavor"}), frozenset({"tag"}))
    assert schemas.keys(schemas.LAYER).required == {"parent"}
    assert matrix.TOP.required == {"os_bases", "flavors", "axes", "registry", "tags"}
    assert expand.EXCLUDE.required == frozenset()
    assert "legacy" in expand.INCLUDE.allowed and "legacy" not in expand.EXCLUDE.allowed
    # Thresholds are judged by the check suite's own parser; the schema names the same keys.
    assert schemas.keys(schemas.MATRIX, "thresholds").allowed == {
        f.name for f in dataclasses.fields(Thresholds)}


def test_the_packaged_schemas_are_the_repository_files() -> None:
    for name in (schemas.MATRIX, schemas.LAYER):
        assert schemas.load(name) == load(REPO / "schema" / name)


def located_errors(text: str, schema: str) -> str:
    with pytest.raises(ConfigError) as caught:
        schemas.validate(parse_yaml(text, "m.yaml"), schema)
    return f"{caught.value}\ntip: {caught.value.tip}"


@pytest.mark.parametrize(("text", "expected", "tip"), [
    # The first error in the file wins, at its key's line, whatever order jsonschema found them.
    ("parent: base\nenv:\n  1BAD: x\npackages: [numpy>=1]\n",
     "m.yaml:2 (env): '1BAD' does not match", "see layer.schema.json"),
    ("parent: base\npackages:\n  - numpy==1.0\n  - numpy>=1\n",
     "m.yaml:4 (packages[1]): 'numpy>=1' does not match", "see layer.schema.json"),
    # An unknown key names itself, on its own line, with the loader's wording.
    ("parent: base\ndescription: x\npakages: []\n",
     "m.yaml:3 (pakages): unknown key 'pakages'; did you mean 'packages'?", "allowed keys here:"),
    ("description: x\n", "m.yaml:1: missing required key 'parent'", "see layer.schema.json"),
    ("parent: base\nchecks: vision\n",
     "m.yaml:2 (checks): expected a list, got the string 'vision'", "see layer.schema.json"),
])
def test_schema_errors_are_located_like_the_loaders(text: str, expected: str, tip: str) -> None:
    message = located_errors(text, schemas.LAYER)
    assert message.startswith(expected), message
    assert tip in message.split("\ntip: ")[1]


def test_a_rule_only_the_schema_has_still_stops_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Were the schema stricter than the loader, loading fails at the key's line (so it must be
    validating), not only in the editor."""
    stricter = copy.deepcopy(schemas.load(schemas.MATRIX))
    properties = stricter["properties"]
    assert isinstance(properties, dict) and isinstance(properties["id_template"], dict)
    properties["id_template"]["maxLength"] = 3
    # Patched where validation reads it (the validator is built once per schema and cached).
    monkeypatch.setattr(schemas, "_validator", lambda name: Draft202012Validator(
        stricter if name == schemas.MATRIX else load(REPO / "schema" / name)))
    with pytest.raises(ConfigError) as caught:
        matrix.load_matrix(REPO / "matrix.yaml")
    line = next(n for n, text in enumerate((REPO / "matrix.yaml").read_text().splitlines(), 1)
                if text.startswith("id_template:"))
    assert str(caught.value).startswith(f"matrix.yaml:{line} (id_template): ")
    assert "is too long" in str(caught.value)


def test_every_fixed_object_refuses_unknown_keys(matrix_schema: dict[str, Any],
                                                 layer_schema: dict[str, Any]) -> None:
    objects = [matrix_schema, layer_schema, *matrix_schema["$defs"].values()]
    for node in objects:
        if "properties" in node:
            assert node["additionalProperties"] is False, node.get("description", node)


def test_value_rules_match_the_loader(matrix_schema: dict[str, Any],
                                      layer_schema: dict[str, Any]) -> None:
    defs = matrix_schema["$defs"]
    assert defs["registry"]["properties"]["push"]["pattern"] == matrix.DOCKER_REPO.pattern
    assert defs["os_base"]["properties"]["python"]["pattern"] == matrix.PYTHON_VERSION.pattern
    assert set(defs["promotion"]["properties"]["require"]["enum"]) == set(
        typing.get_args(CheckLevel))
    props = layer_schema["properties"]
    assert props["packages"]["items"]["pattern"] == layers.EXACT_PIN.pattern
    assert props["env"]["propertyNames"]["pattern"] == layers.ENV_NAME.pattern
    assert props["checks"]["items"]["enum"] == list(layers.CHECK_IDS), (
        "the check suite changed: update the enum in schema/layer.schema.json")
    assert props["torch_packages"]["items"]["enum"] == list(layers.TORCH_FAMILY)


def edit(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    node = doc
    for step in path[:-1]:
        node = node[step]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


DELETE = object()


@pytest.mark.parametrize(("path", "value", "expected"), [
    (("promotoin",), {"require": "gpu"}, ": Additional properties are not allowed ('promotoin'"),
    (("registry",), DELETE, ": 'registry' is a required property"),
    (("axes", "torch"), "2.9.1", "axes.torch: '2.9.1' is not of type 'array'"),
    (("axes", "cuda"), [], "axes.cuda: [] should be non-empty"),
    (("os_bases", "bookworm", "pyhton"), "3.11", "os_bases.bookworm: Additional properties"),
    (("os_bases", "bookworm", "python"), "three", "os_bases.bookworm.python: 'three' does not"),
    (("promotion", "require"), "always", "promotion.require: 'always' is not one of"),
    (("indexes", "pypi"), "pypi.org/simple", "indexes.pypi: 'pypi.org/simple' does not match"),
    (("registry", "push"), "https://r/x", "registry.push: 'https://r/x' does not match"),
    (("tags", "candidate"), "{id}", "tags.candidate: '{id}' does not match"),
    (("include", 0, "legacy"), "yes", "include.0.legacy: 'yes' is not of type 'boolean'"),
    (("schema_version",), 2, "schema_version: 1 was expected"),
    (("checks", "timeout_s"), 0, "checks.timeout_s: 0 is less than the minimum of 1"),
    (("checks", "thresholds", "shm_min_byte"), 1, "checks.thresholds: Additional properties"),
    (("checks", "thresholds", "matmul_size"), 0.5, "checks.thresholds.matmul_size: 0.5 is not"),
])
def test_bad_matrices_are_rejected(matrix_schema: dict[str, Any], path: tuple[Any, ...],
                                   value: Any, expected: str) -> None:
    doc = yaml.safe_load((REPO / "matrix.yaml").read_text())
    found = errors(matrix_schema, edit(doc, path, value))
    assert any(e.startswith(expected) for e in found), found


@pytest.mark.parametrize(("path", "value", "expected"), [
    (("pakages",), [], ": Additional properties are not allowed ('pakages'"),
    (("parent",), DELETE, ": 'parent' is a required property"),
    (("packages",), ["numpy>=1"], "packages.0: 'numpy>=1' does not match"),
    (("env",), {"1BAD": "x"}, "env: '1BAD' does not match"),
    (("torch_packages",), ["numpy"], "torch_packages.0: 'numpy' is not one of"),
    (("checks",), ["visoin"], "checks.0: 'visoin' is not one of"),
])
def test_bad_layers_are_rejected(layer_schema: dict[str, Any], path: tuple[Any, ...],
                                 value: Any, expected: str) -> None:
    doc = yaml.safe_load((REPO / "layers" / "vision" / "layer.yaml").read_text())
    found = errors(layer_schema, edit(doc, path, value))
    assert any(e.startswith(expected) for e in found), found


YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.sampled_from(["base", "2.9.1", "12.8", "{id}", "numpy==2.2.6", "x y"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["parent", "packages", "env", "checks", "tags", "axes",
                                       "torch", "registry", "local", "1BAD", "x"]),
                      inner, max_size=4),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(document=YAML_VALUES, schema=st.sampled_from([schemas.MATRIX, schemas.LAYER]))
def test_any_document_passes_or_gets_a_located_error(document: Any, schema: str) -> None:
    """Whatever the document, validate returns or raises ConfigError at m.yaml:<line>."""
    try:
        schemas.validate(parse_yaml(yaml.safe_dump(document), "m.yaml"), schema)
    except ConfigError as exc:
        assert str(exc).startswith("m.yaml:"), str(exc)

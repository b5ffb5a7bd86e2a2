"""schema/*.schema.json are the one source of the config files' shape: which keys each mapping
takes, which are required, and each value's type, pattern, range and choices.

The loaders take each mapping's key set from here, and validate every document with the schema
once their own checks (which word the common mistakes better and judge what a schema cannot say:
cross-references, uniqueness, templates, the suite's thresholds) have passed. A schema error then
becomes the same file:line (key.path): message + tip error as the loaders' own, so a file the
loader accepts is one the editors' schema accepts too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from jsonschema import Draft202012Validator, ValidationError

from torchstack.config.located import Located, type_name
from torchstack.errors import ConfigError
from torchstack.workspace.json_types import JSONObject

# src/torchstack/config/schema links to the repository's schema/ folder, so the wheel carries it.
SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
MATRIX = "matrix.schema.json"
LAYER = "layer.schema.json"
JSON_TYPES = {"object": "a mapping", "array": "a list", "string": "a string",
              "integer": "a whole number", "number": "a number", "boolean": "true or false"}


@dataclass(frozen=True)
class KeySet:
    allowed: frozenset[str]
    required: frozenset[str]

    def of(self, node: Located) -> dict[str, Located]:
        """`node` as a mapping of these keys (unknown or missing ones fail at their line)."""
        return node.mapping(self.allowed, self.required)


@cache
def load(name: str) -> JSONObject:
    schema: JSONObject = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    return schema


def keys(name: str, definition: str | None = None) -> KeySet:
    """The keys one object of a schema takes: the top level, or `$defs/<definition>`."""
    node = load(name)
    if definition is not None:
        defs = node.get("$defs")
        found = defs.get(definition) if isinstance(defs, dict) else None
        if not isinstance(found, dict):
            raise KeyError(f"{name} defines no $defs/{definition}")  # a bug here, not input
        node = found
    return _key_set(node)


def _key_set(node: Mapping[str, object]) -> KeySet:
    properties, required = node.get("properties"), node.get("required")
    return KeySet(frozenset(str(k) for k in properties) if isinstance(properties, dict)
                  else frozenset(),
                  frozenset(str(k) for k in required) if isinstance(required, list)
                  else frozenset())


@cache
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load(name))


def validate(doc: Located, name: str) -> None:
    """Raise the schema error that comes first in the file, located at its key's line."""
    found = list(_validator(name).iter_errors(doc.plain()))
    if not found:
        return
    placed = [(_locate(doc, error), error) for error in found]
    (node, line), error = min(placed, key=lambda p: (p[0][1], -len(p[1].absolute_path)))
    if error.validator == "additionalProperties" and isinstance(error.schema, dict):
        # The loaders' own key check words it: "unknown key 'x'; did you mean ...", the keys.
        _key_set(error.schema).of(node)
    message, tip = _explain(error, node)
    at = f" ({node.path})" if node.path else ""
    raise ConfigError(f"{node.file}:{line}{at}: {message}",
                      tip=tip or f"see {name} in schema/ for what this key takes")


def _locate(doc: Located, error: ValidationError) -> tuple[Located, int]:
    """The node an error's path names, and the line of its key (a nested value starts later)."""
    node, line = doc, doc.line
    for step in error.absolute_path:
        if isinstance(node.value, dict):
            key = next((k for k in node.value if k == step), None)
            if key is None:
                break
            line = node.key_lines.get(key, node.value[key].line)
            node = node.value[key]
        elif isinstance(node.value, list) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
            line = node.line
        else:
            break
    if error.validator == "additionalProperties" and isinstance(node.value, dict):
        extra = _extra_keys(error, node)
        if extra:
            line = node.key_lines.get(extra[0], node.value[extra[0]].line)
    return node, line


def _extra_keys(error: ValidationError, node: Located) -> list[str]:
    allowed = error.schema.get("properties", {})
    return [k for k in node.value if k not in allowed]


def _explain(error: ValidationError, node: Located) -> tuple[str, str | None]:
    """The loaders' wording for the errors they share with the schema; jsonschema's for the rest."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "required":
        present = set(node.value) if isinstance(node.value, dict) else set()
        missing = sorted(set(schema.get("required", ())) - present)
        return f"missing required key '{missing[0] if missing else error.message}'", None
    if error.validator == "type":
        wanted = schema.get("type", [])
        names = [JSON_TYPES.get(t, t) for t in (wanted if isinstance(wanted, list) else [wanted])
                 if isinstance(t, str)]
        return f"expected {' or '.join(names)}, got {type_name(error.instance)}", None
    description = schema.get("description")
    return error.message, description if isinstance(description, str) else None

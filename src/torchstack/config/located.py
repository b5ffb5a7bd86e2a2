"""Read YAML into plain values that remember where each one was written.

PyYAML's composer gives nodes with line marks; we turn them into `Located` values ourselves so
that duplicate keys, alias bombs and non-string keys become `ConfigError`s naming file:line.
"""

from __future__ import annotations

import builtins
import difflib
import math
import os
import stat
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from torchstack.config.kinds import describe_char, odd_chars
from torchstack.errors import ConfigError

# A document that expands past this many nodes (through aliases) is refused, not built.
MAX_NODES = 50_000
# Nesting deeper than this is refused (a real matrix needs about 5 levels).
MAX_DEPTH = 50
# matrix.yaml, a layer.yaml or a Dockerfile.fragment larger than this is refused before it is
# parsed (the repository's matrix.yaml is about 3 KiB); at most this many bytes are ever read.
MAX_BYTES = 1 << 20
# Numbers are settings (seconds, bytes, fractions): 64-bit integers, at most 40 characters.
MAX_INT = 2**63 - 1
MAX_NUMBER_CHARS = 40
INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"


@dataclass(frozen=True)
class Located:
    """A YAML value with its file, line and key path (`flavors.vision[0]`)."""

    value: Any
    file: str
    line: int
    path: str
    # For mappings: key -> line of the key itself.
    key_lines: dict[str, int] = field(default_factory=dict, compare=False)
    # For scalars: the text as written, so `cuda: 12.10` is "12.10", not the float 12.1.
    text: str | None = field(default=None, compare=False)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def fail(self, message: str, tip: str | None = None) -> NoReturn:
        at = f" ({self.path})" if self.path else ""
        raise ConfigError(f"{self.where}{at}: {message}", tip=tip)

    # Typed accessors: each fails with this value's location when the type is wrong.
    def mapping(
        self, allowed: AbstractSet[str], required: AbstractSet[str] = frozenset()
    ) -> dict[str, Located]:
        if not isinstance(self.value, dict):
            self.fail(f"expected a mapping, got {type_name(self.value)}")
        for key, child in self.value.items():
            if key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                odd = odd_chars(key)
                if odd:  # 'im\u200bage' prints as 'image': say what is in it
                    hint = f" (it contains {', '.join(odd)}){hint}"
                # Point at the key itself: a nested value starts on a later line.
                at = self.key_lines.get(key, child.line)
                raise ConfigError(f"{self.file}:{at} ({child.path}): unknown key '{key}'{hint}",
                                  tip=f"allowed keys here: {', '.join(sorted(allowed))}")
        for key in sorted(required - self.value.keys()):
            self.fail(f"missing required key '{key}'")
        return dict(self.value)

    def items(self) -> Iterator[tuple[str, Located]]:
        """A mapping with free-form keys (names chosen by the user)."""
        if not isinstance(self.value, dict):
            self.fail(f"expected a mapping, got {type_name(self.value)}")
        yield from self.value.items()

    def list(self) -> builtins.list[Located]:
        if not isinstance(self.value, list):
            self.fail(f"expected a list, got {type_name(self.value)}")
        return list(self.value)

    def str(self, *, allow_numbers: bool = False) -> str:
        value = self.value
        if allow_numbers and isinstance(value, int | float) and not isinstance(value, bool):
            # `cuda: 12.8` reads as a float; accept it but keep the written text.
            return self.text if self.text is not None else builtins.str(value)
        if not isinstance(value, str) or not value:
            self.fail(f"expected a non-empty string, got {type_name(value)}")
        return value

    def bool(self) -> bool:
        if not isinstance(self.value, bool):
            self.fail(f"expected true or false, got {type_name(self.value)}")
        return self.value

    def number(self, *, minimum: float = 0, maximum: float = math.inf) -> float:
        value = self.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"expected a number, got {type_name(value)}")
        if not math.isfinite(value):
            self.fail(f"expected a finite number, got {self.text or value}")
        if value < minimum:
            self.fail(f"must be at least {minimum:g}, got {value}")
        if value > maximum:
            self.fail(f"must be at most {maximum:g}, got {value}")
        return float(value)

    def checked(self, problem: Callable[[builtins.str], builtins.str | None], what: builtins.str,
                tip: builtins.str, *, allow_numbers: builtins.bool = False) -> builtins.str:
        """The string, if `problem` (one of torchstack.config.kinds) finds nothing wrong with it."""
        text = self.str(allow_numbers=allow_numbers)
        found = problem(text)
        if found:
            self.fail(f"{what} {text!r} {found}", tip=tip)
        return text

    def strings(self, *, allow_numbers: builtins.bool = False) -> builtins.list[builtins.str]:
        return [item.str(allow_numbers=allow_numbers) for item in self.list()]

    def plain(self) -> Any:
        """The value with locations stripped (for free-form data such as env maps)."""
        return strip(self)


def type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, Located):
        return type_name(value.value)
    return {dict: "a mapping", list: "a list", str: f"the string {value!r}", bool: f"{value}"}.get(
        type(value), f"{type(value).__name__} {value!r}"
    )


def strip(located: Located) -> Any:
    value = located.value
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def load_yaml(path: Path, display: str | None = None) -> Located:
    """Parse one YAML document; every problem is a ConfigError with file:line."""
    name = display or str(path)
    return parse_yaml(read_config_text(path, name), name)


def read_config_text(path: Path, name: str, limit: int = MAX_BYTES,
                     kind: str = "a YAML file") -> str:
    """A regular file's UTF-8 text, refused unread when larger than `limit` bytes.

    /dev/zero, a FIFO or a folder is refused by its type; a file whose size the kernel
    does not report (procfs) is still read no further than limit + 1 bytes.
    """
    # `--matrix /dev/zero` is shown as zero in file:line messages; say where it is, too.
    shown = f"{name} ({path})" if name == path.name and name != str(path) else name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
    except FileNotFoundError:
        raise ConfigError(f"{name}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{shown}: not a regular file", tip=f"name {kind}")
        if info.st_size > limit:
            raise ConfigError(f"{shown}: {info.st_size} bytes is larger than the {_size(limit)}"
                              f" a configuration file may be", tip="is this the right file?")
        data = b""
        while len(data) <= limit and (chunk := os.read(fd, limit + 1 - len(data))):
            data += chunk
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ConfigError(f"{shown}: larger than the {_size(limit)} a configuration file may be")
    try:
        # Universal newlines, as Path.read_text gives: a fragment keeps no stray \r.
        return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{name}:{line}: not UTF-8 text ({exc.reason})") from None


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit >> 10} KiB"


def parse_yaml(text: str, name: str) -> Located:
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:  # a control character, checked before parsing
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise ConfigError(f"{name}:{line}: not YAML text: {exc.reason}"
                          f" ({describe_char(char)})") from None
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        context = f"{exc.context}, " if exc.context and exc.problem else ""
        if context and exc.context_mark and exc.context_mark.line + 1 != line:
            # An unclosed quote or bracket is noticed far from where it was opened.
            context = f"{exc.context} (line {exc.context_mark.line + 1}), "
        tip = "YAML indents with spaces, never tabs" if "'\\t'" in str(exc.problem) else None
        raise ConfigError(f"{name}:{line}: YAML syntax error: {context}{exc.problem or exc}",
                          tip=tip) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}:1: YAML error: {exc}") from None
    except RecursionError:
        line = loader.get_mark().line + 1
        raise ConfigError(f"{name}:{line}: nested too deeply for a configuration file") from None
    finally:
        loader.dispose()
    if node is None:
        raise ConfigError(f"{name}:1: the document is empty", tip="see matrix.yaml in the repo")
    return _Builder(name, loader).build(node, "")


def _number_problem(node: yaml.Node) -> str | None:
    """Why an unquoted number is refused: YAML 1.1 reads `1:30` as 90 and `0700` as 448
    (where a reader expects 1:30 or 700), and a 5000-digit integer is not a setting."""
    tag, text = node.tag, str(node.value)
    if tag not in (INT_TAG, FLOAT_TAG):
        return None
    if ":" in text:
        return (f"{text} is a YAML 1.1 base-60 number (it would read as"
                f" {_sexagesimal(text)}); write the value in plain decimal")
    digits = text.lstrip("+-").replace("_", "")
    if tag == INT_TAG and len(digits) > 1 and digits[0] == "0" and digits[1:2] not in ("x", "b"):
        return f"{text} has a leading zero, which YAML 1.1 reads as octal; write it without"
    if len(digits) > MAX_NUMBER_CHARS:
        return (f"a number of {len(digits)} characters is out of range (at most"
                f" {MAX_NUMBER_CHARS})")
    if tag == INT_TAG and digits.isdigit() and int(digits) > MAX_INT:
        return f"{text[:40]} is out of range (at most 2**63-1)"
    return None


def _sexagesimal(text: str) -> str:
    try:
        total = 0.0
        for part in text.lstrip("+-").split(":"):
            total = total * 60 + float(part.replace("_", ""))
        return f"{total:g}"
    except ValueError:
        return "something else"


class _Builder:
    def __init__(self, name: str, loader: yaml.SafeLoader) -> None:
        self.name = name
        self.loader = loader
        self.visited = 0
        self.open: set[int] = set()  # nodes being built: an alias to one of them is a cycle

    def build(self, node: yaml.Node, path: str, depth: int = 0) -> Located:
        self.visited += 1
        line = node.start_mark.line + 1
        if self.visited > MAX_NODES:
            raise ConfigError(
                f"{self.name}:{line} ({path or 'document'}): the document expands to more than"
                f" {MAX_NODES} values through aliases (an alias bomb?); write it out plainly"
            )
        if depth > MAX_DEPTH:
            raise ConfigError(f"{self.name}:{line} ({path}): nested more than {MAX_DEPTH} levels")
        if isinstance(node, yaml.CollectionNode):
            if id(node) in self.open:
                raise ConfigError(f"{self.name}:{line} ({path or 'document'}): an alias refers to"
                                  f" a value that contains it (a recursive alias)")
            self.open.add(id(node))
            try:
                if isinstance(node, yaml.MappingNode):
                    return self._mapping(node, path, line, depth)
                items = [self.build(child, f"{path}[{i}]", depth + 1)
                         for i, child in enumerate(node.value)]
                return Located(items, self.name, line, path)
            finally:
                self.open.discard(id(node))
        problem = _number_problem(node)
        if problem:
            raise ConfigError(f"{self.name}:{line} ({path or 'document'}): {problem}",
                              tip="quote it if it is text; write numbers in plain decimal")
        try:
            value = self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            raise ConfigError(f"{self.name}:{line} ({path}): bad value: {exc}") from None
        return Located(value, self.name, line, path, text=node.value)

    def _mapping(self, node: yaml.MappingNode, path: str, line: int, depth: int) -> Located:
        if any(key.tag == "tag:yaml.org,2002:merge" for key, _ in node.value):
            raise ConfigError(f"{self.name}:{line} ({path}): merge keys (<<) are not supported")
        result: dict[str, Located] = {}
        key_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            key = self.build(key_node, path, depth + 1).value
            if not isinstance(key, str):
                raise ConfigError(
                    f"{self.name}:{key_line} ({path or 'document'}): keys must be strings,"
                    f" got {type_name(key)}; quote it"
                )
            child_path = f"{path}.{key}" if path else key
            if key in result:
                raise ConfigError(
                    f"{self.name}:{key_line} ({child_path}): duplicate key '{key}'"
                    f" (first at line {key_lines[key]})"
                )
            key_lines[key] = key_line
            result[key] = self.build(value_node, child_path, depth + 1)
        return Located(result, self.name, line, path, key_lines)

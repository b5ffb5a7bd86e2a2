"""Import rules between the layers, read from the source (ast), so a new import that breaks one
fails here rather than in a review."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO

PACKAGE = REPO / "src" / "torchstack"
SUITE = REPO / "checks"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, package: str) -> set[str]:
    """Absolute names of every module `path` imports (relative imports resolved)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def host_modules() -> dict[str, Path]:
    """torchstack's own modules (not the suite behind the checks link, not the templates)."""
    return {module_name(p): p for p in PACKAGE.rglob("*.py")
            if not {"checks", "templates", "schema"} & set(p.relative_to(PACKAGE).parts)}


def package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def closure(start: str, modules: dict[str, Path]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in modules:
            continue
        seen.add(name)
        todo += imports(modules[name], package_of(name, modules[name]))
    return seen | {i for n in seen for i in imports(modules[n], package_of(n, modules[n]))}


def test_the_import_reader_sees_relative_and_absolute_imports(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("import docker\nfrom ..result import Report\nfrom . import PACKAGE\n",
                      encoding="utf-8")
    assert imports(sample, "checks.suite") == {
        "docker", "checks.result", "checks.result.Report", "checks.suite", "checks.suite.PACKAGE"}


# The flow, lowest first (DESIGN.md). A module may import its own room and any room of a lower
# rank; rooms of equal rank are siblings and never import each other.
RANKS: dict[str, int] = {
    "errors": 0, "names": 0, "signals": 1, "workspace": 1,
    "config": 2, "backend": 3, "lock": 4, "render": 5, "resolve": 6,
    "build": 7, "check": 7, "release": 7, "cluster": 8,
    "progress": 9, "settings": 9, "api": 10, "commands": 11, "cli": 12, "entry": 13, "__main__": 14,
}
TOP_LEVEL_MODULES_MAX = 10


def room_of(module: str) -> str | None:
    """torchstack.config.matrix -> "config"; None for what is not torchstack's own."""
    parts = module.split(".")
    if parts[0] != "torchstack" or len(parts) < 2 or parts[1] in {"checks", "__version__"}:
        return None
    return parts[1]


def backward_imports(modules: dict[str, Path]) -> set[tuple[str, str]]:
    """(importer, imported) pairs that break the order."""
    found = set()
    for name, path in modules.items():
        own = room_of(name)
        if own is None:
            continue
        for imported in imports(path, package_of(name, path)):
            other = room_of(imported)
            if other is None or other == own or other not in RANKS:
                continue
            if RANKS[other] >= RANKS[own]:
                found.add((name, imported))
    return found


def test_every_room_has_a_rank() -> None:
    rooms = {room_of(name) for name in host_modules()} - {None, "__init__"}
    assert rooms <= set(RANKS), rooms - set(RANKS)


def test_no_room_imports_a_later_or_sibling_room() -> None:
    assert backward_imports(host_modules()) == set()


def test_the_order_check_catches_one_backward_import(tmp_path: Path) -> None:
    """The rule is live: a single added import from config into resolve fails it."""
    modules = host_modules()
    bad = tmp_path / "matrix.py"
    bad.write_text(modules["torchstack.config.matrix"].read_text(encoding="utf-8")
                   + "\nfrom torchstack.resolve.state import resolve\n", encoding="utf-8")
    sibling = tmp_path / "stage.py"
    sibling.write_text("from torchstack.release.journal import Journal\n", encoding="utf-8")
    assert backward_imports({**modules, "torchstack.config.matrix": bad}) == {
        ("torchstack.config.matrix", "torchstack.resolve.state"),
        ("torchstack.config.matrix", "torchstack.resolve.state.resolve")}
    assert ("torchstack.check.stage", "torchstack.release.journal") in backward_imports(
        {**modules, "torchstack.check.stage": sibling})


def test_the_package_top_holds_at_most_ten_modules() -> None:
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert len(top) <= TOP_LEVEL_MODULES_MAX, top


def test_nothing_below_commands_imports_commands() -> None:
    offenders = {name for name, path in host_modules().items()
                 if not name.startswith(("torchstack.commands", "torchstack.cli"))
                 and any(i.startswith("torchstack.commands")
                         for i in imports(path, package_of(name, path)))}
    assert offenders == set()


@pytest.mark.parametrize("writer", ["torchstack.check.report", "torchstack.resolve.outcome"])
def test_the_report_writer_reaches_no_docker_code(writer: str) -> None:
    reached = closure(writer, host_modules())
    docker = {name for name in reached
              if name.split(".")[0] == "docker" or name.startswith("torchstack.backend")}
    assert docker == set(), docker


def test_the_host_imports_the_suite_only_as_torchstack_checks() -> None:
    offenders = {name for name, path in host_modules().items()
                 if any(i.split(".")[0] == "checks" for i in imports(path, package_of(name, path)))}
    assert offenders == set()


def test_the_suite_never_imports_torchstack() -> None:
    for path in SUITE.rglob("*.py"):
        package = ".".join(("checks", *path.relative_to(SUITE).parent.parts))
        assert not any(i.split(".")[0] == "torchstack" for i in imports(path, package)), path


def suite_graph() -> dict[str, set[str]]:
    """checks' modules -> the checks modules each imports (module-level or not)."""
    modules = {".".join(("checks", *p.relative_to(SUITE).with_suffix("").parts)).removesuffix(
        ".__init__"): p for p in SUITE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = {i for i in imports(path, package) if i in modules and i != name}
    return graph


def cycle_in(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path, or None (depth-first search with colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    return next((c for n in sorted(graph) if n not in state and (c := visit(n))), None)


def test_the_suite_has_no_import_cycle() -> None:
    assert cycle_in(suite_graph()) is None


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = suite_graph()
    graph["checks.expect"] = graph["checks.expect"] | {"checks.registry"}  # the old deferred import
    found = cycle_in(graph)
    assert found is not None and found[0] == found[-1] and "checks.registry" in found


def test_plan_json_runs_without_the_docker_sdk(tmp_path: Path) -> None:
    """A pure verb loads no Docker code: `docker` raising on import does not stop it."""
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "__init__.py").write_text(
        "raise ImportError('the docker SDK must not be imported by plan')\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO / "src")])}
    done = subprocess.run([sys.executable, "-m", "torchstack", "plan", "--json"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["include"][0]["id"].startswith("torch")
    broken = subprocess.run([sys.executable, "-m", "torchstack", "build", "--help"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert "the docker SDK must not be imported" in broken.stderr  # the stand-in is live


# `Any` lines across the host package (the suite, stdlib + torch, is counted apart): JSON, TOML
# and the Engine's answers are typed (TypedDicts, workspace.json_types) or narrowed from
# `object`. The same count as `grep -rn '\bAny\b' src/torchstack | grep -v checks/`.
ANY_LINES_MAX = 20
ANY = re.compile(r"\bAny\b")


def any_lines(files: dict[str, str]) -> list[str]:
    """`path:line` of each line naming `Any`."""
    return [f"{path}:{n}" for path, text in sorted(files.items())
            for n, line in enumerate(text.splitlines(), 1) if ANY.search(line)]


def host_sources(*, outside: tuple[str, ...] = ()) -> dict[str, str]:
    """Each .py under src/torchstack but the suite (and `outside`: folders, files), by path."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if "checks/" in f"torchstack/{relative}" or relative.startswith(outside):
            continue
        found[relative] = path.read_text(encoding="utf-8")
    return found


def test_any_stays_under_its_cap() -> None:
    lines = any_lines(host_sources())
    assert len(lines) <= ANY_LINES_MAX, "\n".join(lines)


def test_the_any_count_sees_annotations_not_words() -> None:
    sample = {"m.py": "from typing import Any\nx: dict[str, Any] = {}\n# Anything goes\n"
                      "def f(v: Any) -> list[Any]: ...\nmany = 1\n"}
    assert any_lines(sample) == ["m.py:1", "m.py:2", "m.py:4"]


# Settings (settings.py) reads the environment once, for the CLI (commands/, cli.py, entry.py)
# and the API; every stage gets it handed down.
ENVIRON_READERS = ("commands/", "cli.py", "entry.py", "settings.py")
READS_ENVIRON = re.compile(r"\bos\.(?:environ|getenv|environb|putenv)\b"
                           r"|\bfrom os import [^\n]*\b(?:environ|getenv)\b")


def environ_reads(files: dict[str, str]) -> list[str]:
    return [f"{path}:{n}: {line.strip()}" for path, text in sorted(files.items())
            for n, line in enumerate(text.splitlines(), 1) if READS_ENVIRON.search(line)]


def test_only_settings_and_the_cli_read_the_environment() -> None:
    assert environ_reads(host_sources(outside=ENVIRON_READERS)) == []


def test_the_environment_check_sees_each_way_of_reading_it() -> None:
    sample = {"a.py": "import os\nx = os.environ.get('A')\n", "b.py": "y = os.getenv('B')\n",
              "c.py": "from os import getenv, path\n", "d.py": "environ: dict = {}\n"}
    assert [line.split(":")[0] for line in environ_reads(sample)] == ["a.py", "b.py", "c.py"]

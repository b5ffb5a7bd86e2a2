"""Random argument lists to every verb: an exit code from the README's table, never a traceback.

Each example runs `torchstack <verb> <args...>` in-process (cli.main) in a temporary copy of
the repository's matrix, with DOCKER_HOST at a closed port, an empty KUBECONFIG and every
proxy pointing at a closed port, so that no verb can do real work: what it can do is refuse
its arguments (2), find no engine (3), or finish what needs neither (plan, render, bake).
Flags are read from the parser itself, so a new option is fuzzed without editing this file.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.paths import REPO
from torchstack.cli import build_parser, main

# The README's exit codes: ok, config, no engine, build, check, promote, index unreachable
# while locking, verify unsatisfied, interrupted.
EXIT_CODES = {0, 2, 3, 4, 5, 6, 7, 8, 130}
VALUES = [
    "", "-", "--", "*", "?", "x" * 300, "\n", "a\nb", "../..", "/dev/zero", "/dev/null", ".",
    "nope", "0", "-1", "1e309", "inf", "nan", "2", "10", "lots", "huge", "Bad NS!", "torch2.9.1-*",
    "torch2.9.1-cu128-py3.11-base", "{", "{cuda_tag}", "cu126=https://m/{cuda_tag",
    "pytorch=https://m/{cuda}", "pypi=https://m/simple", "a=b", "=", "matrix.yaml", "images",
    "layers", "out.json", "out-dir", "127.0.0.1:5000/torchstack", "HTTP://X", "$(id)", "'\"",
    "\x00", "bookworm", "gpu", "cpu", "auto", "required", "never",
]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def options_of(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Verb path (e.g. "base bootstrap") -> its option strings, from argparse itself."""
    found: dict[str, list[str]] = {}
    for action in parser._actions:  # argparse has no public API for this
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for path, options in options_of(sub).items():
                    found[f"{name} {path}".strip()] = options
    found.setdefault("", [])
    found[""] = found[""] + [s for a in parser._actions for s in a.option_strings
                             if s not in ("-h", "--help")]
    return dict(found)


PARSER_OPTIONS = options_of(build_parser())
TOP_OPTIONS = PARSER_OPTIONS.pop("")
VERBS = sorted(PARSER_OPTIONS)


@st.composite
def argument_lists(draw: st.DrawFn) -> list[str]:
    verb = draw(st.sampled_from(VERBS))
    options = PARSER_OPTIONS[verb] + ["--help"]
    words = st.one_of(st.sampled_from(options), st.sampled_from(VALUES),
                      st.text(max_size=8))
    before = draw(st.lists(st.sampled_from([*TOP_OPTIONS, *VALUES[:12]]), max_size=2))
    return [*before, *verb.split(), *draw(st.lists(words, max_size=6))]


@pytest.fixture(autouse=True)
def _no_docker() -> None:
    """Replaces conftest's guard: DOCKER_HOST is a closed port (set below), so no daemon is
    reached; the client may be created and must fail the way it does without an engine."""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-fuzz")
    shutil.copy(REPO / "matrix.yaml", root)
    shutil.copytree(REPO / "layers", root / "layers")
    shutil.copytree(REPO / "images", root / "images")
    (root / "kubeconfig").write_text("")
    return root


@pytest.fixture
def sandbox(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    closed = f"127.0.0.1:{closed_port()}"
    monkeypatch.chdir(project)
    monkeypatch.setenv("DOCKER_HOST", f"tcp://{closed}")
    monkeypatch.setenv("KUBECONFIG", str(project / "kubeconfig"))
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(proxy, f"http://{closed}")
    for name in ("NO_PROXY", "no_proxy", "TORCHSTACK_REGISTRY", "TORCHSTACK_MATRIX",
                 "TORCHSTACK_PIP_INDEX_URL", "TORCHSTACK_TORCH_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    yield project


def run(argv: list[str]) -> int:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            return main(argv)
        except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
            return exc.code if isinstance(exc.code, int) else 2


def test_every_verb_is_fuzzed() -> None:
    assert {"plan", "render", "build", "check", "promote", "k8s", "bake",
            "base bootstrap"} <= set(VERBS)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(argv=argument_lists())
def test_random_arguments_exit_with_a_code_from_the_table(sandbox: Path, argv: list[str]) -> None:
    code = run(argv)
    assert code in EXIT_CODES, (argv, code)


YAML_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                         st.sampled_from(VALUES), st.text(max_size=10))
YAML_DOCUMENTS = st.recursive(
    YAML_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(
                                ["os_bases", "flavors", "axes", "registry", "tags", "checks",
                                 "indexes", "include", "timeout_s", "shm_size"]),
                                st.text(max_size=6)), inner, max_size=5)),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(doc=YAML_DOCUMENTS, verb=st.sampled_from(["plan", "render", "bake", "k8s", "promote"]))
def test_random_yaml_through_the_cli(sandbox: Path, doc: object, verb: str) -> None:
    """The loader behind every verb: a random document is a config error (2), not a crash."""
    (sandbox / "random.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    code = run(["--matrix", "random.yaml", verb])
    assert code == 2, (doc, code)

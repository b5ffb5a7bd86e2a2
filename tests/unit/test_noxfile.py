"""noxfile.py passes each verb's options through (`VERB: OPTION...`) without listing them."""

from __future__ import annotations

import functools
import importlib.util
from types import ModuleType
from typing import Any

import pytest

from tests.paths import REPO


@functools.cache  # nox registers sessions on import: load the file once
def noxfile() -> ModuleType:
    spec = importlib.util.spec_from_file_location("noxfile_under_test", REPO / "noxfile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Session:
    """What _split reads of a nox session: posargs, and error() that stops the session."""

    def __init__(self, *posargs: str) -> None:
        self.posargs = list(posargs)

    def error(self, message: str) -> Any:
        raise SystemExit(message)


def test_the_selection_goes_to_every_verb_and_each_group_to_its_verb() -> None:
    split = noxfile()._split
    selection, options = split(Session("torch2.9.1-cu128-*", "--all", "build:", "--index",
                                       "pypi=https://mirror.example/simple", "--no-progress",
                                       "promote:", "--push", "--registry", "r.example/ts"),
                               ("build", "check", "promote"))
    assert selection == ["torch2.9.1-cu128-*", "--all"]
    assert options == {"build": ["--index", "pypi=https://mirror.example/simple",
                                 "--no-progress"],
                       "check": [], "promote": ["--push", "--registry", "r.example/ts"]}


def test_an_option_nox_never_heard_of_passes_through_unread() -> None:
    _, options = noxfile()._split(Session("check:", "--force"), ("check", "promote"))
    assert options["check"] == ["--force"]


def test_a_group_for_a_verb_the_session_does_not_run_is_refused() -> None:
    with pytest.raises(SystemExit, match=r"'build:': this session runs check, promote"):
        noxfile()._split(Session("x", "build:", "--no-progress"), ("check", "promote"))

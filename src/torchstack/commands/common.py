"""Arguments and helpers shared by several verbs."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias, TypeVar

from torchstack.config.matrix import load_matrix
from torchstack.config.model import Matrix
from torchstack.errors import ConfigError
from torchstack.progress import StageReporter
from torchstack.resolve.state import push_repository
from torchstack.settings import Settings

__all__ = ["Subparsers", "add_selection", "add_step_summary", "flag_type", "matrix_of",
           "push_repository", "stage_reporter"]
T = TypeVar("T")
# What each verb's `register` receives: the top parser's sub-parsers.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("globs", nargs="*", metavar="GLOB",
                        help="image ids to act on, shell-style globs (default: the default group)")
    parser.add_argument("--all", dest="everything", action="store_true",
                        help="every image of the matrix")


def matrix_of(args: argparse.Namespace) -> Matrix:
    return load_matrix(args.matrix)


def flag_type(parse: Callable[[str], T]) -> Callable[[str], T]:
    """argparse reports ArgumentTypeError as a usage error (exit 2); ConfigError would escape."""
    def convert(text: str) -> T:
        try:
            return parse(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(f"{exc.message}\ntip: {exc.tip}") from None
    return convert


def add_step_summary(settings: Settings, title: str, summary: Path) -> None:
    """Append a run's summary.md to the CI job summary (GitHub's $GITHUB_STEP_SUMMARY), if any."""
    if settings.step_summary is None or not summary.is_file():
        return
    with settings.step_summary.open("a", encoding="utf-8") as handle:
        handle.write(f"## {title}\n\n" + summary.read_text(encoding="utf-8") + "\n")


def stage_reporter(args: argparse.Namespace, verb: str) -> StageReporter:
    """The one progress view of a long verb: live on a terminal, folded on GitHub Actions."""
    return StageReporter(verb, github=args.settings.github_actions)

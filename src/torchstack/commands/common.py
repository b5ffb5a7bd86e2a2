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
           "push_repository", "split_train", "stage_reporter"]
T = TypeVar("T")
TRAIN_VERB = "k8s-train"  # the parser `k8s train` is routed to (see split_train)
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


def split_train(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """`[global options] k8s train ARGS -- COMMAND...` -> (argv for the `k8s-train` parser,
    COMMAND); any other line comes back unchanged with None. The command is split off here
    because argparse would read its options (`python -u train.py`) as torchstack's."""
    index = 0
    while index < len(argv) and argv[index].startswith("-"):
        index += 2 if argv[index] == "--matrix" else 1
    if argv[index:index + 2] != ["k8s", "train"]:
        return argv, None
    rest = argv[index + 2:]
    if "--" not in rest:
        return [*argv[:index], TRAIN_VERB, *rest], []
    cut = rest.index("--")
    return [*argv[:index], TRAIN_VERB, *rest[:cut]], rest[cut + 1:]

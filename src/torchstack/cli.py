"""`torchstack <verb>`: argument parsing, exit codes and error output.

Each verb lives in `torchstack.commands.<verb>` with `register(subparsers)` and `run(args)`.
Expected failures (TorchstackError) print `error:` and `tip:` lines and return their exit code;
nothing else reaches the user as a traceback except a genuine bug.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys
from pathlib import Path
from types import FrameType

from torchstack import __version__, commands
from torchstack.commands.common import TRAIN_VERB, split_train
from torchstack.errors import Interrupted, TorchstackError
from torchstack.settings import Settings

# Help lists verbs in flow order; any other module in torchstack.commands follows.
FLOW = ("plan", "lock", "render", "base", "build", "check", "promote", "k8s", "bake")
HELPERS = {"common", "signing"}  # modules of commands/ that are not verbs


def verbs() -> list[str]:
    found = {m.name for m in pkgutil.iter_modules(commands.__path__)} - HELPERS
    return [v for v in FLOW if v in found] + sorted(found - set(FLOW))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI, or (`only`) just the verb being run: a pure verb such as `plan` then
    imports none of the Docker code the other verbs need."""
    parser = argparse.ArgumentParser(
        prog="torchstack",
        description="Build, check and promote a matrix of layered PyTorch + CUDA images.",
    )
    parser.add_argument("--version", action="version", version=f"torchstack {__version__}")
    parser.add_argument(
        "--matrix", type=Path, default=None,
        help="the matrix file; layers/ and images/ sit beside it (default: ./matrix.yaml)",
    )
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb in verbs():
        if only not in (None, verb):
            continue
        module = importlib.import_module(f"torchstack.commands.{verb}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # `k8s train ... -- COMMAND`: a subcommand beside k8s's GLOB positional, routed by hand.
    routed, command = split_train(argv)
    # SIGTERM (a cancelled CI job) stops any verb the way Ctrl-C does, so containers and
    # half-done builds are cleaned up on the way out.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        # Inside the try: Ctrl-C while the verbs' modules load is exit 130 too.
        args = build_parser(invoked_verb(routed)).parse_args(routed)
        if command is not None:
            args.command = command
        args.settings = Settings.from_environ(os.environ)  # the one read of the environment
        args.matrix = args.matrix or args.settings.matrix
        result: int = args.run(args)
        return result
    except TorchstackError as exc:
        report_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        report_error(Interrupted("interrupted; work in flight was stopped and cleaned up"))
        return Interrupted.exit_code
    except BrokenPipeError:
        # Whoever read stdout left (`torchstack plan --json | head`): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def invoked_verb(argv: list[str]) -> str | None:
    """The verb `argv` runs, or None when it asks for help or names no known verb (then the
    full parser answers, listing every verb)."""
    words = iter(argv)
    for word in words:
        if word == "--matrix":
            next(words, None)
        elif not word.startswith("-"):
            word = "k8s" if word == TRAIN_VERB else word  # its parser is registered by k8s
            return word if word in verbs() else None
        elif not word.startswith("--matrix="):
            return None  # -h, --help, --version, or an unknown option: the full parser's answer
    return None


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def report_error(exc: TorchstackError) -> None:
    print(f"error: {exc.message}", file=sys.stderr)
    if exc.tip:
        print(f"tip: {exc.tip}", file=sys.stderr)

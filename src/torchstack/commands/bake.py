"""`torchstack bake`: the matrix as docker-bake.json for `docker buildx bake`."""

from __future__ import annotations

import argparse
from pathlib import Path

from torchstack.build.bake import bake_file, to_json
from torchstack.commands.common import Subparsers, add_selection, matrix_of, push_repository
from torchstack.errors import ConfigError
from torchstack.resolve.state import resolve
from torchstack.workspace.files import write_text


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "bake", help="export the matrix as docker-bake.json for `docker buildx bake`",
        description="One bake target per image (ancestors included), children chained to their"
                    " parent target through a named context. Group `default`: the selected"
                    " images (the matrix's default group unless GLOBs are given); `all`: every"
                    " target in the file.")
    add_selection(parser)
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help="write FILE (e.g. docker-bake.json) instead of printing to stdout")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    matrix = matrix_of(args)
    resolved = resolve(matrix, args.globs, everything=args.everything)  # no Docker Engine
    default_ids = [i.id for i in matrix.select(args.globs)]
    text = to_json(bake_file(resolved, push_repository(matrix, args.settings.environ), default_ids))
    if args.out is None:
        print(text, end="")
        return 0
    _write_out(args.out, text)
    targets = len(resolved.states)
    print(f"wrote {args.out} ({targets} targets); build with: docker buildx bake -f {args.out}")
    return 0


def _write_out(out: Path, text: str) -> None:
    """--out is the user's choice of path; only what cannot be written there is refused."""
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a directory", tip=f"name a file, e.g. {out}/"
                                                              "docker-bake.json")
    try:
        write_text(out.parent, out, text)
    except ConfigError as exc:
        raise ConfigError(f"--out {out}: cannot write it ({exc.message})",
                          tip=exc.tip or "name a file in a folder you can write to") from None

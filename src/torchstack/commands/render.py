"""`torchstack render [--check]`: write images/<id>/ or verify it is up to date."""

from __future__ import annotations

import argparse
from typing import Any

from torchstack.commands.common import matrix_of
from torchstack.errors import ConfigError
from torchstack.render import remove_orphans, stale_files, write_images


def register(sub: Any) -> None:
    parser = sub.add_parser("render", help="write images/<id>/Dockerfile for every image")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; fail (exit 2) listing the files that are stale")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    matrix = matrix_of(args)
    if args.check:
        stale = stale_files(matrix)
        if stale:
            listing = "\n  ".join(stale)
            raise ConfigError(f"images/ is stale ({len(stale)} files):\n  {listing}",
                              tip="run `torchstack render` (or `nox -s render`) and commit images/")
        print(f"images/ is up to date ({len(matrix.images)} images)")
        return 0
    changed = write_images(matrix, list(matrix.images))
    removed = remove_orphans(matrix)
    for path in changed:
        print(f"wrote   {path.relative_to(matrix.root)}")
    for path in removed:
        print(f"removed {path.relative_to(matrix.root)}")
    print(f"{len(matrix.images)} images rendered, {len(changed)} files changed,"
          f" {len(removed)} removed")
    return 0

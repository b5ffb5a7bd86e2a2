"""`torchstack render [--check]`: write images/<id>/ or verify it (and each lock) is up to date."""

from __future__ import annotations

import argparse

from torchstack.commands.common import Subparsers, matrix_of
from torchstack.config.model import Matrix
from torchstack.errors import ConfigError
from torchstack.lock.pylock import check_locks, lock_path
from torchstack.render.context import remove_orphans, stale_files, write_images
from torchstack.workspace.paths import shown


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("render", help="write images/<id>/Dockerfile for every image")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; fail (exit 2) listing the files that are stale,"
                             " locks included")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    matrix = matrix_of(args)
    if args.check:
        return _check(matrix)
    changed = write_images(matrix, list(matrix.images))
    orphans = remove_orphans(matrix)
    for path in changed:
        print(f"wrote   {path.relative_to(matrix.root)}")
    for path in orphans.removed:
        print(f"removed {path.relative_to(matrix.root)}")
    for path in orphans.kept:
        print(f"kept    {path.relative_to(matrix.root)}/: no image has this id, but it holds a"
              f" lock, which render never deletes; delete the folder once it is not needed")
    kept = f", {len(orphans.kept)} kept (they hold locks)" if orphans.kept else ""
    print(f"{len(matrix.images)} images rendered, {len(changed)} files changed,"
          f" {len(orphans.removed)} removed{kept}")
    return 0


def _check(matrix: Matrix) -> int:
    # Locks are written by `torchstack lock`, not rendered: they are never "extra" files.
    locks = {f"extra:   {shown(matrix.root, lock_path(matrix, s))}" for s in matrix.images}
    rendered = [line for line in stale_files(matrix) if line not in locks]
    stale_locks, unlocked = check_locks(matrix)
    for line in unlocked:
        print(line)
    stale = rendered + stale_locks
    if stale:
        listing = "\n  ".join(stale)
        tips = ["run `torchstack render` (or `nox -s render`) and commit images/"] if rendered \
            else []
        if stale_locks:
            tips.insert(0, "run `torchstack lock` for the stale locks (then render), and commit"
                           " images/")
        raise ConfigError(f"images/ is stale ({len(stale)} files):\n  {listing}",
                          tip="; ".join(tips))
    print(f"images/ is up to date ({len(matrix.images)} images, {len(unlocked)} unlocked)")
    return 0

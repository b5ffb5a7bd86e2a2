"""`torchstack lock [GLOB...] [--upgrade | --upgrade-package NAME]`: write each pylock.toml."""

from __future__ import annotations

import argparse
import sys

from torchstack.commands.common import Subparsers, add_selection, matrix_of, stage_reporter
from torchstack.config.inputs import PIP_INDEX_ENV, TORCH_INDEX_ENV, resolve_inputs
from torchstack.errors import ConfigError, IndexUnreachableError, TorchstackError
from torchstack.lock.uv import LockOutcome, LockRequest, find_uv, images_to_lock, lock_images


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "lock", help="resolve each image's packages with hashes into images/<id>/pylock.toml",
        description="Resolve every distribution each image installs (uv, wheels only, for the"
        " image's Python on x86_64 manylinux_2_28), parents first: a child is resolved with its"
        " parent's lock as constraints. Versions already locked are kept while they satisfy the"
        " pins. Ancestors whose lock is missing or stale are locked too.")
    add_selection(parser)
    upgrade = parser.add_mutually_exclusive_group()
    upgrade.add_argument("--upgrade", action="store_true",
                         help="resolve afresh: newest versions the pins allow")
    upgrade.add_argument("--upgrade-package", action="append", default=[], metavar="NAME",
                         help="allow a newer version of NAME only (repeatable)")
    parser.add_argument(
        "--index", action="append", default=[], metavar="KEY=URL",
        help="package index override, as for build: pypi=URL, cu126=URL or pytorch=URL;"
        f" env: {PIP_INDEX_ENV}, {TORCH_INDEX_ENV}")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    matrix = matrix_of(args)
    selected = matrix.select(args.globs, everything=args.everything)
    request = LockRequest(upgrade=args.upgrade, upgrade_packages=tuple(args.upgrade_package),
                          inputs=resolve_inputs(None, args.index, args.settings.environ),
                          environ=args.settings.environ)
    uv = find_uv()
    images = images_to_lock(matrix, selected)
    progress = stage_reporter(args, "lock")
    progress.line(f"lock {len(images)} images with uv {uv.version}")

    def done(outcome: LockOutcome) -> None:
        if outcome.error is not None:
            _error(outcome.error)
            progress.finish(outcome.image_id, "failed", ok=False)
            return
        state = "locked" if outcome.changed else "unchanged"
        progress.finish(outcome.image_id, f"{state} {outcome.path} ({outcome.dists}"
                                          f" distributions, {outcome.seconds:.1f} s)")

    outcomes = lock_images(matrix, images, request, uv, on_done=done)
    failed = [o for o in outcomes if o.error is not None]
    changed = sum(o.changed for o in outcomes)
    progress.end(f"{len(outcomes) - len(failed)} locked ({changed} changed),"
                 f" {len(failed)} failed")
    if not failed:
        return 0
    ids = ", ".join(o.image_id for o in failed)
    # A wrong pin is the user's to fix (2); an index out of reach is the machine's (7).
    if any(not isinstance(o.error, IndexUnreachableError) for o in failed):
        raise ConfigError(f"{len(failed)} images could not be locked: {ids}",
                          tip="see each image's error above")
    raise IndexUnreachableError(f"{len(failed)} images could not be locked: {ids}",
                                tip="lock them where their index is reachable, or through a"
                                    " mirror with --index; the other images are locked")


def _error(error: TorchstackError) -> None:
    print(f"error: {error.message}", file=sys.stderr, flush=True)
    if error.tip:
        print(f"tip: {error.tip}", file=sys.stderr, flush=True)

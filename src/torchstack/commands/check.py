"""`torchstack check [GLOB] --gpu required|auto|off`: run the suite inside each built image."""

from __future__ import annotations

import argparse

from torchstack import api
from torchstack.commands.common import (
    Subparsers,
    add_selection,
    add_step_summary,
    matrix_of,
    stage_reporter,
)
from torchstack.commands.signing import add_signing_key, say_attached, signing_key_of
from torchstack.resolve.outcome import ImageCheck
from torchstack.resolve.state import ImageState


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("check", help="run the check suite inside each built image")
    add_selection(parser)
    parser.add_argument("--gpu", choices=("required", "auto", "off"), default="auto",
                        help="required: no GPU fails (GPU runners); auto: GPU checks run when a"
                             " GPU is there, else skip; off: never touch a GPU (default: auto)")
    parser.add_argument("--force", action="store_true",
                        help="check again even where a passing record exists")
    add_signing_key(parser, "each verdict")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    matrix = matrix_of(args)
    key = signing_key_of(args)

    progress = stage_reporter(args, "check")

    def starting(state: ImageState) -> None:
        progress.start(state.id, f"({str(state.local_image_id)[:19]}) --gpu {args.gpu}")

    def finished(result: ImageCheck) -> None:
        first = result.message.splitlines()[0] if result.message else ""
        progress.finish(result.spec.id, f"{result.status.upper()} {first}", ok=result.ok)

    outcome = api.check(matrix, args.globs, everything=args.everything, gpu=args.gpu,
                        force=args.force, on_start=starting, on_result=finished,
                        signing_key=key, on_attach=say_attached, settings=args.settings)
    failed = sum(not r.ok for r in outcome.results)
    progress.end(f"{len(outcome.results)} images checked, {failed} not passing")
    for path in outcome.reports:
        print(f"wrote {path.relative_to(matrix.root)}")
    add_step_summary(args.settings, "torchstack check", outcome.run.path / "summary.md")
    error = outcome.error(matrix.root)
    if error is not None:
        raise error
    return 0

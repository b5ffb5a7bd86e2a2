"""`torchstack check [GLOB] --gpu required|auto|off`: run the suite inside each built image."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from torchstack import api
from torchstack.commands.common import (
    add_selection,
    add_signing_key,
    matrix_of,
    say_attached,
    signing_key_of,
)
from torchstack.resolve.outcome import ImageCheck
from torchstack.resolve.state import ImageState


def register(sub: Any) -> None:
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

    def starting(state: ImageState) -> None:
        print(f"check {state.id} ({str(state.local_image_id)[:19]}) --gpu {args.gpu} ...",
              flush=True)

    outcome = api.check(matrix, args.globs, everything=args.everything, gpu=args.gpu,
                        force=args.force, on_start=starting, on_result=_say,
                        signing_key=key, on_attach=say_attached)
    for path in outcome.reports:
        print(f"wrote {path.relative_to(matrix.root)}")
    error = outcome.error(matrix.root)
    if error is not None:
        raise error
    return 0


def _say(result: ImageCheck) -> None:
    first = result.message.splitlines()[0] if result.message else ""
    stream = sys.stdout if result.ok else sys.stderr
    print(f"  {result.status.upper():<9} {result.spec.id:<34} {result.duration_s:5.1f}s  {first}",
          file=stream, flush=True)

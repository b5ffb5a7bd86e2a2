"""`torchstack build [GLOB...]`: build the selected images and their missing ancestors."""

from __future__ import annotations

import argparse
from pathlib import Path

from torchstack import api
from torchstack.commands.common import Subparsers, add_selection, matrix_of
from torchstack.config.inputs import CA_ENV, PIP_INDEX_ENV, TORCH_INDEX_ENV
from torchstack.progress import make_reporter


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "build", help="build the selected images (parents first) with BuildKit",
        description="Build images FROM their parent's exact image ID. An image whose input hash"
        " already labels a local image is reused, not rebuilt. Logs and build.json go to"
        " .torchstack/runs/<time>/ beside the matrix.")
    add_selection(parser)
    parser.add_argument(
        "--ca-bundle", type=Path, metavar="FILE",
        help=f"CA bundle for pip inside the build (default: the first of {', '.join(CA_ENV)}"
        " that names a file); it never reaches the image")
    parser.add_argument(
        "--index", action="append", default=[], metavar="KEY=URL",
        help="package index override (passed to BuildKit as a secret), repeatable: pypi=URL"
        " (all PyPI packages), cu126=URL (torch"
        f" wheels of one CUDA variant), pytorch=URL (all PyTorch-index variants; may contain"
        f" {{cuda_tag}}); env: {PIP_INDEX_ENV}, {TORCH_INDEX_ENV}")
    parser.add_argument("--no-progress", action="store_true",
                        help="plain progress lines instead of the live view")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    outcome = api.build(matrix_of(args), args.globs, everything=args.everything,
                        ca_bundle=args.ca_bundle, indexes=args.index,
                        reporter=make_reporter(live=not args.no_progress,
                                                       github=args.settings.github_actions),
                        settings=args.settings)
    error = outcome.error()
    if error is not None:
        raise error
    return 0

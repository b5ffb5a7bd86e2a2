"""`torchstack build [GLOB...]`: build the selected images and their missing ancestors."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from torchstack.build import Builder
from torchstack.buildinputs import CA_ENV, PIP_INDEX_ENV, TORCH_INDEX_ENV, resolve_inputs
from torchstack.buildkit import find_cli
from torchstack.commands.common import add_selection, matrix_of
from torchstack.docker_backend import DockerBackend
from torchstack.errors import BuildError
from torchstack.plan import make_plan
from torchstack.progress import make_reporter
from torchstack.runs import create_run


def register(sub: Any) -> None:
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
        help="package index override (passed to BuildKit as a secret), repeatable: pypi=URL (all PyPI packages), cu126=URL (torch"
        f" wheels of one CUDA variant), pytorch=URL (all PyTorch-index variants; may contain"
        f" {{cuda_tag}}); env: {PIP_INDEX_ENV}, {TORCH_INDEX_ENV}")
    parser.add_argument("--no-progress", action="store_true",
                        help="plain progress lines instead of the live view")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    matrix = matrix_of(args)
    plan = make_plan(matrix, args.globs, everything=args.everything)
    inputs = resolve_inputs(args.ca_bundle, args.index, os.environ)
    backend = DockerBackend.connect()
    try:
        buildkit = find_cli(os.environ)
        run_dir = create_run(matrix.root)
        reporter = make_reporter(live=not args.no_progress)
        summary = Builder(matrix, backend, buildkit, inputs, run_dir, reporter).build(plan)
    finally:
        backend.close()
    if summary.failed:
        failed = "; ".join(f"{r.id} ({r.failed_step or r.reason})" for r in summary.failed)
        raise BuildError(f"{len(summary.failed)} of {len(summary.results)} images failed to"
                         f" build: {failed}",
                         tip=f"see the failures above; full logs in {run_dir.path}")
    return 0

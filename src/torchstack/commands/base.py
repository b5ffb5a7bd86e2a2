"""`torchstack base bootstrap [OS...]`: build OS base images locally, without a registry."""

from __future__ import annotations

import argparse

from torchstack.backend.docker import DockerBackend
from torchstack.build.bootstrap import bases_to_bootstrap, bootstrap
from torchstack.commands.common import Subparsers, matrix_of, stage_reporter
from torchstack.errors import TorchstackError


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("base", help="OS base images: bootstrap them without a registry")
    actions = parser.add_subparsers(dest="base_action", required=True, metavar="ACTION")
    boot = actions.add_parser(
        "bootstrap", help="debootstrap a minimal root filesystem and docker-import it",
        description="Build each OS base image with `debootstrap --variant=minbase` and import it"
        " under the exact name the matrix expects (os_bases.<os>.image). Needs root, debootstrap"
        " and the suite's mirror. An image that already exists is kept unless --force.")
    boot.add_argument("os", nargs="*", metavar="OS",
                      help="OS bases from matrix.yaml (default: those the images use)")
    boot.add_argument("--force", action="store_true", help="rebuild even if the image exists")
    boot.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    matrix = matrix_of(args)
    bases = bases_to_bootstrap(matrix, args.os)
    progress = stage_reporter(args, "bootstrap")
    backend = DockerBackend.connect()
    try:
        for os_base in bases:
            progress.start(os_base.name)
            try:
                result = bootstrap(backend, os_base, force=args.force, announce=progress.line)
            except TorchstackError:
                progress.finish(os_base.name, "failed", ok=False)
                raise
            short = result.image_id.removeprefix("sha256:")[:12]
            if result.created:
                size = backend.image_size(result.image_id) / 1e6
                progress.finish(os_base.name, f"imported {result.image} ({short}, {size:.0f} MB)")
            else:
                progress.finish(os_base.name, f"{result.image} exists ({short});"
                                              " kept (--force rebuilds)")
    finally:
        backend.close()
    progress.end(f"{len(bases)} OS bases")
    return 0

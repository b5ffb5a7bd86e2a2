"""`torchstack k8s`: Kubernetes manifests that run an image's checks on a GPU cluster."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from torchstack.commands.common import add_selection, matrix_of, push_repository
from torchstack.errors import ConfigError
from torchstack.k8s import (
    ClusterOptions,
    parse_node_selector,
    parse_toleration,
    render_manifests,
    to_yaml,
)


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "k8s", help="write Kubernetes manifests that run the check suite on a GPU cluster",
        description="Print (or write to --out) a ConfigMap and a Job per image; with --nodes > 1"
                    " an Indexed Job and a headless Service that run torchrun across nodes.")
    add_selection(parser)
    parser.add_argument("--nodes", type=_positive, default=1, metavar="N",
                        help="nodes for a multi-node NCCL run (default: 1, the plain suite)")
    parser.add_argument("--gpus-per-node", type=_positive, default=1, metavar="G",
                        help="nvidia.com/gpu requested per pod (default: 1)")
    parser.add_argument("--namespace", default="default", metavar="NS")
    parser.add_argument("--node-selector", action="append", default=[], metavar="KEY=VALUE",
                        type=_argument(parse_node_selector), help="repeatable")
    parser.add_argument("--toleration", action="append", default=[],
                        metavar="KEY[=VALUE]:EFFECT", type=_argument(parse_toleration),
                        help="repeatable; nvidia.com/gpu:NoSchedule is always tolerated")
    parser.add_argument("--image-ref", metavar="REF",
                        help="the image to run, e.g. a digest (default: the release tag under"
                             " the push registry); only with a single image")
    parser.add_argument("--cpu", metavar="CORES", help="CPU per pod (default: 4 per GPU)")
    parser.add_argument("--memory", metavar="QTY",
                        help="memory per pod (default: 16Gi per GPU plus /dev/shm)")
    parser.add_argument("--shm-size", metavar="QTY",
                        help="/dev/shm size (default: checks.shm_size of matrix.yaml)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="write DIR/<image id>.yaml instead of printing to stdout")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    matrix = matrix_of(args)
    images = matrix.select(args.globs, everything=args.everything)
    if args.image_ref and len(images) != 1:
        raise ConfigError(f"--image-ref names one image but {len(images)} are selected",
                          tip="name exactly one image id")
    options = ClusterOptions(
        nodes=args.nodes, gpus_per_node=args.gpus_per_node, namespace=args.namespace,
        node_selector=tuple(args.node_selector), tolerations=tuple(args.toleration),
        image_ref=args.image_ref, cpu=args.cpu, memory=args.memory, shm_size=args.shm_size,
    )
    repository = push_repository(matrix)
    rendered = {i.id: to_yaml(render_manifests(i, matrix, repository, options)) for i in images}
    if args.out is None:
        print("".join(rendered.values()), end="")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for image_id, text in rendered.items():
        path = args.out / f"{image_id}.yaml"
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


T = TypeVar("T")


def _argument(parse: Callable[[str], T]) -> Callable[[str], T]:
    """argparse reports ArgumentTypeError as a usage error (exit 2); ConfigError would escape."""
    def convert(text: str) -> T:
        try:
            return parse(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(f"{exc.message}; {exc.tip}") from None
    return convert


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value

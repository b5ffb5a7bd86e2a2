"""`torchstack k8s`: Kubernetes manifests that run an image's checks on a GPU cluster.

Each Job runs its image pinned by digest: the candidate tag's digest in the push registry
(which needs this host's build and Docker), of the form `--compression` asks for (gzip, or zstd
for containerd >= 1.5 nodes; docs/registry.md), or `--image-ref REPO@sha256:…`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from torchstack import api
from torchstack.api import ImageState
from torchstack.backend.identity import Content
from torchstack.cluster.candidates import parse_pinned, resolve_candidate
from torchstack.cluster.manifests import (
    ClusterOptions,
    parse_namespace,
    parse_node_selector,
    parse_quantity,
    parse_toleration,
    render_manifests,
    to_yaml,
)
from torchstack.commands.common import add_selection, flag_type, matrix_of, push_repository
from torchstack.config.model import ImageSpec, Matrix
from torchstack.errors import ConfigError


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
    parser.add_argument("--namespace", default="default", metavar="NS",
                        type=flag_type(parse_namespace))
    parser.add_argument("--node-selector", action="append", default=[], metavar="KEY=VALUE",
                        type=flag_type(parse_node_selector), help="repeatable")
    parser.add_argument("--toleration", action="append", default=[],
                        metavar="KEY[=VALUE]:EFFECT", type=flag_type(parse_toleration),
                        help="repeatable; nvidia.com/gpu:NoSchedule is always tolerated")
    parser.add_argument("--image-ref", metavar="REPO@sha256:DIGEST",
                        type=flag_type(_pinned_ref),
                        help="the image to run, pinned by digest (default: the digest of the"
                             " image's candidate tag in the push registry); one image only")
    parser.add_argument("--compression", choices=("gzip", "zstd"),
                        help="pin the candidate's variant with this layer compression (default:"
                             " zstd where promote published it, else gzip); zstd needs"
                             " containerd >= 1.5, CRI-O or Docker >= 23 on the nodes"
                             " (docs/registry.md)")
    parser.add_argument("--cpu", metavar="CORES",
                        type=flag_type(lambda text: parse_quantity(text, "--cpu", "8 or 500m")),
                        help="CPU per pod, a Kubernetes quantity (default: 4 per GPU)")
    parser.add_argument("--memory", metavar="QTY",
                        type=flag_type(lambda text: parse_quantity(text, "--memory", "64Gi")),
                        help="memory per pod, a Kubernetes quantity (default: 16Gi per GPU plus"
                             " /dev/shm)")
    parser.add_argument("--shm-size", metavar="QTY",
                        help="/dev/shm size (default: checks.shm_size of matrix.yaml)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="write DIR/<image id>.yaml (a folder; existing files of that name"
                             " are replaced) instead of printing to stdout")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    matrix = matrix_of(args)
    images = matrix.select(args.globs, everything=args.everything)
    if args.image_ref and args.compression:
        raise ConfigError("--compression picks a variant of the candidate; --image-ref names"
                          " the image itself", tip="leave one of them out")
    if args.image_ref and len(images) != 1:
        raise ConfigError(f"--image-ref names one image but {len(images)} are selected",
                          tip="name exactly one image id")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out} is a file; --out names a folder",
                          tip="name a folder (it is created if missing); k8s writes"
                              " <folder>/<image id>.yaml per image")
    options = ClusterOptions(
        nodes=args.nodes, gpus_per_node=args.gpus_per_node, namespace=args.namespace,
        node_selector=tuple(args.node_selector), tolerations=tuple(args.toleration),
        cpu=args.cpu, memory=args.memory, shm_size=args.shm_size,
    )
    pinned = _pinned_images(matrix, args, images)
    rendered = {i.id: to_yaml(render_manifests(i, matrix, pinned[i.id], options))
                for i in images}
    if args.out is None:
        print("".join(rendered.values()), end="")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for image_id, text in rendered.items():
        path = args.out / f"{image_id}.yaml"
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


def _pinned_images(matrix: Matrix, args: argparse.Namespace,
                   images: list[ImageSpec]) -> dict[str, str]:
    """image id -> `repo@sha256:…` to run; the candidates' digests come from the registry."""
    if args.image_ref is not None:
        return {images[0].id: args.image_ref}
    repository = push_repository(matrix)
    resolved = api.resolve(matrix, args.globs, everything=args.everything, docker=True,
                           repository=repository)
    return {s.id: resolve_candidate(s, matrix, repository, _content(s), args.compression).pinned
            for s in resolved.requested}


def _content(state: ImageState) -> Content | None:
    return api.content(state.local_image_id) if state.local_image_id else None


def _pinned_ref(text: str) -> str:
    parse_pinned(text)
    return text


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value

"""`torchstack k8s`: Kubernetes manifests that run an image's checks, or training, on a GPU cluster.

`torchstack k8s GLOB...` renders the validation Job of each image; `torchstack k8s train IMAGE
... -- COMMAND` renders a training workload (cluster/training.py). argparse cannot put a
subcommand beside the GLOB positional, so the CLI routes `k8s train` here by hand
(`split_train`). Each workload runs its image pinned by digest: the candidate tag's digest in
the push registry (which needs this host's build and Docker), of the form `--compression` asks
for (gzip, or zstd for containerd >= 1.5 nodes; docs/registry.md), or `--image-ref
REPO@sha256:…`.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from torchstack import api
from torchstack.api import ImageState
from torchstack.backend.identity import Content
from torchstack.cluster.candidates import parse_pinned, resolve_candidate
from torchstack.cluster.grammar import (
    parse_argument,
    parse_dns_label,
    parse_env,
    parse_mount_path,
    parse_namespace,
    parse_node_selector,
    parse_quantity,
    parse_toleration,
    parse_volume,
    refuse_unprintable,
)
from torchstack.cluster.manifests import ClusterOptions, render_manifests, to_yaml
from torchstack.cluster.podspec import Heartbeat, parse_duration
from torchstack.cluster.training import (
    FORMATS,
    MAX_GPUS_PER_NODE,
    NAME_LIMIT,
    TrainOptions,
    render_training,
)
from torchstack.commands.common import (
    TRAIN_VERB,
    Subparsers,
    add_selection,
    flag_type,
    matrix_of,
    push_repository,
)
from torchstack.config.model import ImageSpec, Matrix
from torchstack.errors import ConfigError
from torchstack.workspace.files import write_text


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "k8s", help="write Kubernetes manifests that run the check suite on a GPU cluster",
        description="Print (or write to --out) a ConfigMap and a Job per image; with --nodes > 1"
                    " an Indexed Job and a headless Service that run torchrun across nodes."
                    " `torchstack k8s train IMAGE ... -- COMMAND` prints a training workload"
                    " instead (see `torchstack k8s train --help`).")
    add_selection(parser)
    parser.add_argument("--nodes", type=_positive, default=1, metavar="N",
                        help="nodes for a multi-node NCCL run (default: 1, the plain suite)")
    _cluster_flags(parser)
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="write DIR/<image id>.yaml (a folder; existing files of that name"
                             " are replaced) instead of printing to stdout")
    parser.set_defaults(run=run)
    _register_train(sub)


def _cluster_flags(parser: argparse.ArgumentParser) -> None:
    """Flags the validation Job and training share."""
    parser.add_argument("--gpus-per-node", type=_gpus, default=1, metavar="G",
                        help=f"nvidia.com/gpu requested per pod, 1 to {MAX_GPUS_PER_NODE}"
                             " (default: 1)")
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
    parser.add_argument("--shm-size", metavar="QTY", type=flag_type(_shm_size),
                        help="/dev/shm size (default: checks.shm_size of matrix.yaml)")
    parser.add_argument("--no-node-affinity", dest="node_affinity", action="store_false",
                        help="leave out the required node affinity on the driver and GPU"
                             " architecture (for clusters without NVIDIA GPU feature discovery:"
                             " nodes without its labels never match)")
    parser.add_argument("--writable-root", dest="read_only_root", action="store_false",
                        help="do not mount the container's root filesystem read-only (/tmp is"
                             " writable either way)")


def _register_train(sub: Subparsers) -> None:
    parser = sub.add_parser(
        TRAIN_VERB, prog="torchstack k8s train",
        usage="torchstack k8s train IMAGE [options] -- COMMAND [ARGS...]",
        description="Print a training workload for one image: an Indexed Job plus a headless"
                    " Service (--format job), a JobSet, or a Kubeflow TrainJob with a torchstack"
                    " ClusterTrainingRuntime. Every rank runs COMMAND under torchrun.")
    parser.add_argument("image", metavar="IMAGE", type=flag_type(_image_id),
                        help="an image id of the matrix")
    parser.add_argument("--format", choices=FORMATS, default="job",
                        help="job (default, no CRDs), jobset or trainjob")
    parser.add_argument("--nodes", type=_positive, default=1, metavar="N",
                        help="nodes (pods) to train on (default: 1)")
    parser.add_argument("--name", metavar="NAME", type=flag_type(_train_name),
                        help=f"the workload's name, an RFC 1123 label of at most {NAME_LIMIT}"
                             " characters (default: from the image id)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        type=flag_type(parse_env), help="repeatable")
    parser.add_argument("--volume", action="append", default=[], metavar="PVC:PATH",
                        type=flag_type(parse_volume),
                        help="mount a PersistentVolumeClaim at PATH; repeatable")
    parser.add_argument("--heartbeat", metavar="PATH",
                        type=flag_type(lambda text: parse_mount_path(text, "--heartbeat")),
                        help="opt-in liveness probe: the program touches PATH while it makes"
                             " progress; the pod fails when PATH is older than"
                             " --heartbeat-timeout")
    parser.add_argument("--heartbeat-timeout", metavar="DURATION",
                        type=flag_type(lambda text: parse_duration(text,
                                                                   "--heartbeat-timeout")),
                        help="e.g. 10m (default with --heartbeat: 10m)")
    _cluster_flags(parser)
    parser.set_defaults(run=run_train, command=None)


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
    options = _cluster_options(args)
    pinned = _pinned_images(matrix, args, images)
    rendered = {i.id: to_yaml(render_manifests(i, matrix, pinned[i.id], options))
                for i in images}
    if args.out is None:
        print("".join(rendered.values()), end="")
        return 0
    for image_id, text in rendered.items():
        path = args.out / f"{image_id}.yaml"
        write_text(args.out, path, text)  # a symlinked <id>.yaml is refused, not followed
        print(f"wrote {path}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    command = tuple(args.command or ())
    if not command:
        raise ConfigError("k8s train: no command after `--`",
                          tip="end the line with `-- COMMAND [ARGS...]`, e.g. -- python train.py")
    for word in command:
        parse_argument(word, "the command after `--`")
    if args.heartbeat_timeout is not None and args.heartbeat is None:
        raise ConfigError("--heartbeat-timeout needs --heartbeat PATH",
                          tip="name the file the program touches: --heartbeat /tmp/heartbeat")
    matrix = matrix_of(args)
    selected = matrix.select([args.image], everything=False)
    if len(selected) != 1:
        raise ConfigError(f"k8s train: IMAGE {args.image!r} names {len(selected)} images",
                          tip="name exactly one image id (`torchstack plan` lists them)")
    spec = selected[0]
    args.globs, args.everything = [args.image], False
    image = _pinned_images(matrix, args, [spec])[spec.id]
    heartbeat = (None if args.heartbeat is None
                 else Heartbeat(args.heartbeat, args.heartbeat_timeout or 600))
    train = TrainOptions(command=command, format=args.format, name=args.name,
                         env=tuple(args.env), volumes=tuple(args.volume), heartbeat=heartbeat)
    documents = render_training(spec, matrix, image, _cluster_options(args), train)
    print(to_yaml(documents), end="")
    return 0


def _cluster_options(args: argparse.Namespace) -> ClusterOptions:
    return ClusterOptions(
        nodes=args.nodes, gpus_per_node=args.gpus_per_node, namespace=args.namespace,
        node_selector=tuple(args.node_selector), tolerations=tuple(args.toleration),
        cpu=args.cpu, memory=args.memory, shm_size=args.shm_size,
        node_affinity=args.node_affinity, read_only_root=args.read_only_root,
    )


def _pinned_images(matrix: Matrix, args: argparse.Namespace,
                   images: list[ImageSpec]) -> dict[str, str]:
    """image id -> `repo@sha256:…` to run; the candidates' digests come from the registry."""
    if args.image_ref is not None:
        return {images[0].id: args.image_ref}
    repository = push_repository(matrix, args.settings.environ)
    resolved = api.resolve(matrix, args.globs, everything=args.everything, docker=True,
                           repository=repository, settings=args.settings)
    return {s.id: resolve_candidate(s, matrix, repository, _content(s), args.compression,
                                    credentials=args.settings.credentials).pinned
            for s in resolved.requested}


def _content(state: ImageState) -> Content | None:
    return api.content(state.local_image_id) if state.local_image_id else None


def _pinned_ref(text: str) -> str:
    refuse_unprintable(text, "--image-ref")
    parse_pinned(text)
    return text


def _whole(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,6}", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number"
                                         "\ntip: write it with the digits 0-9")
    return int(text)


def _positive(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1\ntip: ask for 1 or more")
    return value


def _gpus(text: str) -> int:
    value = _positive(text)
    if value > MAX_GPUS_PER_NODE:
        raise argparse.ArgumentTypeError(
            f"{value} is over {MAX_GPUS_PER_NODE}: no node has more GPUs"
            f"\ntip: ask for at most {MAX_GPUS_PER_NODE} per node and more --nodes")
    return value


def _image_id(text: str) -> str:
    return refuse_unprintable(text, "IMAGE")


def _train_name(text: str) -> str:
    parse_dns_label(text, "--name")
    if len(text) > NAME_LIMIT:
        raise ConfigError(f"bad --name {text!r}: over {NAME_LIMIT} characters",
                          tip=f"use at most {NAME_LIMIT}: pod hostnames append an index")
    return text


def _shm_size(text: str) -> str:
    return refuse_unprintable(text, "--shm-size")

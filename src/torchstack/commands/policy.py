"""`torchstack policy --key PUB`: an admission policy that admits only images with a passing
signed verdict (Kyverno ClusterPolicy, or sigstore policy-controller ClusterImagePolicy)."""

from __future__ import annotations

import argparse
from pathlib import Path

from torchstack.cluster.manifests import to_yaml
from torchstack.cluster.policies import (
    GPU_MODEL_TIP,
    IMAGE_GLOB_TIP,
    PolicyRequest,
    gpu_model_problem,
    image_glob_problem,
    kyverno_policy,
    sigstore_policy,
)
from torchstack.commands.common import Subparsers
from torchstack.commands.signing import read_key_file
from torchstack.errors import ConfigError
from torchstack.release.keys import PUBLIC_TIP, load_verify_key


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("policy", help="render an admission policy for signed verdicts")
    parser.add_argument("--key", type=Path, required=True, metavar="PUB",
                        help="the public key (PEM) verdicts are signed with")
    parser.add_argument("--format", choices=("kyverno", "sigstore"), default="kyverno",
                        help="kyverno: ClusterPolicy; sigstore: policy-controller"
                             " ClusterImagePolicy (default: kyverno)")
    parser.add_argument("--level", choices=("cpu", "gpu"), default="cpu",
                        help="the check level required (default: cpu)")
    parser.add_argument("--gpu-model", action="append", default=[], metavar="NAME",
                        help="GPU model a gpu verdict must have run on (repeatable)")
    parser.add_argument("--match", action="append", default=[], metavar="REF_GLOB",
                        help="image references the policy applies to, e.g."
                             " 'ghcr.io/org/torchstack*' (repeatable; default: every image)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    key = load_verify_key(read_key_file(args.key, "--key", PUBLIC_TIP), str(args.key))
    for glob in args.match:
        problem = image_glob_problem(glob)
        if problem:
            raise ConfigError(f"--match {glob[:300]!r} {problem}", tip=IMAGE_GLOB_TIP)
    for model in args.gpu_model:
        problem = gpu_model_problem(model)
        if problem:
            raise ConfigError(f"--gpu-model {model[:300]!r} {problem}", tip=GPU_MODEL_TIP)
    request = PolicyRequest(key.pem(), args.level, tuple(args.gpu_model),
                            tuple(args.match) or ("*",))
    policy = kyverno_policy(request) if args.format == "kyverno" else sigstore_policy(request)
    print(to_yaml([policy]), end="")
    return 0

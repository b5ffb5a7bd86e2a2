"""`torchstack verify REF --key PUB`: does the image carry a signed verdict that satisfies?

Resolves REF to its manifest digest, reads the digest's `.att` attestations (and its OCI 1.1
referrers: the API, else the `sha256-<hex>` fallback tag), keeps the DSSE
envelopes the key signed whose statement names that digest, and lets the newest verdict (by
the check time signed inside it) at the level asked or above decide. Exit 0 when satisfied,
else 8 (errors.VerifyError) with the reason.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from torchstack.backend.artifacts import Repository
from torchstack.backend.registry import RegistryError, split_reference
from torchstack.cluster.policies import GPU_MODEL_TIP, gpu_model_problem
from torchstack.commands.common import Subparsers
from torchstack.commands.signing import read_key_file
from torchstack.errors import ConfigError, VerifyError
from torchstack.release.attestations import (
    SHA256,
    SUITE_VERSION,
    Requirements,
    decide,
    read_envelopes,
    read_referrer_envelopes,
)
from torchstack.release.keys import PUBLIC_TIP, load_verify_key

MAX_REF = 512  # a repository name (255), a tag (128) or a digest (71), and separators


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("verify", help="check an image's signed verdict in the registry")
    parser.add_argument("ref", metavar="REF",
                        help="host/repository:tag or host/repository@sha256:...")
    parser.add_argument("--key", type=Path, required=True, metavar="PUB",
                        help="the public key (PEM) the verdict must be signed with")
    parser.add_argument("--level", choices=("cpu", "gpu"), default="cpu",
                        help="the check level needed (default: cpu; gpu is also cpu)")
    parser.add_argument("--gpu-model", action="append", default=[], metavar="NAME",
                        help="the deciding verdict must have run on this GPU (repeatable)")
    parser.add_argument("--suite-version", metavar="V",
                        help="the deciding verdict's suite must be V or newer")
    parser.add_argument("--json", action="store_true", help="print the decision as JSON")
    parser.set_defaults(run=run)


def reference_of(ref: str) -> tuple[str, str, str]:
    """(host, repository, tag or digest) of REF; ConfigError (exit 2) before any request when
    it is not one. A digest is sha256 in lower-case hex: the only form a registry stores."""
    if len(ref) > MAX_REF:
        raise ConfigError(f"REF is {len(ref)} characters long, so not a registry reference",
                          tip="host[:port]/repository:tag or host[:port]/repository@sha256:…")
    try:
        host, path, tag = split_reference(ref)
    except RegistryError as exc:
        raise ConfigError(exc.message, tip=exc.tip) from None
    if "@" in ref and not SHA256.fullmatch(tag):
        raise ConfigError(f"{ref[:300]!r} is not a registry reference: its digest is not"
                          " sha256: and 64 lower-case hex digits",
                          tip="copy the digest as `docker buildx imagetools inspect` or"
                              " `torchstack promote` prints it")
    return host, path, tag


def run(args: argparse.Namespace) -> int:
    key = load_verify_key(read_key_file(args.key, "--key", PUBLIC_TIP), str(args.key))
    host, path, tag = reference_of(args.ref)
    for model in args.gpu_model:
        problem = gpu_model_problem(model)
        if problem:
            raise ConfigError(f"--gpu-model {model[:300]!r} {problem}", tip=GPU_MODEL_TIP)
    if args.suite_version is not None and not SUITE_VERSION.fullmatch(args.suite_version):
        raise ConfigError(f"--suite-version {args.suite_version[:100]!r} is not a version",
                          tip="numbers and dots, e.g. --suite-version 1.1.0")
    repository = Repository(f"{host}/{path}", credentials=args.settings.credentials)
    try:
        published = repository.published(tag)
        if published is None:
            raise VerifyError(f"{args.ref}: no such tag or digest in the registry")
        envelopes = read_envelopes(repository, published.digest)
        stored = set(envelopes)  # by hash: comparing each pair of large blobs is quadratic
        envelopes += [e for e in read_referrer_envelopes(repository, published.digest)
                      if e not in stored]
    except RegistryError as exc:
        raise VerifyError(f"{args.ref}: cannot read its attestations: {exc.message}",
                          tip="is the registry reachable?") from None
    decision = decide(published.digest, envelopes, key,
                      Requirements(args.level, tuple(args.gpu_model), args.suite_version))
    if args.json:
        print(json.dumps({"ref": args.ref, **decision.to_json()}, indent=2))
    if not decision.satisfied:
        raise VerifyError(f"{args.ref} ({published.digest[:19]}…): {decision.reason}",
                          tip="see `torchstack verify --help` and docs/attestations.md")
    if not args.json:
        print(f"verified {args.ref} ({published.digest}): {decision.reason},"
              f" {decision.trusted} of {decision.envelopes} envelopes signed by"
              f" {key.fingerprint[:19]}…")
    return 0

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
from torchstack.commands.common import Subparsers
from torchstack.errors import ConfigError, VerifyError
from torchstack.release.attestations import (
    Requirements,
    decide,
    read_envelopes,
    read_referrer_envelopes,
)
from torchstack.release.keys import load_verify_key


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


def run(args: argparse.Namespace) -> int:
    try:
        pem = args.key.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read --key {args.key}: {exc.strerror or exc}",
                          tip="pass the .pub file `torchstack keys generate` wrote") from None
    key = load_verify_key(pem, str(args.key))
    host, path, tag = split_reference(args.ref)
    repository = Repository(f"{host}/{path}", credentials=args.settings.credentials)
    try:
        published = repository.published(tag)
        if published is None:
            raise VerifyError(f"{args.ref}: no such tag or digest in the registry")
        envelopes = read_envelopes(repository, published.digest)
        envelopes += [e for e in read_referrer_envelopes(repository, published.digest)
                      if e not in envelopes]
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

"""Arguments and helpers shared by several verbs."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from torchstack.config.matrix import load_matrix
from torchstack.config.model import Matrix
from torchstack.errors import ConfigError
from torchstack.release.attaching import AttachOutcome
from torchstack.release.keys import KEY_TIP, SigningKey, is_encrypted, load_signing_key
from torchstack.resolve.state import push_repository

__all__ = ["add_selection", "add_signing_key", "flag_type", "matrix_of", "push_repository",
           "say_attached", "signing_key_of"]
T = TypeVar("T")


def add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("globs", nargs="*", metavar="GLOB",
                        help="image ids to act on, shell-style globs (default: the default group)")
    parser.add_argument("--all", dest="everything", action="store_true",
                        help="every image of the matrix")


def matrix_of(args: argparse.Namespace) -> Matrix:
    return load_matrix(args.matrix)


def flag_type(parse: Callable[[str], T]) -> Callable[[str], T]:
    """argparse reports ArgumentTypeError as a usage error (exit 2); ConfigError would escape."""
    def convert(text: str) -> T:
        try:
            return parse(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(f"{exc.message}\ntip: {exc.tip}") from None
    return convert


SIGNING_KEY_ENV = "TORCHSTACK_SIGNING_KEY"  # the PEM text itself, for CI secrets
PASSPHRASE_ENV = "TORCHSTACK_SIGNING_KEY_PASSPHRASE"


def add_signing_key(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--signing-key", metavar="PATH", type=Path,
                        help=f"sign {what} and attach it to the image in the registry (PEM"
                             f" ECDSA P-256; default: the PEM text in ${SIGNING_KEY_ENV}, if"
                             " set; docs/attestations.md)")


def signing_key_of(args: argparse.Namespace,
                   environ: Mapping[str, str] = os.environ) -> SigningKey | None:
    """The key from --signing-key or $TORCHSTACK_SIGNING_KEY; None when neither is given.

    An encrypted key's passphrase comes from $TORCHSTACK_SIGNING_KEY_PASSPHRASE, else a
    prompt when stdin is a terminal. The PEM text is dropped as soon as the key is loaded.
    """
    path: Path | None = getattr(args, "signing_key", None)
    if path is not None:
        try:
            pem, source = path.read_bytes(), str(path)
        except OSError as exc:
            raise ConfigError(f"cannot read --signing-key {path}: {exc.strerror or exc}",
                              tip=KEY_TIP) from None
    elif environ.get(SIGNING_KEY_ENV):
        pem, source = environ[SIGNING_KEY_ENV].encode(), f"${SIGNING_KEY_ENV}"
    else:
        return None
    passphrase: bytes | None = None
    if is_encrypted(pem):
        if environ.get(PASSPHRASE_ENV):
            passphrase = environ[PASSPHRASE_ENV].encode()
        elif sys.stdin.isatty():
            passphrase = getpass.getpass(f"passphrase for {source}: ").encode()
    return load_signing_key(pem, passphrase, source)


def say_attached(outcome: AttachOutcome) -> None:
    """One line per image: where its verdicts went, or why nowhere."""
    if outcome.note:
        print(f"{outcome.image_id}: no attestation attached: {outcome.note}")
    else:
        print(f"{outcome.image_id}: verdicts attached to {len(outcome.digests)} digest(s)"
              f" ({outcome.added} envelopes new, {outcome.already} already there)")

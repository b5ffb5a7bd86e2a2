"""The signing key of the verbs that attach verdicts (check, promote, record import), and the
line each attach prints."""

from __future__ import annotations

import argparse
import getpass
import os
import stat
import sys
from pathlib import Path

from torchstack.errors import ConfigError
from torchstack.release.attaching import AttachOutcome
from torchstack.release.keys import KEY_TIP, SigningKey, is_encrypted, load_signing_key

SIGNING_KEY_ENV = "TORCHSTACK_SIGNING_KEY"  # the PEM text itself, for CI secrets
PASSPHRASE_ENV = "TORCHSTACK_SIGNING_KEY_PASSPHRASE"
MAX_KEY_BYTES = 64 << 10  # a PEM key is a few hundred bytes; /dev/zero must not fill memory


def add_signing_key(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--signing-key", metavar="PATH", type=Path,
                        help=f"sign {what} and attach it to the image in the registry (PEM"
                             f" ECDSA P-256; default: the PEM text in ${SIGNING_KEY_ENV}, if"
                             " set; docs/attestations.md)")


def signing_key_of(args: argparse.Namespace) -> SigningKey | None:
    """The key from --signing-key or $TORCHSTACK_SIGNING_KEY; None when neither is given.

    An encrypted key's passphrase comes from $TORCHSTACK_SIGNING_KEY_PASSPHRASE, else a
    prompt when stdin is a terminal. The PEM text is dropped as soon as the key is loaded.
    """
    environ = args.settings.environ
    path: Path | None = getattr(args, "signing_key", None)
    if path is not None:
        pem, source = read_key_file(path, "--signing-key", KEY_TIP), str(path)
    elif environ.get(SIGNING_KEY_ENV):
        pem, source = environ[SIGNING_KEY_ENV].encode(), f"${SIGNING_KEY_ENV}"
        if b"-----BEGIN " not in pem:  # its value is never shown: it may be key material
            raise ConfigError(f"{source} holds no PEM text (-----BEGIN ...); it takes the key"
                              " itself, not a path to it",
                              tip=f"{SIGNING_KEY_ENV}=\"$(cat torchstack.key)\", or pass the"
                                  " file with --signing-key PATH")
    else:
        return None
    passphrase: bytes | None = None
    if is_encrypted(pem):
        if environ.get(PASSPHRASE_ENV):
            passphrase = environ[PASSPHRASE_ENV].encode()
        elif sys.stdin.isatty():
            passphrase = getpass.getpass(f"passphrase for {source}: ").encode()
    return load_signing_key(pem, passphrase, source)


def read_key_file(path: Path, option: str, tip: str) -> bytes:
    """A PEM key file's bytes: a regular file of at most MAX_KEY_BYTES. Opened without
    blocking, so a FIFO cannot hold the command, and never read past the cap (/dev/zero)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ConfigError(f"cannot read {option} {path}: {exc.strerror or exc}",
                          tip=tip) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"{option} {path} is not a regular file (a folder, a device or"
                              " a pipe), so not a PEM key", tip=tip)
        pem = os.read(fd, MAX_KEY_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {option} {path}: {exc.strerror or exc}",
                          tip=tip) from None
    finally:
        os.close(fd)
    if len(pem) > MAX_KEY_BYTES:
        raise ConfigError(f"{option} {path}: larger than {MAX_KEY_BYTES >> 10} KiB, so not a"
                          " PEM key", tip=tip)
    return pem


def say_attached(outcome: AttachOutcome) -> None:
    """One line per image: where its verdicts went, or why nowhere."""
    if outcome.note:
        print(f"{outcome.image_id}: no attestation attached: {outcome.note}")
    else:
        print(f"{outcome.image_id}: verdicts attached to {len(outcome.digests)} digest(s)"
              f" ({outcome.added} envelopes new, {outcome.already} already there)")

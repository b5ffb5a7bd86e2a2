"""`torchstack keys generate --out DIR`: a new ECDSA P-256 key pair for signing verdicts.

The one command that writes outside the project, on purpose: DIR must not exist (it is made at
0700), must not be reached through a symbolic link and must not lie inside a git work tree.
The private key (torchstack.key, PKCS#8 PEM, mode 0600) is encrypted when
$TORCHSTACK_SIGNING_KEY_PASSPHRASE is set or --passphrase prompts for one.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from torchstack.commands.common import Subparsers
from torchstack.commands.signing import PASSPHRASE_ENV
from torchstack.errors import ConfigError
from torchstack.release.keys import load_verify_key, write_key_pair


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("keys", help="signing keys for attestations")
    actions = parser.add_subparsers(dest="keys_action", required=True, metavar="ACTION")
    gen = actions.add_parser(
        "generate", help="write a new key pair into a new folder",
        description="Write torchstack.key (private, 0600) and torchstack.pub into DIR, a new"
        " folder made at 0700 outside any git work tree. The private key is encrypted with"
        f" ${PASSPHRASE_ENV} when set, or with a passphrase typed at the prompt (--passphrase).")
    gen.add_argument("--out", type=Path, required=True, metavar="DIR",
                     help="the folder to create (it must not exist)")
    gen.add_argument("--passphrase", action="store_true",
                     help="prompt for a passphrase (on a terminal) to encrypt the private key")
    gen.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    passphrase = args.settings.environ.get(PASSPHRASE_ENV, "").encode() or None
    if passphrase is None and args.passphrase:
        if not sys.stdin.isatty():
            raise ConfigError("--passphrase needs a terminal to prompt on",
                              tip=f"set {PASSPHRASE_ENV} instead")
        first = getpass.getpass("passphrase: ")
        if not first or first != getpass.getpass("again: "):
            raise ConfigError("the passphrases are empty or differ; nothing was written",
                              tip="run it again")
        passphrase = first.encode()
    private, public = write_key_pair(args.out, passphrase)
    fingerprint = load_verify_key(public.read_bytes(), str(public)).fingerprint
    print(f"wrote {private} (private, 0600{', encrypted' if passphrase else ''})")
    print(f"wrote {public} (public, {fingerprint})")
    print("keep the private key out of the project; in CI pass its PEM text as the secret"
          " TORCHSTACK_SIGNING_KEY")
    return 0

"""Signing keys: ECDSA P-256 with SHA-256, PEM in and out (the `cryptography` library).

A SigningKey holds the loaded private key and never shows it: its repr names only where it
came from. Private key bytes exist only in memory here; the one file this module writes holds
them is `keys generate`'s private key, created fresh at mode 0600 in a new folder at 0700.
A public key is PEM SubjectPublicKeyInfo, the form cosign's `--key k.pub` reads.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from torchstack.errors import ConfigError

PRIVATE_NAME, PUBLIC_NAME = "torchstack.key", "torchstack.pub"
KEY_TIP = ("generate a pair with `torchstack keys generate --out DIR`; pass the private key with"
           " --signing-key PATH or its PEM text in TORCHSTACK_SIGNING_KEY")


@dataclass(frozen=True)
class SigningKey:
    """A private key ready to sign; its repr redacts the key."""

    source: str  # where it came from, for messages: a path or the variable's name
    key: ec.EllipticCurvePrivateKey = field(repr=False, compare=False)

    def __repr__(self) -> str:
        return f"SigningKey(source={self.source!r}, key=<redacted>)"

    def sign(self, message: bytes) -> bytes:
        """A DER-encoded ECDSA signature over sha256(message)."""
        return self.key.sign(message, ec.ECDSA(hashes.SHA256()))

    def public(self) -> VerifyKey:
        return VerifyKey(f"public half of {self.source}", self.key.public_key())


@dataclass(frozen=True)
class VerifyKey:
    source: str
    key: ec.EllipticCurvePublicKey = field(repr=False, compare=False)

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self.key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    def pem(self) -> str:
        return self.key.public_bytes(serialization.Encoding.PEM,
                                     serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    @property
    def fingerprint(self) -> str:
        """sha256 of the DER public key: names a key in messages without showing it."""
        der = self.key.public_bytes(serialization.Encoding.DER,
                                    serialization.PublicFormat.SubjectPublicKeyInfo)
        return "sha256:" + hashlib.sha256(der).hexdigest()


PUBLIC_TIP = "pass the .pub file `torchstack keys generate` wrote"


def is_encrypted(pem: bytes) -> bool:
    """PKCS#8 `BEGIN ENCRYPTED PRIVATE KEY`, or OpenSSL's own `Proc-Type: 4,ENCRYPTED` (what
    `openssl ec -aes256` writes), wherever the PEM starts (CI secrets often lead with blanks)."""
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in pem or b"Proc-Type: 4,ENCRYPTED" in pem


def _holds(pem: bytes, kind: bytes) -> bool:
    """Whether `pem` has a PEM block of `kind` (b"PUBLIC KEY", b"PRIVATE KEY")."""
    return any(line.startswith(b"-----BEGIN ") and line.rstrip().endswith(kind + b"-----")
               for line in pem.splitlines())


def load_signing_key(pem: bytes, passphrase: bytes | None, source: str) -> SigningKey:
    """The private key in `pem` (PKCS#8 or SEC1), decrypted with `passphrase` when needed."""
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase or None)
    except TypeError:  # encrypted without a passphrase, or a passphrase for a plain key
        need = "is encrypted: set TORCHSTACK_SIGNING_KEY_PASSPHRASE (or type it at the prompt)" \
            if passphrase is None else "is not encrypted, but a passphrase was given"
        raise ConfigError(f"the signing key from {source} {need}", tip=KEY_TIP) from None
    except ValueError:
        if _holds(pem, b"PUBLIC KEY"):
            raise ConfigError(f"the signing key from {source} is a public key; signing needs"
                              " the private key (torchstack.key, not torchstack.pub)",
                              tip=KEY_TIP) from None
        what = "the passphrase is wrong or it" if passphrase else "it"
        raise ConfigError(f"cannot read the signing key from {source}: {what} is not a PEM"
                          " private key", tip=KEY_TIP) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigError(f"the signing key from {source} is not an ECDSA P-256 key",
                          tip=KEY_TIP)
    return SigningKey(source, key)


def load_verify_key(pem: bytes, source: str) -> VerifyKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        if _holds(pem, b"PRIVATE KEY"):
            raise ConfigError(f"{source} is a private key; verifying needs only the public key"
                              " (the .pub file beside it): keep the private key on the signer",
                              tip=PUBLIC_TIP) from None
        raise ConfigError(f"{source} is not a PEM public key", tip=PUBLIC_TIP) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ConfigError(f"{source} is not an ECDSA P-256 public key", tip=PUBLIC_TIP)
    return VerifyKey(source, key)


def generate(passphrase: bytes | None) -> tuple[bytes, bytes]:
    """(private PEM, PKCS#8, encrypted when a passphrase is given; public PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase
        else serialization.NoEncryption())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                encryption)
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def key_folder_problem(out: Path) -> str | None:
    """Why `out` may not receive a new key pair; None when it may."""
    if any(ord(c) < 32 or ord(c) == 127 for c in str(out)):
        return "has a control character (a newline?) in its name"
    if os.path.lexists(out):
        return "already exists (a new folder is made, never reused)"
    absolute = Path.cwd() / out  # not resolved: a link on the way must be seen
    for parent in [absolute, *absolute.parents]:
        if parent != absolute and parent.is_symlink():
            return f"goes through the symbolic link {parent}"
        if os.path.lexists(parent / ".git"):
            return f"is inside the git work tree {parent} (a key must never be committed)"
    if not absolute.parent.is_dir():
        return f"has no parent folder {absolute.parent}"
    return None


def write_key_pair(out: Path, passphrase: bytes | None) -> tuple[Path, Path]:
    """A new folder `out` (0700) with the private key (0600) and the public key (0644)."""
    problem = key_folder_problem(out)
    if problem:
        raise ConfigError(f"--out {out} {problem}",
                          tip="name a folder that does not exist yet, outside any git work"
                              " tree, e.g. --out ~/.config/torchstack/keys-2026")
    private, public = generate(passphrase)
    try:
        out.mkdir(mode=0o700)
    except OSError as exc:  # no permission, a read-only or pseudo file system, a race
        raise ConfigError(f"--out {out}: cannot create the folder: {exc.strerror or exc}",
                          tip="name a folder you may create, e.g. under your home") from None
    paths = (out / PRIVATE_NAME, out / PUBLIC_NAME)
    try:
        out.chmod(0o700)  # mkdir's mode is masked by the umask
        for path, data, mode in ((paths[0], private, 0o600), (paths[1], public, 0o644)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            path.chmod(mode)
    except OSError as exc:  # a full disk: no half-written pair is left behind
        for path in paths:
            path.unlink(missing_ok=True)
        out.rmdir()
        raise ConfigError(f"--out {out}: cannot write the key pair: {exc.strerror or exc}",
                          tip="free some space or pick another folder") from None
    return paths

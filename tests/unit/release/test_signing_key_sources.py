"""Where the CLI takes the signing key from: --signing-key, else $TORCHSTACK_SIGNING_KEY, with the
passphrase from $TORCHSTACK_SIGNING_KEY_PASSPHRASE; a file that is not a key is a clear error."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from torchstack.commands.signing import (
    MAX_KEY_BYTES,
    PASSPHRASE_ENV,
    SIGNING_KEY_ENV,
    signing_key_of,
)
from torchstack.errors import ConfigError
from torchstack.release.keys import generate
from torchstack.settings import Settings


def args_of(path: Path | None, environ: dict[str, str]) -> argparse.Namespace:
    return argparse.Namespace(signing_key=path, settings=Settings.from_environ(environ))


def test_no_flag_and_no_variable_means_unsigned() -> None:
    assert signing_key_of(args_of(None, {})) is None


def test_the_flag_wins_over_the_variable(tmp_path: Path) -> None:
    # Bug caught: the environment's key silently replacing the one the user named.
    flag_pem, flag_public = generate(None)
    env_pem, _ = generate(None)
    path = tmp_path / "key.pem"
    path.write_bytes(flag_pem)
    key = signing_key_of(args_of(path, {SIGNING_KEY_ENV: env_pem.decode()}))
    assert key is not None
    assert key.public().pem().encode() == flag_public


def test_an_encrypted_key_in_the_environment_takes_its_passphrase_from_there() -> None:
    pem, public = generate(b"s3cret")
    key = signing_key_of(args_of(None, {SIGNING_KEY_ENV: pem.decode(), PASSPHRASE_ENV: "s3cret"}))
    assert key is not None and key.public().pem().encode() == public
    with pytest.raises(ConfigError, match="encrypted"):
        signing_key_of(args_of(None, {SIGNING_KEY_ENV: pem.decode()}))  # stdin is no terminal


@pytest.mark.parametrize("kind", ["missing", "directory", "huge"])
def test_a_key_path_that_is_no_key_is_a_config_error(tmp_path: Path, kind: str) -> None:
    # Bug caught: /dev/zero or a multi-GB file read whole into memory; a traceback on a folder.
    path = tmp_path / "key.pem"
    if kind == "directory":
        path.mkdir()
    elif kind == "huge":
        path.write_bytes(b"A" * (MAX_KEY_BYTES + 1))
    with pytest.raises(ConfigError) as caught:
        signing_key_of(args_of(path, {}))
    assert str(path) in str(caught.value)

"""One exception family; each kind carries the exit code the CLI returns for it."""

from __future__ import annotations


class TorchstackError(Exception):
    """An expected failure: the CLI prints `message` (and `tip`) without a traceback."""

    exit_code = 1

    def __init__(self, message: str, *, tip: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.tip = tip


class ConfigError(TorchstackError):
    """matrix.yaml, a layer.yaml or a command-line selection is wrong."""

    exit_code = 2


class DockerUnavailableError(TorchstackError):
    """No Docker Engine answers; nothing was built."""

    exit_code = 3


class EngineError(TorchstackError):
    """The Docker Engine refused an operation (tag, push, container). The backend raises it;
    the stage that asked translates it into its own kind (promote: PromoteError, check:
    CheckError), so its exit code is the stage's. Untranslated, it counts as the engine's."""

    exit_code = 3


class BuildError(TorchstackError):
    """At least one image failed to build."""

    exit_code = 4


class CheckError(TorchstackError):
    """At least one image failed its checks."""

    exit_code = 5


class PromoteError(TorchstackError):
    """Tagging or pushing failed; tags that users pull were left as they were."""

    exit_code = 6


class IndexUnreachableError(TorchstackError):
    """`torchstack lock` could not reach a package index; images that need it stay unlocked."""

    exit_code = 7


class VerifyError(TorchstackError):
    """`torchstack verify`: the image's attestations do not satisfy what was asked (no
    attestation, a bad signature, another digest, a failed verdict, a lower level, another GPU
    model, an old suite); the message names which."""

    exit_code = 8


class Interrupted(TorchstackError):
    """Ctrl-C or SIGTERM: work in flight was stopped and cleaned up."""

    exit_code = 130

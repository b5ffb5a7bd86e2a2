"""Everything torchstack takes from its environment, read once by the CLI (or the API) into one
frozen object and handed down: no stage reads `os.environ`.

Secrets among them (the registry password, the child processes' environment) never appear in
the object's repr. `Settings.current()` is the one read of `os.environ` outside the CLI: the
API's default when a caller passes no Settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from torchstack.backend.credentials import ANONYMOUS, PASSWORD_ENV, USER_ENV, Credentials

MATRIX_ENV = "TORCHSTACK_MATRIX"
# Test hook: seconds to sleep between two release tags, so a test can kill promote mid-move.
PAUSE_ENV = "TORCHSTACK_TEST_PAUSE_BETWEEN_TAGS"


@dataclass(frozen=True)
class Settings:
    matrix: Path = Path("matrix.yaml")  # TORCHSTACK_MATRIX; --matrix wins
    github_actions: bool = False  # GITHUB_ACTIONS=true: plain lines with ::group:: folds
    step_summary: Path | None = None  # GITHUB_STEP_SUMMARY: the job summary file to append to
    kubeconfig: str | None = None  # KUBECONFIG, a path list as kubectl reads it
    credentials: Credentials = ANONYMOUS  # TORCHSTACK_REGISTRY_USER/_PASSWORD
    tag_pause_s: float = 0.0  # PAUSE_ENV (tests only)
    # What child processes (the BuildKit CLI, uv) start from; it may hold credentials.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        summary = environ.get("GITHUB_STEP_SUMMARY")
        return cls(matrix=Path(environ.get(MATRIX_ENV) or "matrix.yaml"),
                   github_actions=environ.get("GITHUB_ACTIONS") == "true",
                   step_summary=Path(summary) if summary else None,
                   kubeconfig=environ.get("KUBECONFIG") or None,
                   credentials=Credentials(environ.get(USER_ENV) or None,
                                           environ.get(PASSWORD_ENV, "")),
                   tag_pause_s=_seconds(environ.get(PAUSE_ENV)),
                   environ=dict(environ))

    @classmethod
    def current(cls) -> Settings:
        """The settings of this process's environment now."""
        return cls.from_environ(os.environ)


def _seconds(text: str | None) -> float:
    """A test hook's value: anything but a non-negative number is no pause."""
    try:
        value = float(text or 0)
    except ValueError:
        return 0.0
    return value if value > 0 else 0.0

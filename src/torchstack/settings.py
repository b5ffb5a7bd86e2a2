"""Everything torchstack takes from its environment, read once by the CLI (or the API) into one
frozen object and handed down: no stage reads `os.environ`.

Secrets among them (the registry password) never appear in the object's repr.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

MATRIX_ENV = "TORCHSTACK_MATRIX"


@dataclass(frozen=True)
class Settings:
    matrix: Path = Path("matrix.yaml")  # TORCHSTACK_MATRIX; --matrix wins
    github_actions: bool = False  # GITHUB_ACTIONS=true: plain lines with ::group:: folds
    step_summary: Path | None = None  # GITHUB_STEP_SUMMARY: the job summary file to append to
    kubeconfig: str | None = None  # KUBECONFIG, a path list as kubectl reads it
    # What child processes (the BuildKit CLI, uv) start from; it may hold credentials.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        summary = environ.get("GITHUB_STEP_SUMMARY")
        return cls(matrix=Path(environ.get(MATRIX_ENV) or "matrix.yaml"),
                   github_actions=environ.get("GITHUB_ACTIONS") == "true",
                   step_summary=Path(summary) if summary else None,
                   kubeconfig=environ.get("KUBECONFIG") or None,
                   environ=dict(environ))

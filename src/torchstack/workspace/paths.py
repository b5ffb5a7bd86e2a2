"""Where torchstack keeps its own state inside the project: `.torchstack/` beside matrix.yaml.

Each path is built here once; the stages ask for it by name.
"""

from __future__ import annotations

from pathlib import Path

STATE_DIR = ".torchstack"


def state_dir(root: Path) -> Path:
    return root / STATE_DIR


def runs_dir(root: Path) -> Path:
    """`.torchstack/runs/<UTC timestamp>/`: one folder per build, check or promote run."""
    return state_dir(root) / "runs"


def records_dir(root: Path) -> Path:
    """Check records, one file per image ID and level."""
    return state_dir(root) / "records"


def journal_path(root: Path) -> Path:
    """The promote journal: tags in flight, so an interrupted promote resumes."""
    return state_dir(root) / "promote-journal.json"


def shown(root: Path, path: Path) -> str:
    """How messages name a path: relative to the project when inside it, else as given."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)

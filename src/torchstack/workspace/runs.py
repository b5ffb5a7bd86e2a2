"""Run directories: `.torchstack/runs/<UTC timestamp>/` beside matrix.yaml, plus a `latest` link.

A run holds what one invocation produced: `<id>.build.log` per built image and `build.json`
(per image: status, image ID, input hash, duration, size, failure reason). Later steps (check,
promote, report) open the latest run, or the one they are given, to find what was built.
"""

from __future__ import annotations

import json
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from torchstack.errors import ConfigError
from torchstack.workspace.files import ensure_inside, make_folder, open_log, write_text
from torchstack.workspace.json_types import JSON
from torchstack.workspace.paths import journal_path, records_dir, runs_dir, state_dir

LATEST = "latest"
BUILD_JSON = "build.json"


@dataclass(frozen=True)
class RunDir:
    path: Path
    root: Path | None = None  # the project folder; writes go through no symlink below it

    @property
    def name(self) -> str:
        return self.path.name

    def log_path(self, image_id: str, kind: str = "build") -> Path:
        return self.path / f"{image_id}.{kind}.log"

    def open_log(self, image_id: str, kind: str = "build") -> AbstractContextManager[TextIO]:
        return open_log(self.root or self.path, self.log_path(image_id, kind))

    def write_json(self, name: str, data: JSON) -> Path:
        """Write atomically: a reader never sees half a document."""
        target = self.path / name
        write_text(self.root or self.path, target, json.dumps(data, indent=2) + "\n")
        return target

    def read_json(self, name: str) -> JSON:
        data: JSON = json.loads((self.path / name).read_text(encoding="utf-8"))
        return data


def check_workspace(root: Path) -> None:
    """Refuse a symlink at `.torchstack` or below it (runs, records, the promote journal)
    before a command starts work, so that it fails before anything is built or written."""
    state = state_dir(root)
    for path in (state, runs_dir(root), records_dir(root), journal_path(root)):
        ensure_inside(root, path)


def create_run(root: Path, now: datetime | None = None) -> RunDir:
    """A new run directory under `root` (the folder of matrix.yaml); `latest` points at it."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    parent = make_folder(root, runs_dir(root))
    for attempt in range(1000):
        path = parent / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise ConfigError(f"{path}: cannot create the run folder: {exc.strerror}") from None
        _point_latest(parent, path.name)
        return RunDir(path, root)
    raise ConfigError(f"cannot create a run directory under {parent}")


def _point_latest(parent: Path, name: str) -> None:
    link = parent / LATEST
    temporary = parent / f".{LATEST}.{os.getpid()}.{os.urandom(4).hex()}"
    try:
        temporary.symlink_to(name)
        temporary.replace(link)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigError(f"{link}: cannot point it at {name}: {exc.strerror}") from None

"""Run directories: `.torchstack/runs/<UTC timestamp>/` beside matrix.yaml, plus a `latest` link.

A run holds what one invocation produced: `<id>.build.log` per built image and `build.json`
(per image: status, image ID, input hash, duration, size, failure reason). Later steps (check,
promote, report) open the latest run, or the one they are given, to find what was built.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from torchstack.json_types import JSON
from torchstack.workspace.paths import runs_dir

LATEST = "latest"
BUILD_JSON = "build.json"


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def log_path(self, image_id: str, kind: str = "build") -> Path:
        return self.path / f"{image_id}.{kind}.log"

    def open_log(self, image_id: str, kind: str = "build") -> TextIO:
        return self.log_path(image_id, kind).open("w", encoding="utf-8", buffering=1)

    def write_json(self, name: str, data: JSON) -> Path:
        """Write atomically: a reader never sees half a document."""
        target = self.path / name
        partial = target.with_name(f".{name}.partial")
        partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        partial.replace(target)
        return target

    def read_json(self, name: str) -> JSON:
        data: JSON = json.loads((self.path / name).read_text(encoding="utf-8"))
        return data


def create_run(root: Path, now: datetime | None = None) -> RunDir:
    """A new run directory under `root` (the folder of matrix.yaml); `latest` points at it."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    parent = runs_dir(root)
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        path = parent / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        _point_latest(parent, path.name)
        return RunDir(path)
    raise RuntimeError(f"cannot create a run directory under {parent}")


def _point_latest(parent: Path, name: str) -> None:
    link = parent / LATEST
    temporary = parent / f".{LATEST}.{os.getpid()}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(name)
    temporary.replace(link)

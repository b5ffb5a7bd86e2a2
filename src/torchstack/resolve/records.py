"""Check records: which level of the check suite an exact image passed.

A record is keyed by Docker image ID, input hash and checks-suite version, so a rebuilt image
or a new suite is checked again. It also carries the image's content ID (backend.identity:
ordered diff IDs + OCI config projection), which every published variant of the image (gzip,
zstd, an OCI conversion) shares while their manifest and config digests differ.
Levels: `cpu` (the checks that need no GPU, `--gpu auto` on a host without one) and `gpu` (the
full suite with `--gpu required`); `gpu` implies `cpu`.
A record comes from `torchstack check` or from `torchstack record import` (a report of a
Kubernetes Job); an imported one says where it came from (`source`) and on what node (`node`).
A multi-node NCCL run is kept with scope `multinode`: its figures stay with the image, but it
ran one check only, so it never stands for a level.
Records live in `.torchstack/records/` beside matrix.yaml, one JSON file per image ID, written
atomically (temp file + rename) so an interrupted run never leaves half a record.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from torchstack.config.model import CheckLevel, Matrix
from torchstack.workspace.files import write_text
from torchstack.workspace.json_types import JSONObject
from torchstack.workspace.paths import records_dir

LEVEL_RANK = {"cpu": 1, "gpu": 2}
Scope = Literal["suite", "multinode"]


@dataclass(frozen=True)
class CheckRecord:
    image_id: str  # the torchstack id, e.g. torch2.9.1-cu128-py3.11-base
    docker_id: str  # sha256:... of the exact image the checks ran in
    input_hash: str
    suite_version: str
    level: CheckLevel
    passed: bool
    facts: JSONObject  # versions read inside the image (torch, cuda, cudnn, nccl, python)
    summary: dict[str, int]
    report: str  # path of the run's report.json
    checked_at: float = field(default_factory=time.time)  # when it was checked (default: now)
    # Defaults keep records written before these fields readable.
    scope: Scope = "suite"  # "multinode": the NCCL-across-nodes run alone, never a level
    node: JSONObject = field(default_factory=dict)  # gpu_model, driver, device_count, ...
    source: JSONObject = field(default_factory=dict)  # where an imported report came from
    figures: JSONObject = field(default_factory=dict)  # check id -> metrics, when imported
    # The arch contract the image was judged against (config/contract.py, Contract.to_json).
    contract: Mapping[str, object] = field(default_factory=dict)
    content_id: str = ""  # identity.Content.id of the image; "" in records written before it

    def satisfies(self, level: CheckLevel) -> bool:
        return (self.passed and self.scope == "suite"
                and LEVEL_RANK[self.level] >= LEVEL_RANK[level])


class RecordStore:
    def __init__(self, folder: Path, root: Path | None = None) -> None:
        self.folder = folder
        self.root = root or folder  # writes go through no symlink below it

    @classmethod
    def for_matrix(cls, matrix: Matrix) -> RecordStore:
        return cls(records_dir(matrix.root), matrix.root)

    def _path(self, docker_id: str) -> Path:
        return self.folder / (docker_id.replace("sha256:", "") + ".json")

    def all_for(self, docker_id: str) -> list[CheckRecord]:
        path = self._path(docker_id)
        if not path.exists():
            return []
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
            return [CheckRecord(**row) for row in rows]
        except (ValueError, TypeError):
            return []  # an unreadable record counts as no record: the image is checked again

    def verdict(self, docker_id: str, input_hash: str, suite_version: str,
                level: CheckLevel) -> CheckRecord | None:
        """The newest record of exactly this image, hash and suite at `level` or above.

        The newest decides, pass or fail: an image that passed once and failed since is not
        promoted on the strength of the old pass.
        """
        matching = [r for r in self.all_for(docker_id)
                    if r.scope == "suite" and r.input_hash == input_hash
                    and r.suite_version == suite_version
                    and LEVEL_RANK[r.level] >= LEVEL_RANK[level]]
        return max(matching, key=lambda r: r.checked_at) if matching else None

    def add(self, record: CheckRecord) -> None:
        rows = [asdict(r) for r in self.all_for(record.docker_id)]
        rows.append(asdict(record))
        write_text(self.root, self._path(record.docker_id),
                   json.dumps(rows, indent=2, sort_keys=True))


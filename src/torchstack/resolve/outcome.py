"""One image's check outcome, as the check stage, the records and the reports see it.

No Docker here: check/report.py and resolve/state.py read these without importing the backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from torchstack import checks
from torchstack.checks.result import Report
from torchstack.config.model import CheckLevel, ImageSpec

GpuMode = Literal["required", "auto", "off"]


@dataclass(frozen=True)
class ImageCheck:
    spec: ImageSpec
    docker_id: str | None
    input_hash: str | None
    status: Literal["pass", "fail", "error", "not-built", "cached"]
    message: str
    report: dict[str, Any] | None  # the suite's JSON document, as written to report.json
    duration_s: float
    level: CheckLevel
    # The same document read into the suite's own types (checks.result), when it parsed.
    suite: Report | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("pass", "cached")


def suite_version() -> str:
    return checks.SUITE_VERSION


def level_of(gpu_mode: GpuMode) -> CheckLevel:
    """Only the full suite with a GPU required earns the `gpu` level."""
    return "gpu" if gpu_mode == "required" else "cpu"

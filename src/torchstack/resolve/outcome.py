"""One image's check outcome, as the check stage, the records and the reports see it.

No Docker here: check/report.py and resolve/state.py read these without importing the backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Required, TypedDict

from torchstack import checks
from torchstack.checks.result import Report
from torchstack.config.model import CheckLevel, ImageSpec
from torchstack.workspace.json_types import JSON, JSONObject

GpuMode = Literal["required", "auto", "off"]
Status = Literal["pass", "fail", "error", "not-built", "cached"]


class SuiteCheck(TypedDict, total=False):
    """One check in the suite's report document (checks.result.CheckResult.to_dict)."""

    id: Required[str]
    status: str
    message: str
    duration_s: float
    metrics: dict[str, JSON]  # name -> {"value": ..., "unit": ...}


class SuiteDocument(TypedDict, total=False):
    """The suite's report document (checks.result.Report.to_dict), the keys the host reads;
    checks.result.parse_report has checked its shape before the host keeps it."""

    suite_version: str
    image_id: str | None
    image_digest: str | None
    node: JSONObject
    facts: JSONObject
    checks: list[SuiteCheck]
    summary: dict[str, int]
    ok: bool


@dataclass(frozen=True)
class ImageCheck:
    spec: ImageSpec
    docker_id: str | None
    input_hash: str | None
    status: Status
    message: str
    report: SuiteDocument | None  # the suite's JSON document, as written to report.json
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

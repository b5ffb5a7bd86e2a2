"""Result types of the suite and the JSON document they become.

A check returns an `Outcome`; the runner adds the id and the duration (`CheckResult`); the
CLI wraps everything in a `Report`. Only `Report.to_json` decides the wire shape, so the host's
parser has one place to agree with.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pass", "fail", "skip", "error"]
STATUSES: tuple[Status, ...] = ("pass", "fail", "skip", "error")

# JSON-able fact values; kept loose because facts mix strings, ints, lists and null.
Facts = dict[str, Any]


@dataclass(frozen=True)
class Metric:
    """One number with its unit, e.g. Metric(612.3, "TFLOP/s")."""

    value: float
    unit: str

    def to_dict(self) -> dict[str, Any]:
        # NaN/inf are not JSON; a metric that could not be measured is null.
        value: float | None = self.value if math.isfinite(self.value) else None
        if value is not None:
            value = round(value, 6)
        return {"value": value, "unit": self.unit}


@dataclass(frozen=True)
class Outcome:
    """What a check function returns (and what travels back over the pipe)."""

    status: Status
    message: str
    metrics: Mapping[str, Metric] = field(default_factory=dict)


def passed(message: str, metrics: Mapping[str, Metric] | None = None) -> Outcome:
    return Outcome("pass", message, dict(metrics or {}))


def failed(message: str, metrics: Mapping[str, Metric] | None = None) -> Outcome:
    return Outcome("fail", message, dict(metrics or {}))


def skipped(message: str, metrics: Mapping[str, Metric] | None = None) -> Outcome:
    return Outcome("skip", message, dict(metrics or {}))


def errored(message: str) -> Outcome:
    return Outcome("error", message, {})


@dataclass(frozen=True)
class CheckResult:
    id: str
    status: Status
    message: str
    metrics: Mapping[str, Metric]
    duration_s: float

    @classmethod
    def from_outcome(cls, check_id: str, outcome: Outcome, duration_s: float) -> CheckResult:
        return cls(check_id, outcome.status, outcome.message, dict(outcome.metrics), duration_s)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "message": self.message,
            "metrics": {name: m.to_dict() for name, m in self.metrics.items()},
            "duration_s": round(self.duration_s, 3),
        }


def summarize(results: list[CheckResult]) -> dict[str, int]:
    counts: dict[str, int] = {status: 0 for status in STATUSES}
    for result in results:
        counts[result.status] += 1
    return counts


def is_ok(results: list[CheckResult]) -> bool:
    """The exit-code rule: ok only if no check failed or errored (skips are fine)."""
    return all(r.status not in ("fail", "error") for r in results)


def exit_code(results: list[CheckResult]) -> int:
    return 0 if is_ok(results) else 1


@dataclass(frozen=True)
class Report:
    suite_version: str
    image_id: str | None
    gpu_mode: str
    gpu_present: bool
    facts: Facts
    results: list[CheckResult]

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite_version": self.suite_version,
            "image_id": self.image_id,
            "gpu_mode": self.gpu_mode,
            "gpu_present": self.gpu_present,
            "facts": self.facts,
            "checks": [r.to_dict() for r in self.results],
            "summary": summarize(self.results),
            "ok": is_ok(self.results),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

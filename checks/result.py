"""Result types of the suite and the JSON document they become.

A check returns an `Outcome`; the runner adds the id and the duration (`CheckResult`); the
CLI wraps everything in a `Report`. Only `Report.to_dict` decides the wire shape, and
`parse_report` reads it back into the same types, so the host (torchstack.check.container) parses
with this module instead of keeping its own idea of the document. Plain standard library, no
torch import: the host imports it as `checks.result`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .frame import MAX_INT

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
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for result in results:
        counts[result.status] += 1
    return counts


def is_ok(results: list[CheckResult]) -> bool:
    """The exit-code rule: ok only if no check failed or errored (skips are fine)."""
    return all(r.status not in ("fail", "error") for r in results)


def exit_code(results: list[CheckResult]) -> int:
    return 0 if is_ok(results) else 1


@dataclass(frozen=True)
class Node:
    """Where the suite ran: recorded with the report, so a figure can be traced to a machine."""

    gpu_model: str | None = None
    driver: str | None = None
    device_count: int = 0
    hostname: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpu_model": self.gpu_model,
            "driver": self.driver,
            "device_count": self.device_count,
            "hostname": self.hostname,
        }


def node_from_facts(facts: Facts, hostname: str | None) -> Node:
    gpus = facts.get("gpus") or []
    model = str(gpus[0].get("name")) if gpus and gpus[0].get("name") else None
    driver = facts.get("driver")
    return Node(model, str(driver) if driver else None, len(gpus), hostname or None)


@dataclass(frozen=True)
class Report:
    suite_version: str
    image_id: str | None
    gpu_mode: str
    gpu_present: bool
    facts: Facts
    results: list[CheckResult]
    image_digest: str | None = None
    node: Node = field(default_factory=Node)
    # When the run ended (Unix seconds): an imported verdict is as new as its run, not its
    # import. None in reports from before it existed.
    finished_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite_version": self.suite_version,
            "finished_at": self.finished_at,
            "image_id": self.image_id,
            "image_digest": self.image_digest,
            "gpu_mode": self.gpu_mode,
            "gpu_present": self.gpu_present,
            "node": self.node.to_dict(),
            "facts": self.facts,
            "checks": [r.to_dict() for r in self.results],
            "summary": summarize(self.results),
            "ok": is_ok(self.results),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    @property
    def ok(self) -> bool:
        return is_ok(self.results)


# --- reading a document back (the host's side) -------------------------------------------------


class ReportError(ValueError):
    """A suite document that does not have the shape `Report.to_dict` writes."""


def _field(obj: Mapping[str, Any], key: str, kinds: tuple[type, ...], where: str,
           optional: bool = False) -> Any:
    if key not in obj:
        if optional:
            return None
        raise ReportError(f"{where}: missing key '{key}'")
    value = obj[key]
    if value is None and optional:
        return None
    if isinstance(value, bool) and bool not in kinds:
        raise ReportError(f"{where}.{key}: expected {kinds[0].__name__}, got bool")
    if not isinstance(value, kinds):
        raise ReportError(
            f"{where}.{key}: expected {kinds[0].__name__}, got {type(value).__name__}"
        )
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise ReportError(f"{where}.{key}: the integer is out of range (at most 2**63-1)")
    if isinstance(value, float) and not math.isfinite(value):
        raise ReportError(f"{where}.{key}: expected a finite number, got {value!r}")
    return value


def _parse_metric(name: str, raw: object, where: str) -> Metric:
    if not isinstance(raw, dict):
        raise ReportError(f"{where}.metrics.{name}: expected an object")
    value = _field(raw, "value", (int, float), f"{where}.metrics.{name}", optional=True)
    unit = _field(raw, "unit", (str,), f"{where}.metrics.{name}")
    return Metric(float("nan") if value is None else float(value), unit)


def _parse_result(raw: object, index: int) -> CheckResult:
    where = f"checks[{index}]"
    if not isinstance(raw, dict):
        raise ReportError(f"{where}: expected an object")
    status = _field(raw, "status", (str,), where)
    if status not in STATUSES:
        raise ReportError(f"{where}.status: {status!r} is not one of {', '.join(STATUSES)}")
    metrics = _field(raw, "metrics", (dict,), where, optional=True) or {}
    return CheckResult(
        id=_field(raw, "id", (str,), where),
        status=status,
        message=_field(raw, "message", (str,), where),
        metrics={name: _parse_metric(name, m, where) for name, m in metrics.items()},
        duration_s=float(_field(raw, "duration_s", (int, float), where)),
    )


def parse_report(doc: object) -> Report:
    """The `Report` a document describes; ReportError names the first key that is wrong.

    Documents from before `node`/`image_digest` existed parse with their defaults.
    """
    if not isinstance(doc, dict):
        raise ReportError(f"the report is a JSON {type(doc).__name__}, not an object")
    checks = _field(doc, "checks", (list,), "report")
    node_raw = _field(doc, "node", (dict,), "report", optional=True) or {}
    node = Node(
        gpu_model=_field(node_raw, "gpu_model", (str,), "node", optional=True),
        driver=_field(node_raw, "driver", (str,), "node", optional=True),
        device_count=_field(node_raw, "device_count", (int,), "node", optional=True) or 0,
        hostname=_field(node_raw, "hostname", (str,), "node", optional=True),
    )
    return Report(
        suite_version=_field(doc, "suite_version", (str,), "report"),
        image_id=_field(doc, "image_id", (str,), "report", optional=True),
        gpu_mode=_field(doc, "gpu_mode", (str,), "report"),
        gpu_present=_field(doc, "gpu_present", (bool,), "report"),
        facts=_field(doc, "facts", (dict,), "report"),
        results=[_parse_result(raw, i) for i, raw in enumerate(checks)],
        image_digest=_field(doc, "image_digest", (str,), "report", optional=True),
        node=node,
        finished_at=_field(doc, "finished_at", (int, float), "report", optional=True),
    )

"""Run the in-container suite (`python -m checks`) in one built image and parse its JSON.

The checks/ package is mounted read-only at /opt/torchstack/checks/checks (PYTHONPATH points at
its parent) and the expect file at /opt/torchstack/expect; the container is removed afterwards,
even on timeout or Ctrl-C (the backend's job). The host never scrapes human text: a missing or
broken JSON document is an error of the run, reported with the tail of the container's stderr.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import checks
from checks.result import Report, ReportError, parse_report
from torchstack.docker_backend import ContainerRun, DockerBackend
from torchstack.expect import expect_for
from torchstack.model import CheckLevel, ImageSpec, Matrix

GpuMode = Literal["required", "auto", "off"]
CHECKS_MOUNT = "/opt/torchstack/checks"
EXPECT_MOUNT = "/opt/torchstack/expect"
STDERR_TAIL = 25


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


def checks_package() -> Path:
    """The `checks` package folder; mounted alone, so nothing else of the host is importable."""
    return Path(checks.__file__).resolve().parent


def level_of(gpu_mode: GpuMode) -> CheckLevel:
    """Only the full suite with a GPU required earns the `gpu` level."""
    return "gpu" if gpu_mode == "required" else "cpu"


def command_for(gpu_mode: GpuMode) -> list[str]:
    return ["python", "-m", "checks", "--json", "--gpu", gpu_mode,
            "--expect", f"{EXPECT_MOUNT}/expect.json"]


def run_suite(backend: DockerBackend, matrix: Matrix, spec: ImageSpec, docker_id: str,
              input_hash: str, gpu_mode: GpuMode, workdir: Path) -> ImageCheck:
    expect_dir = workdir / spec.id
    expect_dir.mkdir(parents=True, exist_ok=True)
    (expect_dir / "expect.json").write_text(json.dumps(expect_for(spec, matrix), indent=2))
    started = time.monotonic()
    run = backend.run_container(
        docker_id,
        command_for(gpu_mode),
        mounts={str(checks_package()): f"{CHECKS_MOUNT}/checks", str(expect_dir): EXPECT_MOUNT},
        env={"PYTHONPATH": CHECKS_MOUNT},
        shm_size=str(matrix.run_options["shm_size"]),
        gpus=gpu_mode == "required" or (gpu_mode == "auto" and backend.can_give_gpus()),
        timeout_s=float(matrix.run_options["timeout_s"]),
    )
    elapsed = time.monotonic() - started
    (expect_dir / "stderr.log").write_text(run.stderr)
    return interpret(spec, docker_id, input_hash, run, elapsed, level_of(gpu_mode))


def interpret(spec: ImageSpec, docker_id: str, input_hash: str, run: ContainerRun,
              elapsed: float, level: CheckLevel) -> ImageCheck:
    """Turn the container's exit and output into a result; pure, so unit tests cover it."""
    def result(status: Any, message: str, report: dict[str, Any] | None) -> ImageCheck:
        return ImageCheck(spec, docker_id, input_hash, status, message, report, elapsed, level)

    tail = "\n".join(run.stderr.strip().splitlines()[-STDERR_TAIL:])
    if run.timed_out:
        return result("error", f"the check suite ran past {elapsed:.0f}s and was stopped;"
                               f" last output:\n{tail}", None)
    try:
        report = json.loads(run.stdout)
        suite = parse_report(report)
    except (ValueError, ReportError) as exc:  # ReportError is a ValueError; named for readers
        return result("error", f"the suite printed no JSON report (exit {run.exit_code}: {exc});"
                               f" stderr:\n{tail}", None)
    if not suite.results:
        return replace(result("fail", "no check ran: an image that proves nothing is not"
                                      " promoted; list checks in its layers' layer.yaml", report),
                       suite=suite)
    failed = [c for c in suite.results if c.status in ("fail", "error")]
    if failed or run.exit_code != 0:
        lines = [f"{c.id}: {c.message}" for c in failed]
        return replace(result("fail", "; ".join(lines) or f"the suite exited {run.exit_code}",
                              report), suite=suite)
    return replace(result("pass", _summary_text(suite), report), suite=suite)


def _summary_text(suite: Report) -> str:
    counts = {status: sum(r.status == status for r in suite.results)
              for status in ("pass", "skip", "fail", "error")}
    return ", ".join(f"{n} {k}" for k, n in counts.items() if n)

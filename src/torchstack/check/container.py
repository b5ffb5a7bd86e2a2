"""Run the in-container suite (`python -m checks`) in one built image and parse its JSON.

The checks/ package is mounted read-only at /opt/torchstack/checks/checks (PYTHONPATH points at
its parent) and the expect file at /opt/torchstack/expect; the container is removed afterwards,
even on timeout or Ctrl-C (the backend's job). The host never scrapes human text: a missing or
broken JSON document is an error of the run, reported with the tail of the container's stderr.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from torchstack import checks
from torchstack.backend.docker import ContainerRun, DockerBackend
from torchstack.checks.frame import loads
from torchstack.checks.result import Report, ReportError, parse_report
from torchstack.config.expected import expect_for
from torchstack.config.model import CheckLevel, ImageSpec, Matrix
from torchstack.errors import CheckError, EngineError
from torchstack.names import CHECKS_ROOT, EXPECT_DIR, EXPECT_FILE
from torchstack.resolve.outcome import (
    GpuMode,
    ImageCheck,
    Status,
    SuiteDocument,
    level_of,
    suite_version,
)
from torchstack.workspace.files import write_text

STDERR_TAIL = 25

# ImageCheck, GpuMode, level_of and suite_version live in resolve/outcome.py (no Docker there).
__all__ = ["GpuMode", "ImageCheck", "checks_package", "command_for", "interpret", "level_of",
           "run_suite", "suite_version"]


def checks_package() -> Path:
    """The `checks` package folder; mounted alone, so nothing else of the host is importable."""
    return Path(checks.__file__).resolve().parent


def command_for(gpu_mode: GpuMode) -> list[str]:
    return ["python", "-m", "checks", "--json", "--gpu", gpu_mode,
            "--expect", f"{EXPECT_DIR}/{EXPECT_FILE}"]


def run_suite(backend: DockerBackend, matrix: Matrix, spec: ImageSpec, docker_id: str,
              input_hash: str, gpu_mode: GpuMode, workdir: Path) -> ImageCheck:
    expect_dir = workdir / spec.id
    write_text(workdir, expect_dir / EXPECT_FILE, json.dumps(expect_for(spec, matrix), indent=2))
    started = time.monotonic()
    try:
        run = _run(backend, matrix, docker_id, gpu_mode, expect_dir)
    except EngineError as exc:  # the stage's failure: exit 5, as any check that cannot run
        raise CheckError(exc.message, tip=exc.tip) from None
    elapsed = time.monotonic() - started
    write_text(workdir, expect_dir / "stderr.log", run.stderr)
    return interpret(spec, docker_id, input_hash, run, elapsed, level_of(gpu_mode))


def _run(backend: DockerBackend, matrix: Matrix, docker_id: str, gpu_mode: GpuMode,
         expect_dir: Path) -> ContainerRun:
    return backend.run_container(
        docker_id,
        command_for(gpu_mode),
        mounts={str(checks_package()): f"{CHECKS_ROOT}/checks", str(expect_dir): EXPECT_DIR},
        env={"PYTHONPATH": CHECKS_ROOT},
        shm_size=matrix.run_options.shm_size,
        gpus=gpu_mode == "required" or (gpu_mode == "auto" and backend.can_give_gpus()),
        timeout_s=matrix.run_options.timeout_s,
    )


def interpret(spec: ImageSpec, docker_id: str, input_hash: str, run: ContainerRun,
              elapsed: float, level: CheckLevel) -> ImageCheck:
    """Turn the container's exit and output into a result; pure, so unit tests cover it."""
    def result(status: Status, message: str, report: SuiteDocument | None) -> ImageCheck:
        return ImageCheck(spec, docker_id, input_hash, status, message, report, elapsed, level)

    tail = "\n".join(run.stderr.strip().splitlines()[-STDERR_TAIL:])
    if run.timed_out:
        return result("error", f"the check suite ran past {elapsed:.0f}s and was stopped;"
                               f" last output:\n{tail}", None)
    try:
        report = loads(run.stdout)  # bounded: a huge number or deep nesting is a ValueError
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

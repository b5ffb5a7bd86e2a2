"""The check stage: run the suite in each requested image a run resolved, keep its record.

An image whose newest record at the asked level passed (same image ID, input hash and suite
version) is not checked again unless forced; its report entry is the one of the run that
passed. Reports (report.json, junit.xml, summary.md) go to the run directory. Never prints:
progress goes to the callbacks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torchstack.backend.docker import DockerBackend
from torchstack.backend.identity import content_of_inspect
from torchstack.check.container import run_suite
from torchstack.check.report import write_reports
from torchstack.config.contract import contract_for
from torchstack.errors import CheckError
from torchstack.resolve.outcome import (
    GpuMode,
    ImageCheck,
    SuiteDocument,
    level_of,
    suite_version,
)
from torchstack.resolve.records import CheckRecord, RecordStore
from torchstack.resolve.state import ImageState, Resolved
from torchstack.workspace.runs import RunDir

NOT_BUILT = "no image matches the current matrix; run `torchstack build` first"


@dataclass(frozen=True)
class CheckRun:
    run: RunDir
    results: tuple[ImageCheck, ...]
    reports: tuple[Path, ...]  # the files written to the run directory

    @property
    def failed(self) -> list[ImageCheck]:
        return [r for r in self.results if not r.ok]

    def error(self, root: Path) -> CheckError | None:
        """What the CLI exits with (5) when an image did not pass; None when all did."""
        if not self.failed:
            return None
        return CheckError(
            f"{len(self.failed)} of {len(self.results)} images did not pass: "
            + ", ".join(f"{r.spec.id} ({r.status})" for r in self.failed),
            tip=f"see {self.run.path.relative_to(root)}/summary.md and report.json")


def check_images(resolved: Resolved, backend: DockerBackend, gpu_mode: GpuMode, run: RunDir,
                 *, force: bool = False, store: RecordStore | None = None,
                 on_start: Callable[[ImageState], None] = lambda state: None,
                 on_result: Callable[[ImageCheck], None] = lambda result: None) -> CheckRun:
    """Check every requested image of `resolved` at the level `gpu_mode` earns."""
    store = store if store is not None else RecordStore.for_matrix(resolved.matrix)
    level = level_of(gpu_mode)
    results: list[ImageCheck] = []
    for state in resolved.requested:
        spec = state.spec
        if state.local_image_id is None or state.input_hash is None:
            result = ImageCheck(spec, None, None, "not-built", NOT_BUILT, None, 0.0, level)
        elif (record := state.records.at(level)) is not None and record.satisfies(level) \
                and not force:
            previous = run.path.parent / record.report
            result = ImageCheck(spec, state.local_image_id, state.input_hash, "cached",
                                f"passed {record.level} checks in run {previous.parent.name};"
                                " --force checks again",
                                _previous_suite(previous, spec.id), 0.0, record.level)
        else:
            on_start(state)
            result = run_suite(backend, resolved.matrix, spec, state.local_image_id,
                               state.input_hash, gpu_mode, run.path / "expect")
            store.add(CheckRecord(
                image_id=spec.id, docker_id=state.local_image_id, input_hash=state.input_hash,
                suite_version=suite_version(), level=level, passed=result.ok,
                facts=(result.report or {}).get("facts", {}),
                summary=(result.report or {}).get("summary", {}),
                report=f"{run.name}/report.json",
                contract=contract_for(spec.torch, spec.cuda).to_json(),
                content_id=content_of_inspect(backend.inspect(state.local_image_id) or {}).id,
            ))
        results.append(result)
        on_result(result)
    return CheckRun(run, tuple(results), tuple(write_reports(run.path, results, run.root)))


def _previous_suite(report_path: Path, image_id: str) -> SuiteDocument | None:
    """The suite's document from the run that passed, so reports still show its figures."""
    try:
        images = json.loads(report_path.read_text(encoding="utf-8"))["images"]
    except (OSError, ValueError, KeyError):
        return None
    return next((i.get("suite") for i in images if i.get("id") == image_id), None)

"""`torchstack check [GLOB] --gpu required|auto|off`: run the suite inside each built image."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from torchstack.build import find_built_with_hash
from torchstack.commands.common import add_selection, matrix_of
from torchstack.docker_backend import DockerBackend
from torchstack.errors import CheckError
from torchstack.records import RecordStore, new_record
from torchstack.report import write_reports
from torchstack.run_checks import ImageCheck, level_of, run_suite, suite_version
from torchstack.runs import create_run


def register(sub: Any) -> None:
    parser = sub.add_parser("check", help="run the check suite inside each built image")
    add_selection(parser)
    parser.add_argument("--gpu", choices=("required", "auto", "off"), default="auto",
                        help="required: no GPU fails (GPU runners); auto: GPU checks run when a"
                             " GPU is there, else skip; off: never touch a GPU (default: auto)")
    parser.add_argument("--force", action="store_true",
                        help="check again even where a passing record exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    matrix = matrix_of(args)
    images = matrix.select(args.globs, everything=args.everything)
    backend = DockerBackend.connect()
    store = RecordStore.for_matrix(matrix)
    level = level_of(args.gpu)
    run_dir = create_run(matrix.root)
    results: list[ImageCheck] = []
    memo: dict[str, str | None] = {}
    for spec in images:
        built = find_built_with_hash(backend, matrix, spec, memo)
        if built is None:
            results.append(ImageCheck(spec, None, None, "not-built",
                                      "no image matches the current matrix; run `torchstack"
                                      " build` first", None, 0.0, level))
            _say(results[-1])
            continue
        docker_id, input_hash = built
        record = store.verdict(docker_id, input_hash, suite_version(), level)
        if record is not None and record.satisfies(level) and not args.force:
            previous = run_dir.path.parent / record.report
            results.append(ImageCheck(spec, docker_id, input_hash, "cached",
                                      f"passed {record.level} checks in run"
                                      f" {previous.parent.name}; --force checks again",
                                      _previous_suite(previous, spec.id), 0.0, record.level))
            _say(results[-1])
            continue
        print(f"check {spec.id} ({docker_id[:19]}) --gpu {args.gpu} ...", flush=True)
        result = run_suite(backend, matrix, spec, docker_id, input_hash, args.gpu,
                           run_dir.path / "expect")
        results.append(result)
        store.add(new_record(
            image_id=spec.id, docker_id=docker_id, input_hash=input_hash,
            suite_version=suite_version(), level=level, passed=result.ok,
            facts=(result.report or {}).get("facts", {}),
            summary=(result.report or {}).get("summary", {}),
            report=f"{run_dir.name}/report.json",
        ))
        _say(result)
    for path in write_reports(run_dir.path, results):
        print(f"wrote {path.relative_to(matrix.root)}")
    failed = [r for r in results if not r.ok]
    if failed:
        raise CheckError(
            f"{len(failed)} of {len(results)} images did not pass: "
            + ", ".join(f"{r.spec.id} ({r.status})" for r in failed),
            tip=f"see {run_dir.path.relative_to(matrix.root)}/summary.md and report.json",
        )
    return 0


def _previous_suite(report_path: Path, image_id: str) -> dict[str, Any] | None:
    """The suite's document from the run that passed, so reports still show its figures."""
    try:
        images = json.loads(report_path.read_text(encoding="utf-8"))["images"]
    except (OSError, ValueError, KeyError):
        return None
    return next((i.get("suite") for i in images if i.get("id") == image_id), None)


def _say(result: ImageCheck) -> None:
    first = result.message.splitlines()[0] if result.message else ""
    stream = sys.stdout if result.ok else sys.stderr
    print(f"  {result.status.upper():<9} {result.spec.id:<34} {result.duration_s:5.1f}s  {first}",
          file=stream, flush=True)

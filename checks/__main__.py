"""CLI: python -m checks --json [--frame] [--gpu required|auto|off] [--expect FILE] [--only ID]

Exit codes: 0 every selected check passed or skipped; 1 some check failed or errored;
2 bad usage or an unreadable/invalid expect file (one line on stderr, no traceback).
In --json mode stdout carries only the JSON document; progress goes to stderr. With --frame
the document is one line between marker lines with its sha256 (checks/frame.py), so a report
read back from a pod log can be told complete from cut short.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

from . import SUITE_VERSION
from .expect import Expect, ExpectError, load_expect
from .facts import gather_facts
from .frame import frame
from .registry import ALL_CHECKS, CHECK_IDS, SelectionError, select
from .result import CheckResult, Report, exit_code, node_from_facts
from .runner import run_checks
from .spec import GPU_MODES, CheckContext, GpuMode, log

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, no usage block: the host logs stderr verbatim.
        self.exit(EXIT_USAGE, f"checks: error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m checks", description="In-container image checks.")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.add_argument(
        "--gpu",
        choices=GPU_MODES,
        default="auto",
        help="required: no GPU fails the GPU checks; auto: run them if a GPU "
        "is present; off: never touch the GPU (default: auto)",
    )
    parser.add_argument(
        "--frame",
        action="store_true",
        help="with --json: print the document as one checksummed line between marker lines",
    )
    parser.add_argument("--expect", metavar="FILE", help="expect file written by the host")
    parser.add_argument("--only", metavar="ID[,ID]", help="run only these check ids")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    return parser


def _list_checks() -> str:
    rows = [f"{'id':<9} {'layers':<7} {'gpu':<7} {'timeout':>7}  summary"]
    rows += [f"{spec.id:<9} {','.join(spec.layers):<7} {spec.needs_gpu!s:<7} "
             f"{spec.timeout_s:>6g}s  {spec.summary}" for spec in ALL_CHECKS]
    return "\n".join(rows)


def _text(report: Report) -> str:
    lines = [
        f"checks {report.suite_version} image={report.image_id} gpu={report.gpu_mode} "
        f"gpu_present={report.gpu_present}"
    ]
    lines += [f"{r.status.upper():<5} {r.id:<9} {r.duration_s:6.2f}s  {r.message}"
              for r in report.results]
    summary = report.to_dict()["summary"]
    lines.append(" ".join(f"{k}={v}" for k, v in summary.items()))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.list:
        print(_list_checks())
        return 0
    gpu_mode: GpuMode = args.gpu
    if args.frame and not args.json:
        print("checks: error: --frame needs --json (see --help)", file=sys.stderr)
        return EXIT_USAGE
    try:
        expect = load_expect(args.expect, CHECK_IDS) if args.expect else Expect()
        only = args.only.split(",") if args.only is not None else None
        if only is not None and not any(i.strip() for i in only):
            raise SelectionError("--only needs at least one check id")
        specs = select(expect, only)
    except (ExpectError, SelectionError) as exc:
        print(f"checks: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    started = time.monotonic()
    facts, gpu_present, facts_problem = gather_facts(gpu_mode)
    facts_seconds = time.monotonic() - started
    log(
        f"facts: torch={facts['torch']} cuda={facts['cuda']} gpus={len(facts['gpus'])}; "
        f"running {', '.join(s.id for s in specs) or 'nothing'}"
    )
    ctx = CheckContext(gpu_mode=gpu_mode, gpu_present=gpu_present, expect=expect, facts=facts)
    results = run_checks(specs, ctx)
    if facts_problem is not None:  # reported as an extra "facts" entry so it fails the run
        results.insert(0, CheckResult("facts", "error", facts_problem, {}, facts_seconds))
    report = Report(
        SUITE_VERSION,
        expect.image_id,
        gpu_mode,
        gpu_present,
        facts,
        results,
        image_digest=expect.image_digest,
        node=node_from_facts(facts, socket.gethostname()),
        finished_at=time.time(),
    )
    if args.frame:
        text = frame(report.to_dict())
    else:
        text = report.to_json() if args.json else _text(report)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return exit_code(results)


if __name__ == "__main__":
    sys.exit(main())

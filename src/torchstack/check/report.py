"""Check results -> report.json, junit.xml and summary.md in the run directory."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from torchstack.resolve.outcome import ImageCheck
from torchstack.workspace.files import write_text

# Metrics worth a column in summary.md: (check id, metric name, column title).
HEADLINE_METRICS = (
    ("matmul", "bf16_tflops", "bf16 TFLOP/s"),
    ("matmul", "bf16_fraction_of_peak", "bf16 / peak"),
    ("matmul", "tf32_tflops", "tf32 TFLOP/s"),
    ("matmul", "fp32_cpu_gflops", "CPU GFLOP/s"),
    ("nccl", "peak_busbw", "NCCL busbw GB/s"),
)
MARK = {"pass": "pass", "fail": "**FAIL**", "error": "**ERROR**", "skip": "skip"}


def report_json(results: list[ImageCheck]) -> dict[str, object]:
    return {
        "images": [
            {
                "id": r.spec.id,
                "docker_id": r.docker_id,
                "input_hash": r.input_hash,
                "status": r.status,
                "level": r.level,
                "message": r.message,
                "duration_s": round(r.duration_s, 3),
                "suite": r.report,
            }
            for r in results
        ],
        "ok": all(r.ok for r in results),
    }


def junit_xml(results: list[ImageCheck]) -> str:
    suites = ET.Element("testsuites", name="torchstack check")
    for r in results:
        checks = (r.report or {}).get("checks", [])
        suite = ET.SubElement(suites, "testsuite", name=r.spec.id, tests=str(max(len(checks), 1)),
                              time=f"{r.duration_s:.3f}")
        if not checks:  # the suite did not run or printed nothing: one case says why
            case = ET.SubElement(suite, "testcase", classname=r.spec.id, name="suite")
            if not r.ok:
                ET.SubElement(case, "error", message=r.message[:200]).text = r.message
            continue
        for check in checks:
            case = ET.SubElement(suite, "testcase", classname=r.spec.id, name=check["id"],
                                 time=f"{float(check.get('duration_s', 0)):.3f}")
            status, message = check.get("status"), str(check.get("message", ""))
            if status in ("fail", "error"):
                tag = "failure" if status == "fail" else "error"
                ET.SubElement(case, tag, message=message[:200]).text = message
            elif status == "skip":
                ET.SubElement(case, "skipped", message=message)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def summary_md(results: list[ImageCheck]) -> str:
    check_ids = list(dict.fromkeys(
        c["id"] for r in results for c in (r.report or {}).get("checks", [])))
    metric_cols = [m for m in HEADLINE_METRICS if _metric(results, m[0], m[1])]
    header = ["image", "result", *check_ids, *(title for _, _, title in metric_cols)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        by_id = {c["id"]: c for c in (r.report or {}).get("checks", [])}
        cells = [f"`{r.spec.id}`", MARK.get(r.status, r.status)]
        cells += [MARK.get(by_id[c]["status"], "-") if c in by_id else "-" for c in check_ids]
        cells += [_format(_metric([r], check, name)) for check, name, _ in metric_cols]
        lines.append("| " + " | ".join(cells) + " |")
    problems = [r for r in results if not r.ok]
    if problems:
        lines += ["", "Problems:", ""]
        lines += [f"- `{r.spec.id}`: {r.message.splitlines()[0] if r.message else r.status}"
                  for r in problems]
    return "\n".join(lines) + "\n"


def _metric(results: list[ImageCheck], check_id: str, name: str) -> float | None:
    for r in results:
        for check in (r.report or {}).get("checks", []):
            metric = check.get("metrics", {}).get(name) if check["id"] == check_id else None
            value = metric.get("value") if isinstance(metric, dict) else None
            if isinstance(value, int | float):
                return float(value)
    return None


def _format(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def write_reports(run_path: Path, results: list[ImageCheck],
                  root: Path | None = None) -> list[Path]:
    """Write the three files (the CLI adds summary.md to a CI job summary)."""
    files = {
        "report.json": json.dumps(report_json(results), indent=2, sort_keys=True) + "\n",
        "junit.xml": junit_xml(results),
        "summary.md": summary_md(results),
    }
    written = []
    for name, text in files.items():
        path = run_path / name
        write_text(root or run_path, path, text)
        written.append(path)
    return written

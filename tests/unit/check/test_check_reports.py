"""report.json, junit.xml and summary.md from check results."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.paths import REPO
from torchstack.check.container import ImageCheck
from torchstack.check.report import junit_xml, summary_md, write_reports
from torchstack.commands.common import add_step_summary
from torchstack.config.matrix import load_matrix
from torchstack.resolve.outcome import SuiteCheck, SuiteDocument
from torchstack.settings import Settings


def suite(**statuses: str) -> SuiteDocument:
    checks: list[SuiteCheck] = [{"id": cid, "status": st, "message": f"{cid} said {st}",
                                 "duration_s": 0.5, "metrics": {}}
                                for cid, st in statuses.items()]
    return {"checks": checks, "facts": {}, "summary": {}, "ok": "fail" not in statuses.values()}


@pytest.fixture
def results() -> list[ImageCheck]:
    matrix = load_matrix(REPO / "matrix.yaml")
    base, vision, nlp = (matrix.by_id()[f"torch2.9.1-cu128-py3.11-{f}"]
                         for f in ("base", "vision", "nlp"))
    good = suite(versions="pass", cuda="skip", matmul="pass")
    good["checks"][2]["metrics"] = {"fp32_cpu_gflops": {"value": 123.4, "unit": "GFLOP/s"}}
    return [
        ImageCheck(base, "sha256:a", "h", "pass", "ok", good, 3.0, "cpu"),
        ImageCheck(vision, "sha256:b", "h", "fail", "shm: too small",
                   suite(versions="pass", shm="fail", vision="error"), 4.0, "cpu"),
        ImageCheck(nlp, None, None, "not-built", "run torchstack build first", None, 0.0, "cpu"),
    ]


def test_junit_has_one_case_per_check_with_failures_and_skips(results: list[ImageCheck]) -> None:
    root = ET.fromstring(junit_xml(results))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [r.spec.id for r in results]
    base_cases = suites[0].findall("testcase")
    assert [c.get("name") for c in base_cases] == ["versions", "cuda", "matmul"]
    assert base_cases[1].find("skipped") is not None
    vision_cases = {c.get("name"): c for c in suites[1].findall("testcase")}
    failure = vision_cases["shm"].find("failure")
    assert failure is not None and failure.get("message") == "shm said fail"
    assert vision_cases["vision"].find("error") is not None
    error = suites[2].find("testcase/error")
    assert error is not None and error.text == "run torchstack build first"


def test_summary_is_an_image_by_check_table_with_figures(results: list[ImageCheck]) -> None:
    text = summary_md(results)
    header = text.splitlines()[0]
    assert header.startswith("| image | result | versions | cuda | matmul | shm | vision |")
    assert "CPU GFLOP/s" in header
    base_row = next(line for line in text.splitlines() if "py3.11-base" in line)
    assert "123.4" in base_row
    assert "**FAIL**" in next(line for line in text.splitlines() if "vision`" in line)
    assert "Problems:" in text and "shm: too small" in text


def test_write_reports_and_the_cli_appends_the_github_step_summary(
        results: list[ImageCheck], tmp_path: Path) -> None:
    step_summary = tmp_path / "step.md"
    step_summary.write_text("earlier\n")
    written = write_reports(tmp_path, results)
    assert sorted(p.name for p in written) == ["junit.xml", "report.json", "summary.md"]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] is False
    assert [i["status"] for i in report["images"]] == ["pass", "fail", "not-built"]
    assert step_summary.read_text() == "earlier\n"  # the stage writes only the run's files
    settings = Settings.from_environ({"GITHUB_STEP_SUMMARY": str(step_summary)})
    add_step_summary(settings, "torchstack check", tmp_path / "summary.md")
    appended = step_summary.read_text()
    assert appended.startswith("earlier\n## torchstack check\n")
    assert appended.endswith((tmp_path / "summary.md").read_text() + "\n")
    add_step_summary(Settings.from_environ({}), "torchstack check", tmp_path / "summary.md")
    assert step_summary.read_text() == appended  # no job summary outside CI

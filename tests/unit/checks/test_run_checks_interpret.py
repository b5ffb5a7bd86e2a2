"""The host reads the suite's document into the suite's own types (checks.result.Report)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.paths import REPO
from torchstack.backend.docker import ContainerRun
from torchstack.check.container import interpret
from torchstack.checks.result import CheckResult, Metric, Node, Report
from torchstack.config.matrix import load_matrix
from torchstack.config.model import ImageSpec


@pytest.fixture(scope="module")
def spec() -> ImageSpec:
    return load_matrix(REPO / "matrix.yaml").images[0]


def _doc(*results: CheckResult) -> dict[str, Any]:
    report = Report("1.0.0", "img", "off", False, {"torch": "2.9.1"}, list(results),
                    node=Node(hostname="h"))
    return report.to_dict()


def _run(doc: object, code: int = 0) -> ContainerRun:
    return ContainerRun(code, json.dumps(doc), "[checks 1] progress\n", False)


def test_a_passing_document_is_typed(spec: ImageSpec) -> None:
    ok = CheckResult("shm", "pass", "fine", {"shm_total": Metric(2e9, "bytes")}, 0.1)
    skip = CheckResult("cuda", "skip", "no GPU", {}, 0.0)
    result = interpret(spec, "sha256:x", "h", _run(_doc(ok, skip)), 1.0, "cpu")
    assert result.status == "pass" and result.message == "1 pass, 1 skip"
    assert result.suite is not None and result.suite.results[0] == ok
    assert result.suite.node.hostname == "h"
    assert result.report is not None and result.report["checks"][0]["id"] == "shm"


def test_failures_are_named_from_the_typed_results(spec: ImageSpec) -> None:
    bad = CheckResult("compile", "fail", "no C++ compiler found", {}, 0.2)
    result = interpret(spec, "sha256:x", "h", _run(_doc(bad), code=1), 1.0, "cpu")
    assert result.status == "fail" and result.message == "compile: no C++ compiler found"
    assert result.suite is not None and not result.suite.ok


def test_an_empty_run_fails(spec: ImageSpec) -> None:
    result = interpret(spec, "sha256:x", "h", _run(_doc()), 1.0, "cpu")
    assert result.status == "fail" and "no check ran" in result.message


@pytest.mark.parametrize(
    ("stdout", "says"),
    [
        ("not json", "the suite printed no JSON report"),
        (json.dumps([1]), "not an object"),
        (json.dumps({**_doc(), "checks": [{"id": "x", "status": "passed", "message": "",
                                            "metrics": {}, "duration_s": 0}]}),
         "checks[0].status: 'passed'"),
    ],
)
def test_a_malformed_document_is_an_error_naming_the_key(
    spec: ImageSpec, stdout: str, says: str
) -> None:
    run = ContainerRun(0, stdout, "boom\n", False)
    result = interpret(spec, "sha256:x", "h", run, 1.0, "cpu")
    assert result.status == "error" and says in result.message and "boom" in result.message
    assert result.suite is None

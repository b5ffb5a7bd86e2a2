"""Numbers are bounded where they enter: matrix.yaml and layer.yaml, the suite's expect file,
its JSON report and the frame header. Huge, deeply nested or YAML-1.1-surprising numbers are
exit 2 with a message (the suite: its documented one line on stderr), never a traceback."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from checks.__main__ import main as suite_main
from tests.unit.hostileutil import copy_project, run_cli, tree
from torchstack.cluster.report_import import read_report
from torchstack.errors import ConfigError

HUGE = "1" + "0" * 400  # 10**400: float() of it overflows
DIGITS = "9" * 5000  # past Python's 4300-digit int() limit
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


@pytest.mark.parametrize(("value", "words"), [
    pytest.param("1:30", "base-60 number (it would read as 90)", id="sexagesimal"),
    pytest.param("0700", "leading zero, which YAML 1.1 reads as octal", id="octal"),
    pytest.param(HUGE, "out of range", id="10**400"),
    pytest.param(DIGITS, "out of range", id="5000-digits"),
])
def test_a_surprising_or_huge_yaml_number_is_exit_2(
        project: Path, capsys: pytest.CaptureFixture[str], value: str, words: str) -> None:
    matrix = project / "matrix.yaml"
    matrix.write_text(matrix.read_text().replace("timeout_s: 900", f"timeout_s: {value}", 1))
    before = tree(project)
    code, err = run_cli(capsys, "--matrix", str(matrix), "render")
    assert code == 2, err
    assert "error: matrix.yaml:" in err and "(checks.timeout_s)" in err and words in err, err
    assert tree(project) == before


def test_a_huge_threshold_in_matrix_yaml_is_exit_2(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    matrix = project / "matrix.yaml"
    matrix.write_text(matrix.read_text().replace("shm_min_bytes: 1073741824",
                                                 f"shm_min_bytes: {HUGE}", 1))
    code, err = run_cli(capsys, "--matrix", str(matrix), "plan")
    assert code == 2 and "shm_min_bytes" in err, err


@pytest.mark.parametrize("document", [
    pytest.param('{"thresholds": {"matmul_min_fraction_of_peak": ' + HUGE + "}}", id="10**400"),
    pytest.param('{"thresholds": {"shm_min_bytes": ' + DIGITS + "}}", id="5000-digits"),
    pytest.param('{"expected": {"cudnn": "' + "\u0661" * 3 + '"}}', id="arabic-digits"),
    pytest.param(DEEP, id="100000-deep"),
])
def test_the_suite_refuses_a_hostile_expect_file_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], document: str) -> None:
    path = tmp_path / "expect.json"
    path.write_text(document)
    code = suite_main(["--json", "--gpu", "off", "--expect", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("checks: error: "), err
    assert len(lines[0]) < 400


def framed(line: str, *, size: str | None = None, version: str = "1") -> str:
    data = line.encode()
    digest = hashlib.sha256(data).hexdigest()
    begin = (f"==== TORCHSTACK-REPORT BEGIN v{version} sha256={digest}"
             f" bytes={size or len(data)} ====")
    return f"{begin}\n{line}\n==== TORCHSTACK-REPORT END ===="


REPORT = {"suite_version": "1", "gpu_mode": "required", "gpu_present": True, "facts": {},
          "checks": [{"id": "versions", "status": "pass", "message": "ok", "duration_s": 1.0}]}


@pytest.mark.parametrize("text", [
    pytest.param(framed(json.dumps(REPORT).replace('"duration_s": 1.0', f'"duration_s": {HUGE}')),
                 id="10**400-in-the-report"),
    pytest.param(framed(json.dumps(REPORT).replace('"duration_s": 1.0',
                                                   f'"duration_s": {DIGITS}')),
                 id="5000-digits-in-the-report"),
    pytest.param(framed('{"a": ' + DEEP + "}"), id="100000-deep-report"),
    pytest.param(framed(json.dumps(REPORT), size=DIGITS), id="5000-digit-frame-size"),
    pytest.param(framed(json.dumps(REPORT), version="\u0661"), id="arabic-digit-frame-version"),
])
def test_a_hostile_report_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        read_report(text, "report.txt")
    assert caught.value.exit_code == 2
    assert caught.value.message.startswith("report.txt: ")
    assert len(caught.value.message) < 400

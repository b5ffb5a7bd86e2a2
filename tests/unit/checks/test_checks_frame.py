"""Report framing (contract in /tmp/contracts.md) and reading a report back into its types."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from torchstack import checks
from torchstack.checks.frame import END, FrameError, frame, unframe
from torchstack.checks.result import (
    CheckResult,
    Metric,
    Node,
    Report,
    ReportError,
    parse_report,
)

DOC: dict[str, Any] = {"b": [1, 2], "a": "ünïcode", "ok": True}


def test_frame_is_three_lines_with_checksum_and_byte_count_of_the_json_line() -> None:
    begin, line, end = frame(DOC).split("\n")
    assert line == json.dumps(DOC, separators=(",", ":"), sort_keys=True)
    data = line.encode("utf-8")
    assert begin == (
        f"==== TORCHSTACK-REPORT BEGIN v1 sha256={hashlib.sha256(data).hexdigest()} "
        f"bytes={len(data)} ===="
    )
    assert line.isascii()  # the contract's json.dumps escapes non-ASCII (ensure_ascii)
    assert end == "==== TORCHSTACK-REPORT END ===="


def test_unframe_finds_the_frame_among_other_log_lines() -> None:
    text = f"starting\n[checks 7] log line\n{frame(DOC)}\ntrailing noise\n"
    assert unframe(text) == DOC
    assert unframe(frame(DOC).replace("\n", "\r\n")) == DOC  # a CRLF log


def test_the_last_complete_frame_wins() -> None:
    newer = {**DOC, "attempt": 2}
    assert unframe(frame(DOC) + "\n" + frame(newer)) == newer


@pytest.mark.parametrize(
    ("mangle", "says"),
    [
        (lambda t: t.rsplit("\n", 1)[0], "truncated: no END line"),  # END line lost
        (lambda t: t[: t.index("\n") + 20], "truncated"),  # cut in the JSON line
        (lambda t: t.replace('"b":[1,2]', '"b":[1,3]'), "checksum mismatch"),
        (lambda t: t.replace('"b":[1,2]', '"b":[1,22]'), "header says"),
        (lambda t: t.replace("sha256=", "sha256=0"), "malformed BEGIN line"),
        (lambda t: t.replace("BEGIN v1", "BEGIN v2"), "v2 is not understood"),
        (lambda t: "no frame here", "no TORCHSTACK-REPORT BEGIN line"),
    ],
)
def test_damaged_frames_are_refused(mangle: Any, says: str) -> None:
    with pytest.raises(FrameError, match=says):
        unframe(mangle(frame(DOC)))


def test_frame_error_is_a_value_error_and_non_objects_are_refused() -> None:
    assert issubclass(FrameError, ValueError)
    line = "[1,2]"
    data = line.encode()
    text = (f"==== TORCHSTACK-REPORT BEGIN v1 sha256={hashlib.sha256(data).hexdigest()} "
            f"bytes={len(data)} ====\n{line}\n{END}")
    with pytest.raises(FrameError, match="not an object"):
        unframe(text)


def test_frame_module_needs_nothing_but_the_standard_library() -> None:
    """The host imports checks.frame: it must not pull in torch or the rest of checks."""
    code = ("import sys; import checks.frame; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('checks.')))")
    parent = str(Path(checks.__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": parent}, check=True).stdout
    assert out.strip() == "['checks.frame']"


REPORT = Report(
    "1.0.0", "img", "required", True, {"torch": "2.9.1+cu128", "gpus": []},
    [CheckResult("matmul", "pass", "ok", {"bf16_tflops": Metric(700.5, "TFLOP/s")}, 1.25),
     CheckResult("nccl", "fail", "slow", {"peak": Metric(float("nan"), "GB/s")}, 2.0)],
    image_digest="sha256:" + "ab" * 32,
    node=Node("NVIDIA H200", "570.86.15", 8, "gpu-node-1"),
)


def test_a_report_survives_framing_and_parsing_into_its_types() -> None:
    back = parse_report(unframe(frame(REPORT.to_dict())))
    assert back.node == REPORT.node and back.image_digest == REPORT.image_digest
    assert back.results[0] == REPORT.results[0]
    assert back.results[1].status == "fail" and back.ok is False
    assert back.results[1].metrics["peak"].unit == "GB/s"  # null value read back as NaN
    assert back.to_dict() == REPORT.to_dict()


def test_an_old_document_without_node_parses_with_defaults() -> None:
    old = REPORT.to_dict()
    del old["node"], old["image_digest"]
    back = parse_report(old)
    assert back.node == Node() and back.image_digest is None


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda d: d.pop("checks"), "report: missing key 'checks'"),
        (lambda d: d["checks"][0].update(status="passed"), "checks[0].status: 'passed'"),
        (lambda d: d["checks"][1].update(duration_s="2"), "checks[1].duration_s: expected"),
        (lambda d: d.update(gpu_present="yes"), "report.gpu_present: expected bool"),
        (lambda d: d["node"].update(device_count=True), "node.device_count: expected int"),
    ],
)
def test_malformed_reports_name_the_key(edit: Any, says: str) -> None:
    doc = json.loads(json.dumps(REPORT.to_dict()))
    edit(doc)
    with pytest.raises(ReportError, match=says.replace("[", r"\[").replace("]", r"\]")):
        parse_report(doc)


def test_cli_frame_output_and_digest_from_the_expect_file(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the in-container suite needs torch")
    expect = tmp_path / "expect.json"
    digest = "sha256:" + "0f" * 32
    expect.write_text(json.dumps({"image_id": "x", "image_digest": digest, "checks": ["shm"]}))
    parent = str(Path(checks.__file__).resolve().parents[1])
    proc = subprocess.run(
        [sys.executable, "-m", "checks", "--json", "--frame", "--gpu", "off",
         "--expect", str(expect)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": parent}, cwd="/",
        timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3 and lines[0].startswith("==== TORCHSTACK-REPORT BEGIN v1 ")
    report = parse_report(unframe(proc.stdout))
    assert report.image_digest == digest and report.image_id == "x"
    assert report.node.device_count == 0 and report.node.hostname
    assert [r.id for r in report.results] == ["shm"]


def test_frame_without_json_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from torchstack.checks.__main__ import main

    assert main(["--frame"]) == 2
    assert "--frame needs --json" in capsys.readouterr().err


def test_bad_image_digest_in_expect_is_refused() -> None:
    from torchstack.checks.expect import ExpectError, parse_expect
    from torchstack.checks.registry import CHECK_IDS

    with pytest.raises(ExpectError, match="image_digest must be 'sha256:'"):
        parse_expect({"image_digest": "sha256:XYZ"}, check_ids=CHECK_IDS)

"""Isolation and timeouts: a hanging check is killed with its workers; errors are reported."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from torchstack.checks.result import CheckResult, Metric, Report, exit_code, passed
from torchstack.checks.runner import gpu_gate, run_checks
from torchstack.checks.spec import CheckContext, CheckSpec, GpuMode, NeedsGpu


def _spec(
    check_id: str, fn: object, timeout_s: float = 10.0, needs_gpu: NeedsGpu = False
) -> CheckSpec:
    return CheckSpec(check_id, ("torch",), needs_gpu, timeout_s, fn)  # type: ignore[arg-type]


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        return text.rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_hanging_check_and_its_worker_are_killed_at_the_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "worker.pid"

    def hang(ctx: CheckContext) -> object:
        worker = subprocess.Popen(["sleep", "120"])  # stands in for an NCCL worker
        pid_file.write_text(str(worker.pid))
        time.sleep(120)
        return passed("never")

    started = time.monotonic()
    [result] = run_checks([_spec("hang", hang, timeout_s=1.0)], CheckContext())
    elapsed = time.monotonic() - started
    assert result.status == "fail"
    assert result.message == "timed out after 1s"
    assert 1.0 <= elapsed < 8.0
    worker_pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(worker_pid), "the check's worker survived its timeout"


def test_raising_check_is_an_error_with_type_and_message() -> None:
    def boom(ctx: CheckContext) -> object:
        raise ValueError("bad tensor")

    [result] = run_checks([_spec("boom", boom)], CheckContext())
    assert result.status == "error"
    assert result.message == "ValueError: bad tensor"


def test_crashing_and_misbehaving_checks_are_errors() -> None:
    def dies(ctx: CheckContext) -> object:
        os._exit(3)

    def wrong_type(ctx: CheckContext) -> object:
        return "pass"

    results = run_checks([_spec("dies", dies), _spec("wrong", wrong_type)], CheckContext())
    assert [r.status for r in results] == ["error", "error"]
    assert "exited with code 3" in results[0].message
    assert "not an Outcome" in results[1].message


def test_passing_check_brings_metrics_back_and_sees_its_timeout() -> None:
    def ok(ctx: CheckContext) -> object:
        return passed(f"timeout {ctx.timeout_s:g}", {"x": Metric(1.5, "s")})

    [result] = run_checks([_spec("ok", ok, timeout_s=7.0)], CheckContext())
    assert result.status == "pass" and result.message == "timeout 7"
    assert result.metrics["x"] == Metric(1.5, "s")


@pytest.mark.parametrize(
    ("needs_gpu", "mode", "present", "status"),
    [
        (True, "auto", False, "skip"),
        (True, "off", True, "skip"),
        (True, "required", False, "fail"),
        (True, "required", True, None),
        (True, "auto", True, None),
        ("partly", "auto", False, None),
        ("partly", "off", True, None),
        ("partly", "required", False, "fail"),
        (False, "required", False, None),
    ],
)
def test_gpu_gate(needs_gpu: NeedsGpu, mode: GpuMode, present: bool, status: str | None) -> None:
    ctx = CheckContext(gpu_mode=mode, gpu_present=present)
    outcome = gpu_gate(_spec("x", lambda c: None, needs_gpu=needs_gpu), ctx)
    assert (outcome.status if outcome else None) == status
    if status == "fail":
        assert outcome is not None and "--gpus all" in outcome.message


def test_required_message_names_a_cpu_only_torch() -> None:
    ctx = CheckContext(gpu_mode="required", facts={"torch": "2.9.1+cpu", "cuda": None})
    outcome = gpu_gate(_spec("x", lambda c: None, needs_gpu=True), ctx)
    assert outcome is not None and "CPU-only build" in outcome.message


def _result(status: str) -> CheckResult:
    return CheckResult("x", status, "m", {}, 0.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("statuses", "code"),
    [([], 0), (["pass", "skip"], 0), (["pass", "fail"], 1), (["error"], 1), (["skip"], 0)],
)
def test_exit_code_rule(statuses: list[str], code: int) -> None:
    assert exit_code([_result(s) for s in statuses]) == code


def test_report_json_shape_and_nan_metric_is_null() -> None:
    results = [
        CheckResult("m", "pass", "ok", {"t": Metric(float("nan"), "s")}, 0.1234),
        _result("skip"),
    ]
    doc = json.loads(Report("1.0.0", "img", "auto", False, {"torch": None}, results).to_json())
    assert list(doc) == [
        "suite_version",
        "finished_at",
        "image_id",
        "image_digest",
        "gpu_mode",
        "gpu_present",
        "node",
        "facts",
        "checks",
        "summary",
        "ok",
    ]
    assert doc["checks"][0]["metrics"]["t"] == {"value": None, "unit": "s"}
    assert doc["checks"][0]["duration_s"] == 0.123
    assert doc["summary"] == {"pass": 1, "fail": 0, "skip": 1, "error": 0}
    assert doc["ok"] is True


def test_hung_gpu_facts_become_an_error_not_a_silent_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch", reason="facts are read from torch")
    from torchstack.checks import facts

    def hang() -> dict[str, object]:
        time.sleep(60)
        return {}

    monkeypatch.setattr(facts, "gpu_facts", hang)
    monkeypatch.setattr(facts, "GPU_FACTS_TIMEOUT_S", 0.5)
    gathered, present, problem = facts.gather_facts("auto")
    assert present is False and gathered["gpus"] == []
    assert problem is not None and "timed out after 0.5s" in problem
    assert gathered["torch"] is not None  # the static facts are still there
    assert facts.gather_facts("off")[2] is None

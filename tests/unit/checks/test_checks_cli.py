"""`python -m checks` end to end on this CPU-only host, as the host runs it in a container:
a subprocess with PYTHONPATH pointing at the directory that holds `checks/`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from torchstack import checks

pytest.importorskip("torch", reason="the in-container suite needs torch (pip install torch)")

PACKAGE_PARENT = Path(checks.__file__).resolve().parents[1]


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_PARENT))
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return subprocess.run(
        [sys.executable, "-m", "checks", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
        cwd="/",  # not the repo: only PYTHONPATH finds `checks`
    )


def by_id(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["id"]: check for check in document["checks"]}


@pytest.fixture(scope="module")
def auto_run() -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    proc = run_cli("--json", "--gpu", "auto")
    return proc, json.loads(proc.stdout)  # stdout must be exactly one JSON document


def test_full_run_document_shape(auto_run: tuple[Any, dict[str, Any]]) -> None:
    proc, doc = auto_run
    assert doc["suite_version"] == checks.SUITE_VERSION
    assert doc["gpu_mode"] == "auto" and doc["gpu_present"] is False
    facts = doc["facts"]
    assert set(facts) == {
        "torch",
        "cuda",
        "cudnn",
        "nccl",
        "python",
        "torchvision",
        "torchaudio",
        "torchcodec",
        "gpus",
        "driver",
    }
    assert doc["image_digest"] is None  # no expect file
    assert doc["node"]["device_count"] == 0 and doc["node"]["gpu_model"] is None
    assert doc["node"]["hostname"]
    import torch

    assert facts["torch"] == torch.__version__ and facts["gpus"] == []
    assert facts["python"].count(".") == 2
    for check in doc["checks"]:
        assert set(check) == {"id", "status", "message", "metrics", "duration_s"}
        assert check["status"] in {"pass", "fail", "skip", "error"} and check["message"]
        for metric in check["metrics"].values():
            assert set(metric) == {"value", "unit"}
    statuses = [c["status"] for c in doc["checks"]]
    assert doc["summary"] == {s: statuses.count(s) for s in ("pass", "fail", "skip", "error")}
    assert doc["ok"] is not any(s in ("fail", "error") for s in statuses)
    assert proc.returncode == (0 if doc["ok"] else 1)
    assert "running" in proc.stderr  # progress went to stderr


def test_full_run_cpu_verdicts(auto_run: tuple[Any, dict[str, Any]]) -> None:
    _, doc = auto_run
    checks_by_id = by_id(doc)
    assert list(checks_by_id)[:8] == [
        "versions",
        "cuda",
        "driver",
        "matmul",
        "nccl",
        "shm",
        "base",
        "hygiene",
    ]
    for gpu_only in ("cuda", "driver"):
        assert checks_by_id[gpu_only]["status"] == "skip"
        assert "none visible" in checks_by_id[gpu_only]["message"]
    matmul = checks_by_id["matmul"]
    assert matmul["status"] == "pass" and "CPU stand-in, no gate" in matmul["message"]
    assert matmul["metrics"]["fp32_cpu_gflops"]["unit"] == "GFLOP/s"
    assert matmul["metrics"]["fp32_cpu_gflops"]["value"] > 0
    nccl = checks_by_id["nccl"]
    assert nccl["status"] == "pass" and "gloo" in nccl["message"]
    assert nccl["metrics"]["world_size"]["value"] == 2
    assert nccl["metrics"]["busbw_16MiB"]["value"] > 0
    assert checks_by_id["versions"]["status"] == "pass"
    assert checks_by_id["base"]["status"] == "pass", checks_by_id["base"]["message"]
    hygiene = checks_by_id["hygiene"]
    dirty = os.getuid() == 0 or hygiene["metrics"]["world_writable_paths"]["value"] > 0
    assert (hygiene["status"] == "fail") is dirty
    # This host has g++ and the Python headers, so the real inductor path must work here.
    compiled = checks_by_id["compile"]
    assert compiled["status"] == "pass", compiled["message"]
    assert compiled["metrics"]["built_objects"]["value"] > 0
    trained = checks_by_id["train"]
    assert trained["status"] == "pass", trained["message"]
    assert trained["metrics"]["loss_after"]["value"] < trained["metrics"]["loss_before"]["value"]
    assert trained["metrics"]["ddp_world_size"]["value"] == 2


def test_gpu_required_without_gpu_fails_and_exits_1() -> None:
    proc = run_cli("--json", "--gpu", "required", "--only", "cuda,shm")
    doc = json.loads(proc.stdout)
    checks_by_id = by_id(doc)
    assert proc.returncode == 1 and doc["ok"] is False
    assert checks_by_id["cuda"]["status"] == "fail"
    assert "no GPU" in checks_by_id["cuda"]["message"]
    assert (
        "--gpus all" in checks_by_id["cuda"]["message"]
        or "CPU-only" in checks_by_id["cuda"]["message"]
    )
    assert checks_by_id["shm"]["status"] == "pass"


def test_expect_file_mismatch_fails_versions(tmp_path: Path) -> None:
    expect = tmp_path / "expect.json"
    expect.write_text(
        json.dumps(
            {
                "image_id": "torch9.9.9-cu999-py3.11",
                "expected": {"torch": "9.9.9+cu999", "python": "2.7"},
                "thresholds": {"shm_min_bytes": 1 << 50},
            }
        )
    )
    proc = run_cli("--json", "--gpu", "off", "--expect", str(expect), "--only", "versions,shm")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1 and doc["image_id"] == "torch9.9.9-cu999-py3.11"
    checks_by_id = by_id(doc)
    versions = checks_by_id["versions"]["message"]
    assert checks_by_id["versions"]["status"] == "fail"
    assert "expected 9.9.9+cu999" in versions and "expected 2.7" in versions
    assert "rebuild the image or re-pin" in versions
    assert checks_by_id["shm"]["status"] == "fail"
    assert "--shm-size" in checks_by_id["shm"]["message"]


def test_passing_selection_exits_0_and_text_mode() -> None:
    proc = run_cli("--gpu", "off", "--only", "shm,driver")
    assert proc.returncode == 0, proc.stderr
    assert "PASS  shm" in proc.stdout and "SKIP  driver" in proc.stdout
    assert "disabled by --gpu off" in proc.stdout


def test_vision_check_runs_when_torchvision_is_installed() -> None:
    pytest.importorskip("torchvision", reason="torchvision is not installed on this host")
    pytest.importorskip("cv2", reason="opencv is not installed on this host")
    from torchstack.checks.spec import CheckContext
    from torchstack.checks.suite import vision

    outcome = vision.run(CheckContext(gpu_mode="off"))
    assert outcome.status == "pass", outcome.message


def test_nlp_check_runs_when_transformers_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("transformers", reason="transformers is not installed on this host")
    pytest.importorskip("torchaudio", reason="torchaudio is not installed on this host")
    from torchstack.checks.spec import CheckContext
    from torchstack.checks.suite import nlp

    # nlp.run switches the hub off in os.environ; let monkeypatch restore it afterwards.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")

    outcome = nlp.run(CheckContext(gpu_mode="off"))
    assert outcome.status == "pass", outcome.message

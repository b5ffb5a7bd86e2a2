"""checks.multinode under a real torchrun: two CPU ranks (gloo) stand in for GPUs on nodes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO


def _torchrun(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("torch")
    expect = tmp_path / "expect.json"
    expect.write_text(json.dumps({"image_id": "x", "thresholds": {"nccl_max_bytes": 2 << 20}}))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "checks.multinode", "--json", "--expect", str(expect), *args],
        capture_output=True, text=True, env=env, timeout=180, check=False)


def test_two_ranks_sum_exactly_and_report_busbw(tmp_path: Path) -> None:
    done = _torchrun(tmp_path, "--backend", "gloo")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    (check,) = report["checks"]
    assert check["id"] == "nccl_multinode"
    assert check["status"] == "pass"
    assert report["facts"]["world_size"] == 2
    metrics = check["metrics"]
    # Two ranks: busbw = algbw * 2(n-1)/n = algbw.
    assert metrics["busbw_2MiB"]["value"] == pytest.approx(metrics["algbw_2MiB"]["value"])


def test_refuses_to_start_outside_torchrun() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-m", "checks.multinode", "--json"], env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "start it with torchrun" in done.stderr
    assert "Traceback" not in done.stderr

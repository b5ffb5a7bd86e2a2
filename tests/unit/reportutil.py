"""Real suite reports for `record import` tests: `python -m checks` run on this host.

The host has torch (CPU only) and no GPU, so `--gpu required` gives a genuine failed report and
`--gpu auto` a genuine auto one. Their stderr is merged into stdout, as a pod log mixes them.
A passing GPU report cannot be produced here: tests/unit/reports/synthetic-*.json stands in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.paths import REPO
from torchstack.checks import SUITE_VERSION
from torchstack.checks.frame import frame

SYNTHETIC = REPO / "tests/unit/reports/synthetic-gpu-pass-h100.json"


def start_suite(expect: Path, gpu: str) -> subprocess.Popen[str]:
    """`python -m checks --json --frame` in the background, stderr into stdout."""
    return subprocess.Popen(
        [sys.executable, "-m", "checks", "--json", "--frame", "--gpu", gpu,
         "--expect", str(expect)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def start_multinode(expect: Path, port: int) -> subprocess.Popen[str]:
    """checks.multinode on 2 local ranks with gloo (its CPU stand-in), as torchrun starts it."""
    torchrun = Path(sys.executable).with_name("torchrun")
    return subprocess.Popen(
        [str(torchrun), "--nnodes", "1", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
         "--master-port", str(port), "-m", "checks.multinode", "--json", "--backend", "gloo",
         "--expect", str(expect)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen[str], timeout_s: float = 300) -> str:
    out, _ = process.communicate(timeout=timeout_s)
    return out


def synthetic(image_id: str, digest: str, **changes: Any) -> dict[str, Any]:
    """The synthetic passing GPU report for one build, at the current suite version."""
    doc: dict[str, Any] = json.loads(SYNTHETIC.read_text(encoding="utf-8"))
    doc.update(image_id=image_id, image_digest=digest, suite_version=SUITE_VERSION, **changes)
    return doc


def reframed(text: str, **changes: Any) -> str:
    """A framed report with some keys changed and framed again, as another suite would write it."""
    from torchstack.checks.frame import unframe
    return frame({**unframe(text), **changes}) + "\n"

"""docs/api.md's example runs as written, in a fresh interpreter: plan and resolve without an
Engine, and the build part stops at the documented DockerUnavailableError when none answers."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.paths import REPO


def example() -> str:
    text = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    blocks: list[str] = re.findall(r"^```python\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)
    (block,) = blocks  # one example: the one this test runs
    return block


def test_the_documented_example_runs_without_an_engine() -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    env["DOCKER_HOST"] = "tcp://127.0.0.1:9"  # nothing listens on port 9
    run = subprocess.run([sys.executable, "-c", example()], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "torch2.9.1-cu128-py3.11-base depth 0 on debian:bookworm-slim" in lines
    assert "torch2.9.1-cu128-py3.11-vision depth 1 on torch2.9.1-cu128-py3.11-base" in lines
    assert lines[-1].startswith("no Docker Engine: cannot reach a Docker Engine")

"""Ctrl-C and SIGTERM during a build: exit 130, no container left, no tag moved."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from tests.integration.dockerutil import last_build
from tests.integration.fixture_matrix import BASE, LOCAL_REPOSITORY, SLEEPY, rerender

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parents[2]
SLEEP_RUNNING = re.compile(r"RUN sleep 600[^\n]*\n ---> Running in ([0-9a-f]{12})\n")


def wait_for_sleep_step(log: Path, process: subprocess.Popen[str], timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the build ended early: {process.communicate()[0]}")
        match = SLEEP_RUNNING.search(log.read_text()) if log.is_file() else None
        if match:
            return match.group(1)
        time.sleep(0.5)
    raise AssertionError(f"the sleep step never started; see {log}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupting_a_build_cleans_up_and_moves_no_tag(
        fixture_copy: Path, docker_api: Any, signum: int) -> None:
    fragment = fixture_copy / "layers/sleepy/Dockerfile.fragment"
    fragment.write_text(f"RUN sleep 600 # {uuid.uuid4().hex}\n")  # never in the build cache
    rerender(fixture_copy)
    tag = f"{LOCAL_REPOSITORY}:{SLEEPY}"
    previous = docker_api.inspect_image(f"{LOCAL_REPOSITORY}:{BASE}")["Id"]
    docker_api.tag(previous, LOCAL_REPOSITORY, SLEEPY, force=True)  # a "previous good" tag
    env = dict(os.environ, PYTHONPATH=f"{REPO / 'src'}{os.pathsep}{REPO}")
    process = subprocess.Popen(
        [sys.executable, "-m", "torchstack", "--matrix", str(fixture_copy / "matrix.yaml"),
         "build", SLEEPY, "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
    try:
        runs = fixture_copy / ".torchstack/runs"
        time.sleep(1)
        log = runs / "latest" / f"{SLEEPY}.build.log"
        container = wait_for_sleep_step(log, process)
        process.send_signal(signum)
        output, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    assert "interrupted" in output
    with pytest.raises(docker.errors.NotFound):
        docker_api.inspect_container(container)
    for started in re.findall(r"Running in ([0-9a-f]{12})", log.read_text()):
        with pytest.raises(docker.errors.NotFound):
            docker_api.inspect_container(started)
    assert docker_api.inspect_image(tag)["Id"] == previous
    build = last_build(fixture_copy)
    assert build["images"][SLEEPY]["status"] == "failed"
    assert build["images"][SLEEPY]["reason"] == "interrupted"
    assert build["images"][BASE]["status"] == "cached"

"""Ctrl-C and SIGTERM to `torchstack build` in the middle of a BuildKit RUN step: exit 130, the
step's process is gone, no container, no image with the build's hash, no tag moved or left
(pins included), no scratch folder or secret left on disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dockerutil import last_build
from tests.integration.fixture_matrix import BASE, LOCAL_REPOSITORY, SLEEPY, rerender
from tests.paths import REPO

pytestmark = pytest.mark.docker


def processes_with(marker: str) -> list[int]:
    """PIDs whose command line holds `marker` (BuildKit's RUN steps are host processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue  # it ended meanwhile
    return found


def files_holding(folder: Path, needle: bytes) -> list[Path]:
    held = []
    for path in folder.rglob("*"):
        try:
            if path.is_file() and needle in path.read_bytes():
                held.append(path)
        except OSError:
            continue
    return held


def wait_until(what: str, ready: Any, process: subprocess.Popen[str],
               timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the build ended before {what}: {process.communicate()[0]}")
        if ready():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupting_a_build_cleans_up_and_moves_no_tag(
        fixture_copy: Path, tmp_path: Path, docker_api: Any, signum: int) -> None:
    marker = uuid.uuid4().hex
    fragment = fixture_copy / "layers/sleepy/Dockerfile.fragment"
    fragment.write_text(f"RUN sleep 600 # {marker}\n")  # never in the build cache
    rerender(fixture_copy)
    tag = f"{LOCAL_REPOSITORY}:{SLEEPY}"
    previous = docker_api.inspect_image(f"{LOCAL_REPOSITORY}:{BASE}")["Id"]
    docker_api.tag(previous, LOCAL_REPOSITORY, SLEEPY, force=True)  # a "previous good" tag
    containers_before = {c["Id"] for c in docker_api.containers(all=True)}
    scratch = tmp_path / "tmp"  # the build's own TMPDIR: its scratch folders land here
    scratch.mkdir()
    secret = f"idx-s3cr3t-{marker[:8]}"
    env = dict(os.environ, PYTHONPATH=f"{REPO / 'src'}{os.pathsep}{REPO}", TMPDIR=str(scratch),
               TORCHSTACK_PIP_INDEX_URL=f"https://user:{secret}@pypi.org/simple")
    process = subprocess.Popen(
        [sys.executable, "-m", "torchstack", "--matrix", str(fixture_copy / "matrix.yaml"),
         "build", SLEEPY, "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
    try:
        wait_until("the sleep step ran", lambda: processes_with(marker), process)
        assert list(scratch.glob("torchstack-build-*")), "no scratch folder while building"
        assert files_holding(scratch, secret.encode()) == []  # the secret went by environment
        process.send_signal(signum)
        output, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    assert f"interrupted while building {SLEEPY}" in output and "Traceback" not in output
    deadline = time.monotonic() + 30  # BuildKit cancels the step once its client went away
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_with(marker) == [], "the RUN step outlived the interrupted build"
    assert list(scratch.iterdir()) == [], "a scratch folder was left behind"
    new = [c for c in docker_api.containers(all=True) if c["Id"] not in containers_before
           and marker in str(c.get("Command"))]
    assert new == []
    build = last_build(fixture_copy)
    entry = build["images"][SLEEPY]
    assert (entry["status"], entry["reason"]) == ("failed", "interrupted")
    assert build["images"][BASE]["status"] == "cached"
    assert docker_api.inspect_image(tag)["Id"] == previous  # the previous good image kept it
    assert docker_api.images(filters={"label": f"io.torchstack.input-hash={entry['input_hash']}"}
                             ) == []  # nothing half-built carries the build's hash
    assert docker_api.images(name=f"{LOCAL_REPOSITORY}-pin:{previous[7:]}") == []
    log = (fixture_copy / ".torchstack/runs/latest" / entry["log"]).read_text()
    assert f"RUN sleep 600 # {marker}" in log and secret not in log

"""Start-up is input too: Ctrl-C while the CLI loads is exit 130, a malformed DOCKER_HOST is
exit 3 (no engine), each with one `error:` line and no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import torchstack
from tests.unit.hostileutil import REPO, run_cli

SRC = str(Path(torchstack.__file__).parents[1])
# Ctrl-C arriving while one module is imported: a meta path finder raises it right there.
HOOK = """
import sys
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            raise KeyboardInterrupt
        return None
sys.meta_path.insert(0, Interrupt())
"""


@pytest.mark.parametrize("module", [
    "torchstack.errors",  # the CLI's own first import
    "torchstack.commands.plan",  # while the verbs load (build_parser)
])
def test_ctrl_c_while_starting_is_exit_130(tmp_path: Path, module: str) -> None:
    (tmp_path / "sitecustomize.py").write_text(HOOK.format(module=module))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), SRC])}
    done = subprocess.run([sys.executable, "-m", "torchstack", "--matrix",
                           str(REPO / "matrix.yaml"), "plan"], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: interrupted")


def test_a_real_sigint_soon_after_start_is_exit_130() -> None:
    env = {**os.environ, "PYTHONPATH": SRC}
    process = subprocess.Popen([sys.executable, "-m", "torchstack", "--matrix",
                                str(REPO / "matrix.yaml"), "plan", "--all"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env=env)
    time.sleep(0.3)  # Python's own SIGINT handler is up; torchstack is still loading
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err


@pytest.fixture
def _no_docker() -> None:
    """Replaces conftest's guard: the real client is made, from a DOCKER_HOST that cannot
    name any engine, so none is ever reached."""


@pytest.mark.parametrize("host", ["tcp://:::", "tcp://[::1", "tcp://host:port"])
def test_a_malformed_docker_host_is_exit_3(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    monkeypatch.setenv("DOCKER_HOST", host)
    code, err = run_cli(capsys, "--matrix", str(REPO / "matrix.yaml"), "check",
                        "torch2.9.1-cu128-py3.11-base")
    assert code == 3, err
    assert err.startswith("error: cannot reach a Docker Engine")

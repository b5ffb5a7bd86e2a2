"""Killing `torchstack promote --push` while it moves release tags (a real process, real signals).

The move is paused between two tags (TORCHSTACK_TEST_PAUSE_BETWEEN_TAGS) so the signal lands in
the middle of it. kill -9 leaves the journal and every tag on the old or the new image; the
next run finishes the move. SIGTERM and Ctrl-C wait for the move to end, then exit 130.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dockerutil import run_cli
from tests.integration.fixture_matrix import ALPHA
from tests.integration.promoteutil import (
    built,
    configure,
    http_config_digest,
    local_id,
    rebuild_alpha,
    skopeo_inspect,
    write_record,
)
from tests.paths import REPO
from torchstack.settings import PAUSE_ENV

pytestmark = [pytest.mark.docker, pytest.mark.registry]
JOURNAL = ".torchstack/promote-journal.json"
TAGS = ("it-2.9.1-cuda12.8-alpha", "2.9-cuda12.8-alpha", "alpha-2.9.1", "alpha-stable")
PAUSE_S = 3


def old_release_then_new_image(root: Path, repository: str, api: Any,
                               capsys: Any) -> tuple[str, str, list[str]]:
    """Release the fixture's alpha image (old), then build a changed alpha that passed (new)."""
    configure(root, more_aliases=("{torch_minor}-cuda{cuda}-{flavor}", "{flavor}-{torch}",
                                  "{flavor}-stable"))
    old, old_hash = built(api, root, ALPHA)
    write_record(root, ALPHA, old, old_hash, "cpu")
    code, output = run_cli(capsys, root, "promote", ALPHA, "--push")
    assert code == 0, output
    refs = [f"{repository}:{tag}" for tag in TAGS]
    assert [http_config_digest(ref) for ref in refs] == [old] * len(refs)
    new = rebuild_alpha(root, capsys)
    write_record(root, ALPHA, new, built(api, root, ALPHA)[1], "cpu")
    return old, new, refs


def promote_until_mid_move(root: Path, repository: str, api: Any, first_ref: str,
                           new: str) -> subprocess.Popen[str]:
    """Start `promote --push` in a process; return once the first release tag has moved."""
    env = dict(os.environ, PYTHONPATH=f"{REPO / 'src'}{os.pathsep}{REPO}",
               TORCHSTACK_REGISTRY=repository, **{PAUSE_ENV: str(PAUSE_S)})
    process = subprocess.Popen(
        [sys.executable, "-m", "torchstack", "--matrix", str(root / "matrix.yaml"), "promote",
         ALPHA, "--push"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"promote ended before the move: {process.communicate()[0]}")
        if (root / JOURNAL).exists() and local_id(api, first_ref) == new:
            return process
        time.sleep(0.1)
    process.kill()
    raise AssertionError("the release move never started")


def test_kill_9_mid_move_leaves_old_or_new_tags_and_the_next_run_finishes(
        fixture_copy: Path, it_repository: str, docker_api: Any, capsys: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    old, new, refs = old_release_then_new_image(fixture_copy, it_repository, docker_api, capsys)
    process = promote_until_mid_move(fixture_copy, it_repository, docker_api, refs[0], new)
    process.kill()
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL

    journal = json.loads((fixture_copy / JOURNAL).read_text())
    [entry] = journal
    variants = entry.pop("variants")
    assert entry == {"image": ALPHA, "docker_id": new, "refs": refs, "push": True,
                     "compression": "gzip", "suffix": "-zstd",
                     "previous": dict.fromkeys(refs, old)}
    # The candidate went first, as gzip; its digest is what the release tags will serve.
    assert list(variants) == ["gzip"] and variants["gzip"].startswith("sha256:")
    local = [local_id(docker_api, ref) for ref in refs]
    assert set(local) == {old, new}, "mid-move: some tags moved, none missing or elsewhere"
    # Tags move locally first and are pushed after: the registry still serves the old image.
    assert [http_config_digest(ref) for ref in refs] == [old] * len(refs)

    monkeypatch.delenv(PAUSE_ENV, raising=False)
    code, output = run_cli(capsys, fixture_copy, "promote", ALPHA, "--push")
    assert code == 0, output
    assert f"resuming the interrupted promotion of {ALPHA}" in output
    assert not (fixture_copy / JOURNAL).exists()
    assert [local_id(docker_api, ref) for ref in refs] == [new] * len(refs)
    assert [http_config_digest(ref) for ref in refs] == [new] * len(refs)
    assert skopeo_inspect(refs[-1])[1] == new


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_or_ctrl_c_mid_move_finish_the_move_then_exit_130(
        fixture_copy: Path, it_repository: str, docker_api: Any, capsys: Any,
        signum: int) -> None:
    _, new, refs = old_release_then_new_image(fixture_copy, it_repository, docker_api, capsys)
    process = promote_until_mid_move(fixture_copy, it_repository, docker_api, refs[0], new)
    started = time.monotonic()
    process.send_signal(signum)
    try:
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    assert "interrupted after finishing the tag move in progress" in output
    assert time.monotonic() - started >= PAUSE_S  # it waited for the rest of the move
    assert "Traceback" not in output
    assert not (fixture_copy / JOURNAL).exists()
    assert [local_id(docker_api, ref) for ref in refs] == [new] * len(refs)
    assert [http_config_digest(ref) for ref in refs] == [new] * len(refs)

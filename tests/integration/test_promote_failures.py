"""What promotion does when something is wrong: a failing or unchecked image, a registry that
is down, a registry that comes back. The release tag users pull never moves past a good image.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dockerutil import run_cli
from tests.integration.fixture_matrix import ALPHA, BASE
from tests.integration.promoteutil import (
    RegistryProxy,
    built,
    configure,
    free_port,
    http_config_digest,
    local_id,
    rebuild_alpha,
    skopeo_inspect,
    untag_repository,
    write_record,
)
from torchstack.settings import PAUSE_ENV

pytestmark = [pytest.mark.docker, pytest.mark.registry]
RELEASE = "it-2.9.1-cuda12.8-alpha"
JOURNAL = ".torchstack/promote-journal.json"


def test_a_failing_image_gets_no_release_tag_and_the_previous_one_stays(
        fixture_copy: Path, it_repository: str, docker_api: Any, capsys: Any) -> None:
    # `versions` fails for real in these images: they hold no torch. Checks are not rendered.
    configure(fixture_copy, checks={"alpha": ["versions", "shm"]})
    good, good_hash = built(docker_api, fixture_copy, ALPHA)
    write_record(fixture_copy, ALPHA, good, good_hash, "cpu")
    code, output = run_cli(capsys, fixture_copy, "promote", ALPHA, "--push")
    assert code == 0, output
    release = f"{it_repository}:{RELEASE}"
    assert http_config_digest(release) == good

    bad = rebuild_alpha(fixture_copy, capsys)
    assert bad != good
    code, output = run_cli(capsys, fixture_copy, "check", ALPHA)
    assert code == 5, output
    assert "versions" in output and ALPHA in output
    code, output = run_cli(capsys, fixture_copy, "promote", ALPHA, "--push")
    assert code == 6, output
    assert "not promoted" in output and "checks failed at level cpu" in output
    bad_hash = docker_api.inspect_image(bad)["Config"]["Labels"]["io.torchstack.input-hash"]
    assert local_id(docker_api, f"{it_repository}:{ALPHA}-{bad_hash[:12]}") is None
    assert http_config_digest(f"{it_repository}:{ALPHA}-{bad_hash[:12]}") is None

    # Built but never checked: refused the same way.
    assert rebuild_alpha(fixture_copy, capsys) not in (good, bad)
    code, output = run_cli(capsys, fixture_copy, "promote", ALPHA, "--push")
    assert code == 6, output
    assert "not checked" in output

    # The release tag still names the good image: here, in the registry, to a second client.
    assert local_id(docker_api, release) == good
    assert http_config_digest(release) == good
    assert skopeo_inspect(release)[1] == good


@pytest.fixture
def offline_repository(docker_api: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A repository on a registry address where nothing listens."""
    repository = f"127.0.0.1:{free_port()}/torchstack-it-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("TORCHSTACK_REGISTRY", repository)
    monkeypatch.setattr("torchstack.release.journal.BACKOFF_S", 0.2)
    yield repository
    untag_repository(docker_api, repository)


def test_a_registry_outage_fails_with_exit_6_and_moves_no_tag(
        fixture_copy: Path, offline_repository: str, docker_api: Any, capsys: Any) -> None:
    docker_id, input_hash = built(docker_api, fixture_copy, ALPHA)
    previous, _ = built(docker_api, fixture_copy, BASE)  # stands for the last good release
    release = f"{offline_repository}:{RELEASE}"
    repository, _, tag = release.rpartition(":")
    docker_api.tag(previous, repository, tag)
    write_record(fixture_copy, ALPHA, docker_id, input_hash, "cpu")
    code, output = run_cli(capsys, fixture_copy, "promote", ALPHA, "--push")
    assert code == 6, output
    assert "error: 1 tags could not be pushed" in output
    assert "attempt 4 of 4 failed" in output
    assert "fix the registry and run `torchstack promote --push` again" in output
    assert "Traceback" not in output
    assert local_id(docker_api, release) == previous
    assert not (fixture_copy / JOURNAL).exists()


def test_a_transient_outage_is_retried_with_backoff(
        fixture_copy: Path, docker_api: Any, capsys: Any, registry: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    name = f"torchstack-it-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("TORCHSTACK_REGISTRY", f"127.0.0.1:{port}/{name}")
    monkeypatch.setattr("torchstack.release.journal.BACKOFF_S", 0.5)
    docker_id, input_hash = built(docker_api, fixture_copy, ALPHA)
    write_record(fixture_copy, ALPHA, docker_id, input_hash, "cpu")
    # Down for the first second after the first push reaches it: the first attempt fails
    # whatever the machine's load, a retry after the backoff gets through.
    proxy = RegistryProxy(port=port, outage_s=1.0)
    try:
        code, output = run_cli(capsys, fixture_copy, "promote", ALPHA, "--push")
    finally:
        proxy.close()
        untag_repository(docker_api, f"{proxy.host}/{name}")
    assert code == 0, output
    assert "attempt 1 of 4 failed" in output and proxy.refused > 0 and proxy.accepted > 0
    # The registry behind the proxy serves what was checked, under both names.
    assert http_config_digest(f"{registry}/{name}:{RELEASE}") == docker_id
    assert http_config_digest(f"{registry}/{name}:{ALPHA}-{input_hash[:12]}") == docker_id


def test_an_outage_after_the_candidate_push_leaves_the_release_tags_as_they_were(
        fixture_copy: Path, docker_api: Any, capsys: Any, registry: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = RegistryProxy()
    repository = f"{proxy.host}/torchstack-it-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("TORCHSTACK_REGISTRY", repository)
    monkeypatch.setattr("torchstack.release.journal.BACKOFF_S", 0.1)
    configure(fixture_copy, aliases=True)
    refs = [f"{repository}:{tag}" for tag in (RELEASE, "2.9-cuda12.8-alpha")]
    try:
        old, old_hash = built(docker_api, fixture_copy, ALPHA)
        write_record(fixture_copy, ALPHA, old, old_hash, "cpu")
        code, output = run_cli(capsys, fixture_copy, "promote", ALPHA, "--push")
        assert code == 0, output
        new = rebuild_alpha(fixture_copy, capsys)
        write_record(fixture_copy, ALPHA, new, built(docker_api, fixture_copy, ALPHA)[1], "cpu")
        # The registry goes down once the candidate is pushed, as the release tags start moving.
        monkeypatch.setenv(PAUSE_ENV, "0.5")
        watcher = threading.Thread(target=close_when, args=(proxy, fixture_copy / JOURNAL))
        watcher.start()
        code, output = run_cli(capsys, fixture_copy, "promote", ALPHA, "--push")
        watcher.join()
        assert code == 6, output
        assert "could not be pushed" in output
        assert [local_id(docker_api, ref) for ref in refs] == [old, old]
        assert [http_config_digest(f"{registry}/{ref.split('/', 1)[1]}") for ref in refs] == [
            old, old]
        assert (fixture_copy / JOURNAL).exists()  # the move is not finished in the registry

        # The registry is back: the next run finishes the move.
        proxy = RegistryProxy(port=proxy.port)
        monkeypatch.delenv(PAUSE_ENV)
        code, output = run_cli(capsys, fixture_copy, "promote", ALPHA, "--push")
        assert code == 0, output
        assert "resuming" in output and not (fixture_copy / JOURNAL).exists()
        assert [local_id(docker_api, ref) for ref in refs] == [new, new]
        assert [http_config_digest(f"{registry}/{ref.split('/', 1)[1]}") for ref in refs] == [
            new, new]
    finally:
        proxy.close()
        untag_repository(docker_api, repository)


def close_when(proxy: RegistryProxy, path: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    proxy.close()

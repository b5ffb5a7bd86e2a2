"""The release move: journal written before, cleared after, signals held during it."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.unit.fakes import EARLIER_IMAGE, TAGGED_IMAGE, FakeTagEngine
from torchstack.backend.credentials import Credentials
from torchstack.backend.docker import DockerBackend
from torchstack.backend.registry import RemoteImage
from torchstack.errors import ConfigError, EngineError, Interrupted, PromoteError
from torchstack.release.journal import Journal, JournalEntry, Promoter
from torchstack.resolve.tags import TagDecision
from torchstack.settings import PAUSE_ENV, Settings
from torchstack.signals import deferred_signals

IMAGE, OLD = TAGGED_IMAGE, EARLIER_IMAGE


def decision(*releases: str) -> TagDecision:
    return TagDecision("img", "repo:img-abc", tuple(releases), "passed")


def test_release_move_is_journaled_then_cleared(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.json")
    fake = FakeTagEngine(journal=journal)
    promoter = Promoter(fake, journal, push=False, on_event=lambda _: None)
    results = promoter.promote(decision("repo:1.0", "repo:latest"), IMAGE)
    assert [r.ref for r in results] == ["repo:img-abc", "repo:1.0", "repo:latest"]
    assert fake.tags == {"repo:img-abc": IMAGE, "repo:1.0": IMAGE, "repo:latest": IMAGE}
    # The candidate is tagged before the journal exists; release tags move under it.
    assert fake.journal_seen == [False, True, True]
    assert not journal.path.exists()


def test_a_left_journal_is_finished_on_the_next_run(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.json")
    journal.write([{"image": "img", "docker_id": IMAGE, "refs": ["repo:1.0", "repo:latest"],
                    "push": False}])
    fake = FakeTagEngine()
    events: list[str] = []
    results = Promoter(fake, journal, push=False, on_event=events.append).resume()
    assert fake.tags == {"repo:1.0": IMAGE, "repo:latest": IMAGE}
    assert [r.ref for r in results] == ["repo:1.0", "repo:latest"]
    assert "resuming" in events[0]
    assert not journal.path.exists()


def test_failed_candidate_push_moves_no_release_tag(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("torchstack.release.journal.BACKOFF_S", 0.0)
    journal = Journal(tmp_path / "journal.json")
    fake = FakeTagEngine(refused=lambda ref: True)
    results = Promoter(fake, journal, push=True, on_event=lambda _: None).promote(
        decision("repo:1.0"), IMAGE)
    assert len(results) == 1 and results[0].error and "registry down" in results[0].error
    assert "repo:1.0" not in fake.tags


def test_signals_are_held_until_the_block_ends() -> None:
    finished: list[Any] = []
    with pytest.raises(Interrupted), deferred_signals("a test step"):
        os.kill(os.getpid(), signal.SIGTERM)
        finished.append("after the signal")
    assert finished == ["after the signal"]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_refused_release_push_puts_local_tags_back_and_keeps_the_journal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("torchstack.release.journal.BACKOFF_S", 0.0)
    logins: list[Credentials] = []

    def fetch(ref: str, *, credentials: Credentials) -> RemoteImage:
        logins.append(credentials)
        return RemoteImage("sha256:" + "d" * 64, IMAGE)

    monkeypatch.setattr("torchstack.release.journal.fetch_manifest", fetch)
    # The candidate's content proof reads blobs (tests/integration/test_promote_zstd.py).
    monkeypatch.setattr("torchstack.release.journal.prove_content",
                        lambda ref, content, credentials: RemoteImage("sha256:" + "d" * 64,
                                                                      IMAGE))
    journal = Journal(tmp_path / "journal.json")
    old = OLD
    fake = FakeTagEngine(refused=lambda ref: not ref.startswith("repo:img-"))
    fake.tags["repo:1.0"] = old  # the previous release; repo:latest did not exist
    results = Promoter(fake, journal, push=True, on_event=lambda _: None).promote(
        decision("repo:1.0", "repo:latest"), IMAGE)
    assert [bool(r.error) for r in results] == [False, True, True]
    assert fake.tags == {"repo:img-abc": IMAGE, "repo:1.0": old}
    assert journal.pending()[0]["previous"] == {"repo:1.0": old, "repo:latest": None}

    fake.refused = lambda ref: False  # the registry is back: the next run finishes the move
    login = Credentials("robot", "s3cret")
    logins.clear()
    results = Promoter(fake, journal, push=True, on_event=lambda _: None,
                       credentials=login).resume()
    assert [r.error for r in results] == [None, None]
    assert logins and set(logins) == {login}  # each registry read goes with the login given
    assert fake.tags == {"repo:img-abc": IMAGE, "repo:1.0": IMAGE, "repo:latest": IMAGE}
    assert not journal.path.exists()


def test_the_journal_keeps_one_entry_per_image(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.json")
    journal.add({"image": "a", "refs": ["repo:a1"]})
    journal.add({"image": "b", "refs": ["repo:b1"]})
    journal.add({"image": "a", "refs": ["repo:a2"]})
    assert [(e["image"], e["refs"]) for e in journal.pending()] == [("b", ["repo:b1"]),
                                                                    ("a", ["repo:a2"])]
    journal.remove("b")
    journal.remove("a")
    assert not journal.path.exists()


def test_a_journal_naming_a_deleted_image_is_dropped_with_an_error(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.json")
    journal.write([{"image": "img", "docker_id": "sha256:" + "d" * 64, "refs": ["repo:1.0"],
                    "push": False, "previous": {"repo:1.0": IMAGE}}])
    fake = FakeTagEngine()
    results = Promoter(fake, journal, push=False, on_event=lambda _: None).resume()
    assert [r.error for r in results] == [f"image sha256:{'d' * 12} no longer exists;"
                                          " move abandoned"]
    assert fake.tags == {}
    assert not journal.path.exists()


# A corrupt or truncated journal: exit 6, the file left in place, --discard-journal the way out.
VALID: list[JournalEntry] = [{"image": "img", "docker_id": IMAGE, "refs": ["repo:1.0"],
                               "push": False, "previous": {"repo:1.0": OLD}}]
CORRUPT = {
    "truncated": json.dumps(VALID, indent=2)[:40],
    "empty": "",
    "not-json": "<<<<<<< HEAD\n[]\n",
    "not-a-list": '{"image": "img"}',
    "entry-not-a-map": "[1]",
    "refs-not-a-list": '[{"image": "img", "refs": "repo:1.0"}]',
    "ref-with-newline": '[{"image": "img", "refs": ["repo:1.0\\nRUN x"]}]',
    "docker-id-not-an-id": '[{"image": "img", "refs": ["repo:1.0"], "docker_id": "rm -rf"}]',
    "previous-not-a-map": '[{"image": "img", "refs": ["repo:1.0"], "previous": [1]}]',
    "not-utf8": "\udcff",
}


@pytest.mark.parametrize("text", CORRUPT.values(), ids=CORRUPT.keys())
def test_a_corrupt_journal_stops_promotion_and_stays_in_place(tmp_path: Path, text: str) -> None:
    path = tmp_path / ".torchstack" / "promote-journal.json"
    path.parent.mkdir()
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    journal = Journal(path, root=tmp_path)
    fake = FakeTagEngine()
    with pytest.raises(PromoteError, match="promote journal") as caught:
        Promoter(fake, journal, push=False, on_event=lambda _: None).resume()
    assert caught.value.exit_code == 6
    assert ".torchstack/promote-journal.json" in caught.value.message
    assert caught.value.tip and "--discard-journal" in caught.value.tip
    assert path.read_bytes() == text.encode("utf-8", "surrogateescape")  # kept, unchanged
    assert fake.tags == {}  # nothing moved


def test_discarding_moves_the_journal_aside_and_promotion_goes_on(tmp_path: Path) -> None:
    path = tmp_path / ".torchstack" / "promote-journal.json"
    path.parent.mkdir()
    path.write_text(CORRUPT["truncated"])
    journal = Journal(path, root=tmp_path)
    aside = journal.discard()
    assert aside is not None and aside.parent == path.parent
    assert aside.name.startswith("promote-journal.discarded-") and aside.suffix == ".json"
    assert aside.read_text() == CORRUPT["truncated"]  # kept for inspection
    assert not path.exists() and journal.pending() == []
    assert Journal(path, root=tmp_path).discard() is None  # nothing left to discard


def test_a_journal_behind_a_symlink_out_of_the_project_is_not_written(tmp_path: Path) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / ".torchstack").symlink_to(elsewhere)
    journal = Journal(project / ".torchstack" / "promote-journal.json", root=project)
    with pytest.raises(ConfigError, match="symlink that leads out of the project"):
        journal.write(VALID)
    assert list(elsewhere.iterdir()) == []


class RefusingEngine(BaseHTTPRequestHandler):
    """A Docker Engine API that refuses every tag with a 500, as a full disk makes it."""

    def do_POST(self) -> None:
        body = json.dumps({"message": "no space left on device"}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


# conftest.py blocks Docker clients so that no unit test reaches the real daemon; this one talks
# to the stand-in server below only, so it takes the client's own constructor back.
_CLIENT_INIT = docker.APIClient.__init__


@pytest.fixture
def refusing_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[DockerBackend]:
    monkeypatch.setattr(docker.APIClient, "__init__", _CLIENT_INIT)
    server = ThreadingHTTPServer(("127.0.0.1", 0), RefusingEngine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api = docker.APIClient(base_url=f"tcp://127.0.0.1:{server.server_port}", version="1.41")
    try:
        yield DockerBackend(api)
    finally:
        api.close()
        server.shutdown()
        server.server_close()


def test_the_backend_raises_its_own_error_when_the_daemon_refuses_a_tag(
        refusing_engine: DockerBackend) -> None:
    with pytest.raises(EngineError, match=r"docker tag sha256:cccc.* repo:1.0 failed: .*no space"):
        refusing_engine.tag(IMAGE, "repo:1.0")


def test_a_daemon_refusing_a_tag_is_a_promote_error(tmp_path: Path,
                                                    refusing_engine: DockerBackend) -> None:
    journal = Journal(tmp_path / "journal.json")
    promoter = Promoter(refusing_engine, journal, push=False, on_event=lambda _: None)
    with pytest.raises(PromoteError, match=r"docker tag .* failed: .*no space left") as caught:
        promoter.promote(decision("repo:1.0"), IMAGE)
    assert caught.value.exit_code == 6


@pytest.mark.parametrize(("text", "seconds"), [("0.5", 0.5), ("", 0.0), ("soon", 0.0),
                                               ("-1", 0.0), ("nan", 0.0)])
def test_the_pause_hook_comes_from_settings(text: str, seconds: float) -> None:
    """The test hook that pauses between release tags is read once, by Settings; a value that
    is no pause is none (it never stops a promotion)."""
    assert Settings.from_environ({PAUSE_ENV: text}).tag_pause_s == seconds
    assert Settings.from_environ({}).tag_pause_s == 0.0

"""`torchstack base bootstrap` logic with a fake backend and a fake debootstrap (no Docker)."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.fixture_matrix import write_fixture_matrix
from tests.paths import REPO
from torchstack.build import bootstrap as bootstrap_module
from torchstack.build.bootstrap import bases_to_bootstrap, bootstrap, import_changes, slim
from torchstack.cli import main
from torchstack.config.model import OsBase
from torchstack.errors import BuildError, ConfigError

BOOKWORM = OsBase("bookworm", "debian:bookworm-slim", "3.11", "bookworm", "http://deb.example")
NOBLE = OsBase("noble", "ubuntu:24.04", "3.12", None, "http://deb.debian.org/debian")


class Backend:
    def __init__(self, existing: str | None = None) -> None:
        self.existing = existing
        self.imported: list[tuple[Path, str, list[str]]] = []

    def image_id(self, ref: str) -> str | None:
        return self.existing

    def import_image(self, tarball: Path, ref: str, changes: list[str]) -> str:
        assert tarball.is_file()
        self.imported.append((tarball, ref, changes))
        return "sha256:new"


def fake_debootstrap(commands: list[list[str]]) -> bootstrap_module.Runner:
    def run(command: list[str], log: Path) -> None:
        commands.append(command)
        if command[0] == "debootstrap":
            rootfs = Path(command[3])
            for path in ("usr/share/doc/bash/copyright", "usr/share/doc/bash/README",
                         "var/lib/apt/lists/deb_Packages", "var/cache/apt/pkgcache.bin",
                         "usr/share/locale/de/LC_MESSAGES/x.mo", "usr/share/locale/locale.alias",
                         "usr/share/man/man1/ls.1.gz", "var/log/dpkg.log", "etc/os-release"):
                (rootfs / path).parent.mkdir(parents=True, exist_ok=True)
                (rootfs / path).write_text("x")
            (rootfs / "etc/dpkg/dpkg.cfg.d").mkdir(parents=True)
            (rootfs / "etc/apt/apt.conf.d").mkdir(parents=True)
        else:
            Path(command[command.index("-cf") + 1]).write_bytes(b"tar")
    return run


def test_bootstrap_runs_debootstrap_minbase_and_imports_under_the_matrix_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: "/usr/sbin/debootstrap")
    commands: list[list[str]] = []
    backend = Backend()
    when = datetime(2026, 12, 3, 0, 51, 17, tzinfo=UTC)  # fixed: the label carries it
    result = bootstrap(backend, BOOKWORM, runner=fake_debootstrap(commands),
                       now=when)
    assert result.created and result.image_id == "sha256:new"
    assert commands[0][:3] == ["debootstrap", "--variant=minbase", "bookworm"]
    assert commands[0][4] == "http://deb.example"
    [(_, ref, changes)] = backend.imported
    assert ref == "debian:bookworm-slim"
    assert changes == import_changes(BOOKWORM, when)[:1] + changes[1:]
    assert 'io.torchstack.bootstrap.created="2026-12-03T00:51:17Z"' in changes[0]
    assert 'io.torchstack.bootstrapped="true"' in changes[0]
    assert 'io.torchstack.bootstrap.suite="bookworm"' in changes[0]
    assert changes[1:] == ["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                           'CMD ["bash"]']


def test_an_existing_image_is_kept_unless_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: "/usr/sbin/debootstrap")
    commands: list[list[str]] = []
    backend = Backend(existing="sha256:old")
    kept = bootstrap(backend, BOOKWORM, runner=fake_debootstrap(commands))
    assert not kept.created and kept.image_id == "sha256:old" and commands == []
    forced = bootstrap(backend, BOOKWORM, force=True,
                       runner=fake_debootstrap(commands))
    assert forced.created and len(backend.imported) == 1


def test_missing_debootstrap_and_missing_bootstrap_entry_are_clear_errors(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(BuildError, match="debootstrap is not installed") as error:
        bootstrap(Backend(), BOOKWORM)
    assert "apt-get install debootstrap" in str(error.value.tip)
    with pytest.raises(ConfigError, match="no `bootstrap:` entry"):
        bootstrap(Backend(), NOBLE)


def test_a_failing_debootstrap_reports_its_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: "/usr/sbin/debootstrap")

    def failing(command: list[str], log: Path) -> None:
        log.write_text("I: Retrieving InRelease\nE: Failed getting release file\n")
        raise subprocess.CalledProcessError(1, command)

    with pytest.raises(BuildError, match=r"(?s)failed.*E: Failed getting release file"):
        bootstrap(Backend(), BOOKWORM, runner=failing)


def test_slim_drops_docs_caches_and_lists(tmp_path: Path) -> None:
    fake_debootstrap([])(["debootstrap", "--variant=minbase", "bookworm", str(tmp_path)],
                         tmp_path / "log")
    slim(tmp_path)
    remaining = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert remaining == ["etc/apt/apt.conf.d/torchstack-clean",
                         "etc/dpkg/dpkg.cfg.d/torchstack-slim", "etc/os-release",
                         "usr/share/doc/bash/copyright", "usr/share/locale/locale.alias"]
    assert (tmp_path / "var/lib/apt/lists/partial").is_dir()


def test_which_bases_and_the_cli_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    matrix = write_fixture_matrix(tmp_path / "m")
    assert [b.name for b in bases_to_bootstrap(matrix, [])] == ["bookworm"]
    with pytest.raises(ConfigError, match="unknown OS base"):
        bases_to_bootstrap(matrix, ["jessie"])
    code = main(["--matrix", str(REPO / "matrix.yaml"), "base", "bootstrap", "noble"])
    assert code == 2
    assert "has no `bootstrap:` entry" in capsys.readouterr().err

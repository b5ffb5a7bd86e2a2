"""backend/buildkit.py against stand-in docker CLIs: small executable scripts in tmp_path that
answer like a CLI with buildx, one with the Engine's built-in BuildKit, and a newer client without
buildx. They record their argv, environment and what their scratch folder held."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from torchstack.backend import buildkit
from torchstack.backend.buildkit import BuildkitCli, BuildRequest, Secret, find_cli, probe
from torchstack.backend.docker import unavailable
from torchstack.errors import DockerUnavailableError

IMAGE = "sha256:" + "ab" * 32
CONFIG = "sha256:" + "cd" * 32
NO_BUILDX = "ERROR: BuildKit is enabled but the buildx component is missing or broken."
# One build's behaviour, chosen by STANDIN_BUILD: ok, fail (BuildKit's error), sleep.
BUILD = r"""
iid=; meta=; prev=
for a in "$@"; do
  case "$prev" in --iidfile) iid=$a;; --metadata-file) meta=$a;; esac
  prev=$a
done
rec=$STANDIN_RECORD
printf '%s\n' "$@" > "$rec.argv"
env > "$rec.env"
ls -A "$(dirname "$iid")" > "$rec.scratch"
echo "#1 [internal] load build definition from Dockerfile"
case "$STANDIN_BUILD" in
  fail) echo "#5 [stage-1 1/1] RUN false"
        echo "#5 ERROR: executor failed running [/bin/sh -c false]: exit code: 1"
        echo "$STANDIN_ERROR"; exit 1;;
  sleep) trap 'kill $!; echo "stopped by INT" > "$rec.signal"; exit 130' INT
         echo "#5 [stage-1 1/1] RUN sleep 600"; sleep 30 & wait; exit 0;;
esac
echo "#8 writing image IMAGE done"
[ -n "$iid" ] && printf 'IMAGE' > "$iid"
[ -n "$meta" ] && printf '{"containerimage.config.digest": "CONFIG"}' > "$meta"
exit 0
""".replace("IMAGE", IMAGE).replace("CONFIG", CONFIG)
STANDINS = {
    "buildx": "case \"$1\" in buildx) [ \"$2\" = version ] && { echo 'github.com/docker/buildx"
              " v0.17.1'; exit 0; }; shift; shift;; *) exit 1;; esac\n" + BUILD,
    "builtin": "case \"$1\" in buildx) echo \"docker: 'buildx' is not a docker command.\" >&2;"
               " exit 1;; build) [ \"$2\" = --help ] && { [ \"$DOCKER_BUILDKIT\" = 1 ] ||"
               " exit 9; printf 'Usage:  docker build [OPTIONS] PATH\\n      --secret"
               " stringArray   Secret file to expose to the build\\n'; exit 0; }; shift;;"
               " esac\n" + BUILD,
    "no-buildx": "case \"$1\" in buildx) echo \"docker: unknown command: docker buildx\" >&2;"
                 f" exit 1;; build) echo '{NO_BUILDX}' >&2; exit 1;; esac\nexit 1\n",
}


def standin(tmp_path: Path, kind: str, name: str | None = None) -> str:
    folder = tmp_path / f"cli-{kind}"
    folder.mkdir(exist_ok=True)
    path = folder / (name or "docker")
    path.write_text("#!/bin/sh\n" + STANDINS[kind])
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where stand-ins write what they saw; builds' scratch folders go under tmp_path/tmp."""
    monkeypatch.setenv("STANDIN_RECORD", str(tmp_path / "record"))
    monkeypatch.setenv("STANDIN_BUILD", "ok")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return tmp_path / "record"


def request(tmp_path: Path) -> BuildRequest:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    return BuildRequest(tmp_path / "ctx", {"TORCHSTACK_INPUT_HASH": "h1", "BASE_IMAGE": "pin:1"},
                        (Secret("ca-bundle", src=ca),
                         Secret("index-url", value="https://u:s3cr3t@mirror.example/simple")),
                        {"org.opencontainers.image.revision": "abc"})


def test_command_lines_of_both_front_ends(tmp_path: Path) -> None:
    req = request(tmp_path)
    iid, meta = tmp_path / "iid", tmp_path / "m.json"
    tail = ["--build-arg", "BASE_IMAGE=pin:1", "--build-arg", "TORCHSTACK_INPUT_HASH=h1",
            "--secret", f"id=ca-bundle,src={tmp_path}/ca.pem",
            "--secret", "id=index-url,env=TORCHSTACK_SECRET_INDEX_URL",
            "--label", "org.opencontainers.image.revision=abc", f"{tmp_path}/ctx"]
    builtin = BuildkitCli("/usr/bin/docker", "builtin", "unix:///d.sock")
    assert builtin.command(req, iid, meta) == [
        "/usr/bin/docker", "build", "--progress=plain", "--iidfile", str(iid), *tail]
    buildx = BuildkitCli("/x/docker", "buildx", "unix:///d.sock")
    assert buildx.command(req, iid, meta) == [
        "/x/docker", "buildx", "build", "--load", "--metadata-file", str(meta),
        "--progress=plain", "--iidfile", str(iid), *tail]
    assert builtin.describe() == "DOCKER_BUILDKIT=1 docker build (/usr/bin/docker)"


def test_secret_values_go_by_environment_only(tmp_path: Path) -> None:
    req = request(tmp_path)
    cli = BuildkitCli("/usr/bin/docker", "builtin", "tcp://10.0.0.1:2375")
    env = cli.environment(req, {"PATH": "/bin", "DOCKER_HOST": "unix:///other.sock"})
    assert env == {"PATH": "/bin", "DOCKER_HOST": "tcp://10.0.0.1:2375", "DOCKER_BUILDKIT": "1",
                   "TORCHSTACK_SECRET_INDEX_URL": "https://u:s3cr3t@mirror.example/simple"}
    assert not [a for a in cli.command(req, tmp_path / "i", tmp_path / "m") if "s3cr3t" in a]


def test_a_builtin_build_returns_the_iidfiles_id_and_leaves_no_scratch(
        tmp_path: Path, record: Path) -> None:
    cli = BuildkitCli(standin(tmp_path, "builtin"), "builtin", "unix:///d.sock",
                      dict(os.environ))  # the stand-in reads STANDIN_* from it
    lines: list[str] = []
    result = cli.build(request(tmp_path), lines.append)
    assert (result.image_id, result.error) == (IMAGE, None)
    assert lines == ["#1 [internal] load build definition from Dockerfile",
                     f"#8 writing image {IMAGE} done"]
    env = Path(f"{record}.env").read_text().splitlines()
    assert "TORCHSTACK_SECRET_INDEX_URL=https://u:s3cr3t@mirror.example/simple" in env
    assert "DOCKER_BUILDKIT=1" in env and "DOCKER_HOST=unix:///d.sock" in env
    assert "s3cr3t" not in Path(f"{record}.argv").read_text()
    assert Path(f"{record}.scratch").read_text() == ""  # no secret file beside the iidfile
    assert list((tmp_path / "tmp").iterdir()) == []  # the scratch folder went


def test_buildx_reports_the_config_digest_from_its_metadata(tmp_path: Path, record: Path) -> None:
    cli = BuildkitCli(standin(tmp_path, "buildx"), "buildx", "unix:///d.sock",
                      dict(os.environ))  # the stand-in reads STANDIN_* from it
    result = cli.build(request(tmp_path), lambda line: None)
    assert result.image_id == CONFIG  # not the iidfile's digest
    argv = Path(f"{record}.argv").read_text().splitlines()
    assert argv[:2] == ["--load", "--metadata-file"]


@pytest.mark.parametrize("closing", [
    "ERROR: failed to solve: process \"/bin/sh -c false\" did not complete successfully",
    "executor failed running [/bin/sh -c false]: exit code: 1"], ids=["buildx", "docker 20.10"])
def test_a_failed_build_reports_the_clis_closing_error(
        tmp_path: Path, record: Path, monkeypatch: pytest.MonkeyPatch, closing: str) -> None:
    monkeypatch.setenv("STANDIN_BUILD", "fail")
    monkeypatch.setenv("STANDIN_ERROR", closing)
    cli = BuildkitCli(standin(tmp_path, "builtin"), "builtin", "unix:///d.sock",
                      dict(os.environ))  # the stand-in reads STANDIN_* from it
    lines: list[str] = []
    result = cli.build(request(tmp_path), lines.append)
    assert result.image_id is None
    assert result.error == closing.removeprefix("ERROR: ")
    assert lines[-1] == closing and "#5 [stage-1 1/1] RUN false" in lines
    assert list((tmp_path / "tmp").iterdir()) == []


def test_interrupting_stops_the_cli_with_sigint_and_removes_the_scratch(
        tmp_path: Path, record: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_BUILD", "sleep")
    cli = BuildkitCli(standin(tmp_path, "builtin"), "builtin", "unix:///d.sock",
                      dict(os.environ))  # the stand-in reads STANDIN_* from it

    def on_line(line: str) -> None:
        if "RUN sleep 600" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cli.build(request(tmp_path), on_line)
    assert Path(f"{record}.signal").read_text() == "stopped by INT\n"
    assert list((tmp_path / "tmp").iterdir()) == []


def test_probe_tells_the_three_kinds_apart(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"]}
    assert probe(standin(tmp_path, "buildx"), env) == "buildx"
    assert probe(standin(tmp_path, "builtin"), env) == "builtin"
    assert probe(standin(tmp_path, "no-buildx"), env) is None
    assert probe(str(tmp_path / "missing"), env) is None


def test_find_cli_honours_the_override_and_docker_host(tmp_path: Path) -> None:
    builtin = standin(tmp_path, "builtin")
    cli = find_cli({"PATH": "/nonexistent", buildkit.CLI_ENV: builtin,
                    "DOCKER_HOST": "tcp://10.0.0.1:2375"})
    assert cli == BuildkitCli(builtin, "builtin", "tcp://10.0.0.1:2375")
    # Its builds start from the environment it was found in (Settings'), never os.environ.
    found = find_cli({"PATH": "/nonexistent", buildkit.CLI_ENV: builtin, "MARK": "s3cr3t"})
    assert found.environ["MARK"] == "s3cr3t" and "s3cr3t" not in repr(found)
    assert find_cli({"PATH": "/nonexistent", buildkit.CLI_ENV: builtin}).docker_host == \
        "unix:///var/run/docker.sock"


def test_find_cli_falls_back_past_a_client_without_buildx(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_buildx = standin(tmp_path, "no-buildx")
    builtin = standin(tmp_path, "builtin")
    monkeypatch.setattr(buildkit, "FALLBACK_CLIS", (builtin,))
    cli = find_cli({"PATH": str(Path(no_buildx).parent)})
    assert (cli.path, cli.mode) == (builtin, "builtin")


def test_no_cli_that_can_build_is_exit_3_with_the_install_tip(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_buildx = standin(tmp_path, "no-buildx")
    monkeypatch.setattr(buildkit, "FALLBACK_CLIS", (str(tmp_path / "none"),))
    with pytest.raises(DockerUnavailableError) as error:
        find_cli({"PATH": str(Path(no_buildx).parent)})
    assert error.value.exit_code == 3
    assert error.value.message == ("no docker CLI here can build with BuildKit (tried"
                                   f" {no_buildx})")
    for how in ("apt-get install docker-buildx", "docker.io", "TORCHSTACK_DOCKER_CLI"):
        assert how in str(error.value.tip)
    with pytest.raises(DockerUnavailableError, match=f"tried TORCHSTACK_DOCKER_CLI={no_buildx}"):
        find_cli({"PATH": "/nonexistent", buildkit.CLI_ENV: no_buildx})


def test_unavailable_is_one_paragraph_on_starting_or_installing() -> None:
    error = unavailable(ConnectionError("Connection refused\nmore"))
    assert error.exit_code == 3
    assert error.message == ("cannot reach a Docker Engine (Connection refused); nothing was"
                             " built.")
    for how in ("sudo systemctl start docker", "dockerd &", "apt-get install docker.io"):
        assert how in str(error.tip)
    assert "\n" not in str(error.tip)

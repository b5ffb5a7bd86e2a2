"""Choosing compression: the zstd writers' command lines, the tool lookup (exit 3 without one),
the matrix key, where each variant is tagged, and the promoter's order: every variant proven
before a release tag moves.

buildx is not installed on this host: its argv is what is tested here, and it has not been
run. skopeo's argv is the one tests/integration/test_promote_zstd.py runs for real.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.fixture_matrix import write_fixture_matrix
from tests.unit.fakes import FakeTagEngine
from torchstack.backend.credentials import ANONYMOUS, Credentials
from torchstack.backend.recompress import ZstdPublisher, _write_authfile, find_zstd_publisher
from torchstack.backend.registry import RegistryError, RemoteImage
from torchstack.cli import main
from torchstack.config.matrix import load_matrix
from torchstack.config.model import variant_ref, variants_of
from torchstack.errors import ConfigError, DockerUnavailableError, PromoteError
from torchstack.release.journal import Journal, Promoter
from torchstack.resolve.tags import TagDecision

IMAGE = "sha256:" + "c" * 64
GZIP_DIGEST = "sha256:" + "1" * 64
ZSTD_DIGEST = "sha256:" + "2" * 64


def test_skopeo_writes_zstd_from_the_engine(tmp_path: Path) -> None:
    skopeo = ZstdPublisher("skopeo", "/usr/bin/skopeo")
    assert skopeo.argv(IMAGE, "127.0.0.1:5000/ts:t", None, tmp_path) == [
        "/usr/bin/skopeo", "copy", "--dest-compress-format", "zstd",
        "--digestfile", str(tmp_path / "digest"), "--dest-tls-verify=false",
        f"docker-daemon:{IMAGE}", "docker://127.0.0.1:5000/ts:t"]
    (tmp_path / "auth.json").write_text("{}")
    remote = skopeo.argv(IMAGE, "ghcr.io/acme/ts:t", None, tmp_path)
    assert "--dest-tls-verify=false" not in remote  # TLS is verified off loopback
    assert remote[-4:-2] == ["--dest-authfile", str(tmp_path / "auth.json")]


def test_skopeo_gets_the_login_in_a_private_auth_file(tmp_path: Path) -> None:
    """The password reaches skopeo by file (mode 0600), never by argv."""
    login = tmp_path / "login"
    _write_authfile(login, "ghcr.io", Credentials("robot", "s3cret"))
    assert login.stat().st_mode & 0o777 == 0o600
    token = json.loads(login.read_text())["auths"]["ghcr.io"]["auth"]
    assert base64.b64decode(token) == b"robot:s3cret"
    _write_authfile(tmp_path / "anonymous", "ghcr.io", ANONYMOUS)
    assert not (tmp_path / "anonymous").exists()


def test_buildx_rebuilds_from_the_gzip_variant_with_forced_zstd(tmp_path: Path) -> None:
    buildx = ZstdPublisher("buildx", "/usr/bin/docker")
    source = f"ghcr.io/acme/ts@{GZIP_DIGEST}"
    argv = buildx.argv(IMAGE, "ghcr.io/acme/ts:t-zstd", source, tmp_path)
    assert argv[:3] == ["/usr/bin/docker", "buildx", "build"]
    output = argv[argv.index("--output") + 1].split(",")
    assert output == ["type=image", "name=ghcr.io/acme/ts:t-zstd", "push=true",
                      "compression=zstd", "force-compression=true", "oci-mediatypes=true"]
    # No provenance or SBOM manifests: they would turn the push into an index.
    assert "--provenance=false" in argv and "--sbom=false" in argv
    assert argv[argv.index("--metadata-file") + 1] == str(tmp_path / "metadata.json")
    loopback = buildx.argv(IMAGE, "127.0.0.1:5000/ts:t", source, tmp_path)
    assert "registry.insecure=true" in loopback[loopback.index("--output") + 1]
    with pytest.raises(PromoteError, match="no gzip variant was pushed first"):
        buildx.argv(IMAGE, "127.0.0.1:5000/ts:t", None, tmp_path)


def _which(found: dict[str, str]) -> Any:
    return lambda name: found.get(name)


def _buildx(code: int) -> Any:
    def run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        assert argv[1:] == ["buildx", "version"]
        return subprocess.CompletedProcess(argv, code, "", "")
    return run


def test_buildx_is_preferred_then_skopeo_then_exit_3() -> None:
    both = _which({"docker": "/d", "skopeo": "/s"})
    assert find_zstd_publisher(True, both, _buildx(0)) == ZstdPublisher("buildx", "/d")
    # The docker CLI without the buildx plugin (this host's) falls back to skopeo.
    assert find_zstd_publisher(True, both, _buildx(1)) == ZstdPublisher("skopeo", "/s")
    with pytest.raises(DockerUnavailableError) as caught:
        find_zstd_publisher(True, _which({"docker": "/d"}), _buildx(1))
    assert caught.value.exit_code == 3
    assert "skopeo" in caught.value.message and "apt-get install skopeo" in str(caught.value.tip)


def test_zstd_alone_is_written_by_skopeo_even_where_buildx_answers() -> None:
    """Bug caught: buildx chosen for `--compression zstd`, which pushes no gzip variant for it
    to build FROM: every promote on a Docker >= 23 host failed with exit 6."""
    both = _which({"docker": "/d", "skopeo": "/s"})
    assert find_zstd_publisher(False, both, _buildx(0)) == ZstdPublisher("skopeo", "/s")
    with pytest.raises(DockerUnavailableError) as caught:
        find_zstd_publisher(False, _which({"docker": "/d"}), _buildx(0))
    assert caught.value.exit_code == 3 and "--compression both" in str(caught.value.tip)


@pytest.mark.parametrize(("compression", "said"), [("zstd", "alone needs skopeo"),
                                                    ("both", "neither is installed")])
def test_promote_without_a_zstd_tool_exits_3_before_anything_moves(
        tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch, compression: str,
        said: str) -> None:
    root = tmp_path / "matrix"
    write_fixture_matrix(root)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")  # and no Engine is asked
    code = main(["--matrix", str(root / "matrix.yaml"), "promote", "--push",
                 "--compression", compression])
    assert code == 3
    assert said in capsys.readouterr().err
    assert not (root / ".torchstack" / "promote-journal.json").exists()


def test_the_matrix_key_and_its_errors(tmp_path: Path) -> None:
    root = tmp_path / "matrix"
    write_fixture_matrix(root)
    matrix = load_matrix(root / "matrix.yaml")
    assert (matrix.compression, matrix.zstd_suffix) == ("gzip", "-zstd")
    text = (root / "matrix.yaml").read_text()
    push = 'push: "127.0.0.1:5000/torchstack-it"\n'
    (root / "matrix.yaml").write_text(text.replace(
        push, push + "  compression: both\n  zstd_suffix: .zst\n"))
    matrix = load_matrix(root / "matrix.yaml")
    assert (matrix.compression, matrix.zstd_suffix) == ("both", ".zst")
    for bad, message in (("compression: lz4", "compression must be one of gzip, zstd, both"),
                         ("zstd_suffix: 'a b'", "cannot end a tag name")):
        (root / "matrix.yaml").write_text(text.replace(push, push + f"  {bad}\n"))
        with pytest.raises(ConfigError, match=message) as caught:
            load_matrix(root / "matrix.yaml")
        assert "matrix.yaml:" in str(caught.value.message) + str(caught.value)


def test_where_each_variant_is_tagged() -> None:
    assert variants_of("gzip") == ("gzip",)
    assert variants_of("zstd") == ("zstd",)
    assert variants_of("both") == ("gzip", "zstd")
    assert variant_ref("r:1.0", "zstd", "zstd", "-zstd") == "r:1.0"  # zstd alone: the tag
    assert variant_ref("r:1.0", "zstd", "both", "-zstd") == "r:1.0-zstd"
    assert variant_ref("r:1.0", "gzip", "both", "-zstd") == "r:1.0"


def engine_fake() -> FakeTagEngine:
    return FakeTagEngine(images=(IMAGE,), push_digest=GZIP_DIGEST)


class FakeZstd:
    tool = "skopeo"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None]] = []

    def publish(self, docker_id: str, ref: str, source: str | None,
                credentials: Credentials = ANONYMOUS) -> str:
        self.calls.append((docker_id, ref, source))
        return ZSTD_DIGEST


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What the fake registry serves per ref; `bad` refs fail their proof."""
    state: dict[str, Any] = {"bad": set(), "put": [], "proven": []}

    def prove(ref: str, content: object, credentials: Credentials) -> RemoteImage:
        state["proven"].append(ref)
        if ref in state["bad"]:
            raise RegistryError(f"{ref} is not the checked image: its config differs in Env")
        zstd = ref.endswith("-zstd") or state.get("zstd_only")
        media = ("application/vnd.oci.image.layer.v1.tar+zstd" if zstd
                 else "application/vnd.docker.image.rootfs.diff.tar.gzip")
        from torchstack.backend.registry import LayerBlob
        return RemoteImage(ZSTD_DIGEST if zstd else GZIP_DIGEST, IMAGE, "",
                           (LayerBlob(media, "sha256:" + "3" * 64, 1),), b"{}")

    def put(ref: str, image: RemoteImage, credentials: Credentials) -> str:
        state["put"].append(ref)
        return image.digest

    monkeypatch.setattr("torchstack.release.journal.prove_content", prove)
    monkeypatch.setattr("torchstack.release.journal.fetch_manifest",
                        lambda ref, credentials: RemoteImage(ZSTD_DIGEST if ref.endswith("-zstd")
                                                or "@" + ZSTD_DIGEST in ref
                                                or state.get("zstd_only") else GZIP_DIGEST,
                                                IMAGE))
    monkeypatch.setattr("torchstack.release.journal.put_manifest", put)
    return state


def test_both_proves_each_candidate_variant_then_tags_both_forms(
        tmp_path: Path, registry: dict[str, Any]) -> None:
    engine, zstd = engine_fake(), FakeZstd()
    promoter = Promoter(engine, Journal(tmp_path / "j.json"), True, lambda _: None,
                        "both", "-zstd", zstd)
    results = promoter.promote(TagDecision("img", "r:img-abc", ("r:1.0",), "passed"), IMAGE)
    assert [(r.ref, r.compression, r.digest, r.error) for r in results] == [
        ("r:img-abc", "gzip", GZIP_DIGEST, None), ("r:img-abc-zstd", "zstd", ZSTD_DIGEST, None),
        ("r:1.0", "gzip", GZIP_DIGEST, None), ("r:1.0-zstd", "zstd", ZSTD_DIGEST, None)]
    # zstd is written from the proven gzip variant's digest (what buildx builds FROM).
    assert zstd.calls == [(IMAGE, "r:img-abc-zstd", f"r@{GZIP_DIGEST}")]
    assert registry["put"] == ["r:1.0-zstd"]  # the release names the proven zstd manifest
    assert engine.tags["r:1.0"] == IMAGE


def test_a_refused_zstd_candidate_moves_no_release_tag(
        tmp_path: Path, registry: dict[str, Any]) -> None:
    registry["bad"].add("r:img-abc-zstd")
    engine, journal = engine_fake(), Journal(tmp_path / "j.json")
    promoter = Promoter(engine, journal, True, lambda _: None,
                        "both", "-zstd", FakeZstd())
    results = promoter.promote(TagDecision("img", "r:img-abc", ("r:1.0",), "passed"), IMAGE)
    assert [r.ref for r in results] == ["r:img-abc", "r:img-abc-zstd"]
    assert results[-1].error is not None and results[-1].error.startswith("refused: ")
    assert "r:1.0" not in engine.tags and "r:1.0" not in engine.pushed
    assert registry["put"] == [] and not journal.path.exists()


def test_zstd_alone_never_runs_docker_push_and_a_journal_resumes_it(
        tmp_path: Path, registry: dict[str, Any]) -> None:
    registry["zstd_only"] = True
    engine, journal = engine_fake(), Journal(tmp_path / "j.json")
    promoter = Promoter(engine, journal, True, lambda _: None,
                        "zstd", "-zstd", FakeZstd())
    results = promoter.promote(TagDecision("img", "r:img-abc", ("r:1.0",), "passed"), IMAGE)
    assert [(r.ref, r.compression, r.error) for r in results] == [
        ("r:img-abc", "zstd", None), ("r:1.0", "zstd", None)]
    assert engine.pushed == [] and registry["put"] == ["r:1.0"]
    # A move cut short is finished from the journal, with the proven digest it recorded.
    journal.write([{"image": "img", "docker_id": IMAGE, "refs": ["r:2.0"], "push": True,
                    "compression": "zstd", "suffix": "-zstd",
                    "variants": {"zstd": ZSTD_DIGEST}, "previous": {"r:2.0": None}}])
    resumed = Promoter(engine, journal, True, lambda _: None).resume()
    assert [(r.ref, r.digest, r.error) for r in resumed] == [("r:2.0", ZSTD_DIGEST, None)]
    assert registry["put"][-1] == "r:2.0" and not journal.path.exists()


def test_a_journal_with_a_bad_variant_is_not_trusted(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.json")
    journal.write([{"image": "img", "docker_id": IMAGE, "refs": ["r:2.0"], "push": True,
                    "compression": "zstd", "variants": {"zstd": "latest"}}])
    with pytest.raises(PromoteError, match="variants is not a map"):
        journal.pending()

"""Careless input to zstd publishing: matrix `registry.compression` / `registry.zstd_suffix` and
`--compression` on promote and k8s. Each is refused at load or parse time with exit 2 and the
matrix line, before Docker or a registry is reached (DOCKER_HOST is a closed port), never half
way through a push.

And hostile answers to the content proofs (registry.prove_content) and to the variant lookup
of attaching: a manifest or config blob that is not what it should be is a RegistryError or
"not this image", never a traceback (a real HTTP server on 127.0.0.1:0).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from tests.unit.hostileutil import copy_project, run_cli
from tests.unit.test_hostile_attest import OCI, Registry, serve
from torchstack.backend.artifacts import Repository
from torchstack.backend.identity import ImageInspect, content_of_inspect
from torchstack.backend.registry import RegistryError, prove_content
from torchstack.release.attaching import published_digests
from torchstack.resolve.state import ImageState

TOO_LONG = "characters; a Docker tag has at most 128"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{closed_port()}")
    for name in ("TORCHSTACK_REGISTRY", "TORCHSTACK_MATRIX", "TORCHSTACK_SIGNING_KEY"):
        monkeypatch.delenv(name, raising=False)
    root = copy_project(tmp_path / "project")
    monkeypatch.chdir(root)
    return root


def registry_block(project: Path, lines: str) -> None:
    """Replace the matrix's `compression: both` line with `lines` (under registry:)."""
    text = (project / "matrix.yaml").read_text()
    assert "  compression: both\n" in text
    (project / "matrix.yaml").write_text(text.replace("  compression: both\n", lines))


def long_release_tags(project: Path) -> None:
    """Release tags of 124 to 126 characters (vision is the longest flavor): valid, but no
    room for a 5-character suffix."""
    text = (project / "matrix.yaml").read_text()
    old = 'release: "{torch}-cuda{cuda}-cudnn{cudnn_major}-py{python}-{flavor}"'
    assert old in text
    pad = "x" * (128 - 2 - len("2.9.1-cuda12.8-cudnn9-py3.11-vision-"))
    (project / "matrix.yaml").write_text(text.replace(old, old[:-1] + f'-{pad}"'))


@pytest.mark.parametrize("value", ["bogus", "ZSTD", "[gzip]", "null", "true", "'gzip '"])
def test_an_unknown_compression(project: Path, capsys: pytest.CaptureFixture[str],
                                value: str) -> None:
    registry_block(project, f"  compression: {value}\n")
    code, err = run_cli(capsys, "plan")
    assert code == 2 and "(registry.compression)" in err and "gzip, zstd, both" in err


@pytest.mark.parametrize("value", ["':zstd'", "'/zstd'", "'z@1'", "'" + "z" * 200 + "'",
                                   "''", "5", "null", "'-zstd\\n'", "' -zstd'"])
def test_a_suffix_that_cannot_end_a_tag(project: Path, capsys: pytest.CaptureFixture[str],
                                        value: str) -> None:
    registry_block(project, f"  compression: both\n  zstd_suffix: {value}\n")
    code, err = run_cli(capsys, "plan")
    assert code == 2 and "(registry.zstd_suffix)" in err


def test_an_upper_case_suffix_is_a_valid_tag(project: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    # Docker tags may hold upper case ([A-Za-z0-9_.-]); only repository names may not.
    registry_block(project, "  compression: both\n  zstd_suffix: -ZSTD\n")
    assert run_cli(capsys, "plan")[0] == 0


def test_a_suffix_making_a_tag_longer_than_128_is_a_matrix_error(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Bug caught: the matrix loaded, the gzip tags were pushed, and only then the zstd tag
    # (124 + 5 characters) was found invalid: a release published half.
    long_release_tags(project)
    registry_block(project, "  compression: both\n")
    code, err = run_cli(capsys, "plan")
    assert code == 2 and "(registry.compression)" in err and TOO_LONG in err
    registry_block_text = (project / "matrix.yaml").read_text()
    (project / "matrix.yaml").write_text(registry_block_text.replace(
        "  compression: both\n", "  compression: both\n  zstd_suffix: -zs\n"))
    code, err = run_cli(capsys, "plan")
    assert code == 2 and "(registry.zstd_suffix)" in err and "128" in err


def test_gzip_only_ignores_the_suffix_but_promote_both_checks_it(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Bug caught: `promote --compression both` over a gzip matrix skipping the load-time check.
    long_release_tags(project)
    registry_block(project, "  compression: gzip\n")
    assert run_cli(capsys, "plan")[0] == 0
    code, err = run_cli(capsys, "promote", "--compression", "both")
    assert code == 2 and "--compression both" in err and TOO_LONG in err
    assert not (project / ".torchstack").exists() or not any(
        (project / ".torchstack").rglob("promote-journal*"))


def test_a_suffix_that_makes_a_zstd_tag_another_gzip_tag(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Bug caught: `latest` + `-zstd` overwriting the gzip alias `latest-zstd` (or another
    # image's tag): zstd layers served where runtimes expect gzip.
    text = (project / "matrix.yaml").read_text()
    old = "    - {tag: latest, default: true, flavor: base}\n"
    assert old in text
    (project / "matrix.yaml").write_text(text.replace(
        old, old + "    - {tag: latest-zstd, default: true, flavor: base}\n"))
    code, err = run_cli(capsys, "plan")
    assert code == 2 and "'latest-zstd', is also the gzip tag" in err


@pytest.mark.parametrize("argv", [["promote", "--compression", "bogus"],
                                  ["promote", "--compression", "ZSTD"],
                                  ["promote", "--compression", ""],
                                  ["k8s", "--compression", "both"],
                                  ["k8s", "--compression", "gzip;id"]])
def test_a_compression_flag_outside_its_choices(project: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        run_cli(capsys, *argv)
    assert caught.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# ---------------------------------------------------------------- hostile registry answers

DIFF_ID = "sha256:" + "5" * 64
INSPECTED: ImageInspect = {"Architecture": "amd64", "Os": "linux", "Config": {},
                                "RootFS": {"Type": "layers", "Layers": [DIFF_ID]}}
ODD_CONFIGS = [b"\x00\x01 not json", b"[" * 50_000 + b"]" * 50_000, b"[1, 2]",
               b'{"rootfs": "layers"}', b'{"config": [1], "rootfs": {"diff_ids": [1]}}',
               b'{"rootfs": {"diff_ids": 5}}']


@pytest.fixture
def registry() -> Iterator[Registry]:
    yield from serve(Registry())


def image_with_config(registry: Registry, config: bytes, tag: str = "v1") -> None:
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI, "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": registry.blob(config), "size": len(config)}, "layers": []}).encode()
    registry.manifest(tag, manifest)


@pytest.mark.parametrize("config", ODD_CONFIGS)
def test_a_variant_whose_config_is_no_image_config_is_not_this_image(
        registry: Registry, config: bytes) -> None:
    # Bug caught: attaching (promote --push --signing-key) looked for zstd variants under
    # tag + suffix, and a tag serving some other artifact (a config that is not JSON, or JSON
    # of another shape) crashed it with a traceback.
    image_with_config(registry, config, "v1-zstd")
    state = cast(ImageState, SimpleNamespace(local_image_id="sha256:" + "7" * 64))
    found = published_digests(Repository(f"{registry.host}/t"), state, ["v1"], INSPECTED,
                              "-zstd")
    assert found == []
    assert any(path.startswith("/v2/t/blobs/") for path, _ in registry.seen)  # it did look


@pytest.mark.parametrize("config", ODD_CONFIGS)
def test_a_content_proof_against_an_odd_config_is_a_registry_error(
        registry: Registry, config: bytes) -> None:
    # Bug caught: AttributeError / TypeError / RecursionError out of prove_content (promote's
    # check that a pushed variant is the checked image) on a config of the wrong shape.
    image_with_config(registry, config)
    with pytest.raises(RegistryError, match="config blob"):
        prove_content(f"{registry.host}/t:v1", content_of_inspect(INSPECTED))


def test_a_content_proof_against_a_deeply_nested_manifest(registry: Registry) -> None:
    registry.manifest("v1", b'{"config": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")
    with pytest.raises(RegistryError, match="manifest"):
        prove_content(f"{registry.host}/t:v1", content_of_inspect(INSPECTED))

"""Careless input through the real CLI: exit 2 (or 6) and a message, never a traceback or a hang.

Every verb runs in-process through `torchstack.cli.main` in a copy of the repository's matrix,
with DOCKER_HOST pointing at a closed port: a check that came after connecting would show up
as exit 3 instead of 2.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import pytest

from tests.paths import REPO
from torchstack.cli import main
from torchstack.config.located import MAX_BYTES


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replaces conftest's guard: the client may be created, but DOCKER_HOST is a closed port,
    so no daemon is ever reached (what the user of a machine without Docker sees)."""
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{closed_port()}")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(REPO / "matrix.yaml", root)
    shutil.copytree(REPO / "layers", root / "layers")
    shutil.copytree(REPO / "images", root / "images")
    monkeypatch.chdir(root)
    (tmp_path / "kubeconfig").write_text("")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    for name in ("TORCHSTACK_REGISTRY", "TORCHSTACK_MATRIX", "TORCHSTACK_TORCH_INDEX_URL",
                 "TORCHSTACK_PIP_INDEX_URL", "PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    return root


def edit(project: Path, old: str, new: str) -> None:
    text = (project / "matrix.yaml").read_text()
    assert old in text
    (project / "matrix.yaml").write_text(text.replace(old, new))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("verb", [["plan"], ["k8s", "--out", "k8s-out"], ["render"]])
def test_an_infinite_check_timeout(project: Path, capsys: pytest.CaptureFixture[str],
                                   verb: list[str]) -> None:
    edit(project, "timeout_s: 900", "timeout_s: .inf")
    code, err = run(capsys, *verb)
    assert code == 2
    assert "matrix.yaml:" in err and "(checks.timeout_s)" in err and "finite" in err


@pytest.mark.parametrize("size", ['"2 gigs"', "lots", "0", "-1g", "2.5g"])
def test_a_shm_size_docker_would_not_take(project: Path, capsys: pytest.CaptureFixture[str],
                                          size: str) -> None:
    edit(project, "shm_size: 2g", f"shm_size: {size}")
    code, err = run(capsys, "plan")
    assert code == 2 and "(checks.shm_size)" in err and "tip: " in err


@pytest.mark.parametrize("push", ['"https://127.0.0.1:5000/torchstack"', '"Torch Stack"',
                                  '"127.0.0.1:5000/torchstack:tag"', '"a/b\\nRUN x"'])
def test_a_registry_repository_that_is_not_one(project: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               push: str) -> None:
    edit(project, 'push: "127.0.0.1:5000/torchstack"', f"push: {push}")
    code, err = run(capsys, "plan")
    assert code == 2 and "(registry.push)" in err


def test_registry_from_the_environment_or_flag(project: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    code, err = run(capsys, "promote", "--registry", "not a registry")
    assert code == 2 and "--registry 'not a registry'" in err
    monkeypatch.setenv("TORCHSTACK_REGISTRY", "HTTPS://x/y")
    code, err = run(capsys, "bake")
    assert code == 2 and "TORCHSTACK_REGISTRY=" in err


def test_a_huge_matrix_is_refused_before_parsing(project: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    huge = project / "huge.yaml"
    with huge.open("wb") as handle:  # 200 MB, sparse: no time spent writing it
        handle.truncate(200 * 10**6)
    started = time.monotonic()
    code, err = run(capsys, "--matrix", str(huge), "plan")
    assert code == 2 and "larger than the 1 MiB" in err
    assert time.monotonic() - started < 2


def test_a_matrix_just_over_the_limit_is_refused(project: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    text = (project / "matrix.yaml").read_text()
    (project / "matrix.yaml").write_text(text + "#" * (MAX_BYTES - len(text.encode()) + 1))
    code, err = run(capsys, "plan")
    assert code == 2 and "larger than" in err


@pytest.mark.parametrize(("path", "says"), [
    ("/dev/zero", "/dev/zero): not a regular file"), ("/dev/null", "not a regular file"),
    (".", "not a regular file"), ("/proc/self/mem", "cannot read"),
])
def test_a_matrix_that_is_not_a_regular_file(project: Path, capsys: pytest.CaptureFixture[str],
                                             path: str, says: str) -> None:
    code, err = run(capsys, "--matrix", path, "plan")
    assert code == 2 and says in err


def test_a_fifo_matrix_does_not_block(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.mkfifo(project / "fifo.yaml")
    code, err = run(capsys, "--matrix", "fifo.yaml", "plan")
    assert code == 2 and "not a regular file" in err


def test_a_huge_layer_yaml_is_refused(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with (project / "layers" / "vision" / "layer.yaml").open("ab") as handle:
        handle.truncate(2 * MAX_BYTES)
    code, err = run(capsys, "plan")
    assert code == 2 and "layers/vision/layer.yaml" in err


def test_bake_out_naming_a_directory(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "out").mkdir()
    code, err = run(capsys, "bake", "--out", "out")
    assert code == 2 and "--out out: is a directory" in err


def test_bake_out_below_a_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "bake", "--out", "matrix.yaml/bake.json")
    assert code == 2 and "--out matrix.yaml/bake.json: cannot write it" in err


@pytest.mark.parametrize("content", [b"not a certificate\n", b"\x30\x82\x01\x0a\x02",
                                     b"-----BEGIN CERTIFICATE-----\nAAAA\n"
                                     b"-----END CERTIFICATE-----\n"])
def test_a_ca_bundle_that_is_not_pem(project: Path, capsys: pytest.CaptureFixture[str],
                                     content: bytes) -> None:
    (project / "ca.crt").write_bytes(content)
    code, err = run(capsys, "build", "--ca-bundle", "ca.crt")
    assert code == 2 and "--ca-bundle ca.crt" in err


@pytest.mark.parametrize("option", ["cu126=https://mirror/{cuda_tag", "cu126=https://m/{0}",
                                    "pytorch=https://m/{cuda}", "pypi=https://m/simple\nRUN x",
                                    "cu126=https://m/a b", "nope=https://m"])
def test_a_bad_index_option(project: Path, capsys: pytest.CaptureFixture[str],
                            option: str) -> None:
    code, err = run(capsys, "build", "--index", option)
    assert code == 2 and "--index" in err


def test_a_bad_torch_index_in_the_environment(project: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCHSTACK_TORCH_INDEX_URL", "https://m/whl/{cuda_tag")
    code, err = run(capsys, "build")
    assert code == 2 and "TORCHSTACK_TORCH_INDEX_URL" in err and "malformed placeholder" in err


def test_a_corrupt_promote_journal(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal = project / ".torchstack" / "promote-journal.json"
    journal.parent.mkdir()
    journal.write_text('[{"image": "torch')
    code, err = run(capsys, "promote")
    assert code == 6 and ".torchstack/promote-journal.json" in err and "--discard-journal" in err
    assert journal.read_text() == '[{"image": "torch'
    code, err = run(capsys, "promote", "--discard-journal")
    assert code == 3  # past the journal: now it needs Docker, which does not answer here
    assert not journal.exists()
    assert [p.read_text() for p in journal.parent.glob("promote-journal.discarded-*.json")] \
        == ['[{"image": "torch']

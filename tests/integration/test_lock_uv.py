"""`torchstack lock` with the real uv against the real PyPI, on small temp matrices.

No Docker. Covers: constraint chaining (a child keeps its parent's packages), byte-stable
re-locks, kept versions without --upgrade (hashes taken afresh from the index), the conflict
message (exit 2) and an unreachable index (exit 7) while other images still lock.
Expected hashes and versions come from PyPI's JSON API, not from the code under test.
"""

from __future__ import annotations

import json
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from torchstack.cli import main
from torchstack.config.matrix import load_matrix
from torchstack.lock.pylock import read_lock

pytestmark = pytest.mark.network

CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens there
MATRIX = """\
schema_version: 1
id_template: "lk-torch{{torch}}-{{cuda_tag}}-{{flavor}}"
os_bases:
  bookworm: {{image: "debian:bookworm-slim", python: "3.11"}}
flavors: {{base: root, web: web}}
axes: {{torch: ["2.9.1"], cuda: {cudas}, os: [bookworm], flavor: [base, web]}}
default_group: ["*"]
indexes: {{pypi: "https://pypi.org/simple", pytorch: "{closed}/whl/{{cuda_tag}}"}}
registry: {{local: torchstack-lk, push: "127.0.0.1:5000/torchstack-lk"}}
tags: {{release: "lk-{{torch}}-cuda{{cuda}}-{{flavor}}", candidate: "{{id}}-{{hash12}}"}}
promotion: {{require: cpu}}
"""
BASE, WEB = "lk-torch2.9.1-cu128-base", "lk-torch2.9.1-cu128-web"


def write_matrix(root: Path, root_pins: list[str], web_pins: list[str],
                 cudas: str = '["12.8"]') -> Path:
    (root / "matrix.yaml").write_text(MATRIX.format(cudas=cudas, closed=CLOSED))
    for layer, parent, pins in (("root", "null", root_pins), ("web", "root", web_pins)):
        folder = root / "layers" / layer
        folder.mkdir(parents=True)
        listed = "".join(f"\n  - {p}" for p in pins) or " []"
        (folder / "layer.yaml").write_text(f"parent: {parent}\npackages:{listed}\n")
    return root / "matrix.yaml"


def lock(matrix: Path, *args: str) -> int:
    return main(["--matrix", str(matrix), "lock", *args])


def simple_files(name: str) -> list[dict[str, Any]]:
    """The project's files from PyPI's simple API (PEP 691 JSON)."""
    request = urllib.request.Request(f"https://pypi.org/simple/{name}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        files: list[dict[str, Any]] = json.load(response)["files"]
    return files


def wheel_sha256(name: str, version: str) -> str:
    wheels = [f for f in simple_files(name)
              if f["filename"] == f"{name}-{version}-py3-none-any.whl"]
    assert len(wheels) == 1, wheels
    return str(wheels[0]["hashes"]["sha256"])


def newest(name: str) -> str:
    """The newest final release with a wheel that is not yanked: what a fresh resolve takes."""
    versions = [Version(f["filename"].split("-")[1]) for f in simple_files(name)
                if f["filename"].endswith(".whl") and not f.get("yanked")]
    return str(max(v for v in versions if not v.is_prerelease))


def locked(matrix_file: Path, image_id: str) -> dict[str, Any]:
    matrix = load_matrix(matrix_file)
    found = read_lock(matrix, matrix.by_id()[image_id])
    assert found is not None
    return {d.name: d for d in found.dists}


def test_a_child_keeps_its_parents_packages_and_relocks_are_stable(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    matrix = write_matrix(tmp_path, ["requests==2.32.3", "idna==3.7"],
                          ["requests-toolbelt==1.0.0", "yarl==1.20.1"])
    assert lock(matrix) == 0
    base, web = locked(matrix, BASE), locked(matrix, WEB)
    assert {"requests", "idna", "urllib3", "certifi", "charset-normalizer"} <= set(base)
    # yarl needs idna>=2.0; unconstrained it would take the newest, the parent's 3.7 wins.
    assert web["idna"] == base["idna"] and base["idna"].version == "3.7"
    assert all(web[name] == dist for name, dist in base.items())
    assert {"requests-toolbelt", "yarl", "multidict", "propcache"} <= set(web)
    assert base["idna"].sha256 == wheel_sha256("idna", "3.7")
    first = {p: p.read_bytes() for p in tmp_path.glob("images/*/pylock.toml")}
    capsys.readouterr()
    assert lock(matrix) == 0
    assert capsys.readouterr().out.count("unchanged ") == 2
    assert {p: p.read_bytes() for p in tmp_path.glob("images/*/pylock.toml")} == first


def test_locked_versions_are_kept_until_an_upgrade(tmp_path: Path) -> None:
    """A lock written when idna 3.7 was wanted keeps 3.7 after the pin goes (uv reads the old
    lock as its preference), until --upgrade-package idna or --upgrade asks for the newest."""
    newest_idna = newest("idna")
    assert newest_idna != "3.7"
    root_layer = tmp_path / "layers" / "root" / "layer.yaml"
    pinned = write_matrix(tmp_path, ["requests==2.32.3", "idna==3.7"], [])
    unpinned = root_layer.read_text().replace("\n  - idna==3.7", "")

    def lock_pinned_then_unpin() -> None:
        root_layer.write_text(unpinned.replace("packages:", "packages:\n  - idna==3.7"))
        assert lock(pinned, BASE) == 0
        assert locked(pinned, BASE)["idna"].version == "3.7"
        root_layer.write_text(unpinned)

    lock_pinned_then_unpin()
    assert lock(pinned, BASE) == 0
    kept = locked(pinned, BASE)["idna"]
    assert (kept.version, kept.sha256) == ("3.7", wheel_sha256("idna", "3.7"))
    assert kept.filename == "idna-3.7-py3-none-any.whl"
    assert lock(pinned, BASE, "--upgrade-package", "idna") == 0
    assert locked(pinned, BASE)["idna"].version == newest_idna
    lock_pinned_then_unpin()
    assert lock(pinned, BASE, "--upgrade") == 0
    assert locked(pinned, BASE)["idna"].version == newest_idna


def test_a_child_pin_conflicting_with_the_parents_lock_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    matrix = write_matrix(tmp_path, ["numpy==2.3.0"], ["opencv-python-headless==4.12.0.88"])
    assert lock(matrix) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = next(x for x in err.splitlines() if x.startswith("error: layers/web/layer.yaml:"))
    assert line.startswith(
        f"error: layers/web/layer.yaml: the pins of {WEB} cannot be satisfied together"
        f" (opencv-python-headless==4.12.0.88, numpy==2.3.0 (from {BASE}'s lock)): ")
    assert "numpy>=2,<2.3.0" in line  # opencv 4.12's own requirement, as uv read it
    assert (tmp_path / "images" / BASE / "pylock.toml").is_file()
    assert not (tmp_path / "images" / WEB / "pylock.toml").exists()


def test_pins_in_one_layer_that_conflict_exit_2_naming_both(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    matrix = write_matrix(tmp_path, ["transformers==4.57.1", "tokenizers==0.21.0"], [])
    assert lock(matrix, BASE) == 2
    err = capsys.readouterr().err
    message = err.split("error: ", 1)[1].splitlines()[0]
    assert message.startswith(f"layers/root/layer.yaml: the pins of {BASE} cannot be satisfied"
                              " together (transformers==4.57.1, tokenizers==0.21.0): ")
    assert "tokenizers>=0.22.0,<=0.23.0" in message
    assert "\n" not in message and "Traceback" not in err


def test_an_unreachable_index_fails_its_images_while_the_others_lock(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    matrix = write_matrix(tmp_path, ["idna==3.7"], ["certifi==2025.8.3"],
                          cudas='["12.8", "12.6"]')
    assert lock(matrix, "--all") == 7
    err = capsys.readouterr().err
    cu126_base, cu126_web = "lk-torch2.9.1-cu126-base", "lk-torch2.9.1-cu126-web"
    assert f"error: {cu126_base}: the index {CLOSED}/whl/cu126 cannot be reached" in err
    assert f"`torchstack lock {cu126_base}` where {CLOSED}/whl/cu126 is reachable" in err
    assert "--index cu126=URL" in err
    assert f"error: {cu126_web}: its parent {cu126_base} could not be locked" in err
    for image_id in (BASE, WEB):
        assert (tmp_path / "images" / image_id / "pylock.toml").is_file()
    for image_id in (cu126_base, cu126_web):
        assert not (tmp_path / "images" / image_id).exists()


def test_the_index_override_applies_to_lock(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    matrix = write_matrix(tmp_path, ["idna==3.7"], [])
    monkeypatch.setenv("TORCHSTACK_PIP_INDEX_URL", f"{CLOSED}/simple")
    assert lock(matrix, BASE) == 7
    assert f"the index {CLOSED}/simple cannot be reached" in capsys.readouterr().err
    monkeypatch.delenv("TORCHSTACK_PIP_INDEX_URL")
    assert lock(matrix, BASE, "--index", "pypi=https://pypi.org/simple/") == 0


def test_the_lock_records_what_it_was_resolved_from(tmp_path: Path) -> None:
    matrix = write_matrix(tmp_path, ["idna==3.7"], ["certifi==2025.8.3"])
    assert lock(matrix) == 0
    text = (tmp_path / "images" / WEB / "pylock.toml").read_text()
    tool = text.split("[tool.torchstack]\n", 1)[1]
    assert tool.startswith(textwrap.dedent(f"""\
        image = "{WEB}"
        python = "3.11"
        platform = "x86_64-manylinux_2_28"
        index = "https://pypi.org/simple"
        pins = [
          "certifi==2025.8.3",
        ]
        parent_sha256 = \""""))
    assert "sdist" not in text and "upload-time" not in text

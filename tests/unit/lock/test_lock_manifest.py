"""Manifests from the lock, cross-checked against pip's list from inside the image; the
TorchCodec pairing in compat data and expansion."""

from __future__ import annotations

import json

import pytest

from tests.paths import REPO
from torchstack.config.compat import CompatError, load_compat
from torchstack.config.matrix import load_matrix
from torchstack.errors import PromoteError
from torchstack.lock.pylock import ImageLock, read_lock
from torchstack.release.manifests import (
    DebianPackage,
    PythonPackage,
    cyclonedx_sbom,
    lock_differences,
    locked_packages,
)

NLP = "torch2.9.1-cu128-py3.11-nlp"
LOCK_FILE = f"images/{NLP}/pylock.toml"


@pytest.fixture(scope="module")
def lock() -> ImageLock:
    matrix = load_matrix(REPO / "matrix.yaml")
    found = read_lock(matrix, matrix.by_id()[NLP])
    assert found is not None
    return found


def pip_list(lock: ImageLock) -> list[PythonPackage]:
    """What `pip list --format json` prints for an image built from the lock: metadata names
    (not normalised), in pip's case-insensitive order."""
    spelled = {"markupsafe": "MarkupSafe", "pyyaml": "PyYAML", "typing-extensions":
               "typing_extensions", "charset-normalizer": "charset-normalizer",
               "hf-xet": "hf-xet", "jinja2": "Jinja2"}
    rows: list[PythonPackage] = [{"name": spelled.get(d.name, d.name), "version": d.version}
                                 for d in lock.dists]
    return sorted(rows, key=lambda r: r["name"].lower())


def test_pip_list_of_an_image_built_from_the_lock_matches(lock: ImageLock) -> None:
    installed = pip_list(lock)
    assert any(r["name"] == "MarkupSafe" for r in installed)  # the shape is pip's
    assert lock_differences(lock, installed) == []


def test_extra_missing_and_other_versions_are_all_named(lock: ImageLock) -> None:
    installed = [r for r in pip_list(lock) if r["name"] != "pip"]
    installed.append({"name": "wheel", "version": "0.45.1"})  # e.g. a user's pip install
    installed = [PythonPackage(name=r["name"], version="2.9.0") if r["name"] == "torchaudio"
                 else r for r in installed]
    assert lock_differences(lock, installed) == [
        "wheel 0.45.1 is installed but not locked",
        "pip 26.3 is locked but not installed",
        "torchaudio 2.9.0 is installed, the lock has 2.9.1",
    ]


def test_equal_versions_spelled_differently_are_equal(lock: ImageLock) -> None:
    installed = [PythonPackage(name=r["name"], version="2.2.6.0") if r["name"] == "numpy"
                 else r for r in pip_list(lock)]
    assert lock_differences(lock, installed) == []


def test_a_difference_refuses_promotion_naming_the_packages(lock: ImageLock) -> None:
    installed = [r for r in pip_list(lock) if r["name"] != "torchcodec"]
    with pytest.raises(PromoteError) as caught:
        locked_packages(NLP, LOCK_FILE, lock, {"python": installed, "debian": []})
    assert caught.value.exit_code == 6
    assert caught.value.message == (
        f"{NLP}: the Python packages installed differ from {LOCK_FILE} (1):"
        " torchcodec 0.9.1 is locked but not installed")


def test_the_manifest_and_sbom_carry_the_locks_hashes(lock: ImageLock) -> None:
    debian: list[DebianPackage] = [
        {"name": "libc6", "version": "2.36-9+deb12u10", "architecture": "amd64"}]
    packages = locked_packages(NLP, LOCK_FILE, lock, {"python": pip_list(lock),
                                                      "debian": debian})
    torch = next(p for p in packages["python"] if p["name"] == "torch")
    assert torch["sha256"] == "d033ff0ac3f5400df862a51bdde9bad83561f3739ea0046e68f5401ebfa67c1b"
    assert packages["debian"] == debian  # apt packages are not locked: dpkg's versions stay
    assert packages["lock"]["file"] == LOCK_FILE
    sbom = json.loads(cyclonedx_sbom(NLP, "v", packages, "bookworm", "debian:bookworm-slim"))
    component = next(c for c in sbom["components"] if c["name"] == "torch")
    assert component["hashes"] == [{"alg": "SHA-256", "content": torch["sha256"]}]
    assert component["purl"] == "pkg:pypi/torch@2.9.1"
    assert len([c for c in sbom["components"] if c["purl"].startswith("pkg:pypi/")]) \
        == len(lock.dists)


def test_torchcodec_pairs_by_torch_minor() -> None:
    compat = load_compat()
    # TorchCodec's README table: 0.9 -> torch 2.9, 0.7 -> 2.8, 0.5 -> 2.7 (newest of each minor)
    assert compat.paired_version("2.9.1", "torchcodec") == "0.9.1"
    assert compat.paired_version("2.9.0", "torchcodec") == "0.9.1"
    assert compat.paired_version("2.8.0", "torchcodec") == "0.7.0"
    assert compat.paired_version("2.7.1", "torchcodec") == "0.5"
    with pytest.raises(CompatError, match=r"no torchcodec release is recorded for torch 2\.10\.0"):
        compat.paired_version("2.10.0", "torchcodec")


def test_expansion_pins_torchcodec_without_a_cuda_tag() -> None:
    images = load_matrix(REPO / "matrix.yaml").by_id()
    assert images[NLP].torch_requirements == ("torchaudio==2.9.1", "torchcodec==0.9.1")
    assert images["torch2.9.1-cu126-py3.11-nlp"].torch_requirements == (
        "torchaudio==2.9.1+cu126", "torchcodec==0.9.1")
    assert images[NLP].torchcodec == "0.9.1"
    assert images["torch2.9.1-cu128-py3.11-vision"].torchcodec is None

"""The compatibility data agrees with shared/facts/torch-cuda.md, cites sources, and refuses
combinations that do not exist with a message that says what does."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from torchstack.cli import main
from torchstack.config.compat import (
    CompatError,
    cuda_tag,
    cudnn_as_int,
    cudnn_major,
    load_compat,
    version_key,
)

# The facts file, written out as expected values (checked 2026-11-28).
# series: (variants, experimental, PyPI default, python range, cudnn, nccl, triton)
FACTS: dict[str, tuple[set[str], set[str], str, tuple[str, str], str, str, str]] = {
    "2.4": ({"11.8", "12.1", "12.4"}, {"12.4"}, "12.1", ("3.8", "3.12"), "9.1.0.70", "2.20.5",
            "3.0.0"),
    "2.5": ({"11.8", "12.1", "12.4"}, set(), "12.4", ("3.9", "3.13"), "9.1.0.70", "2.21.5",
            "3.1.0"),
    "2.6": ({"11.8", "12.4", "12.6"}, {"12.6"}, "12.4", ("3.9", "3.13"), "9.1.0.70", "2.21.5",
            "3.2.0"),
    "2.7": ({"11.8", "12.6", "12.8"}, {"12.8"}, "12.6", ("3.9", "3.13"), "9.5.1.17", "2.26.2",
            "3.3.x"),
    "2.8": ({"12.6", "12.8", "12.9"}, {"12.9"}, "12.8", ("3.9", "3.13"), "9.10.2.21", "2.27.3",
            "3.4.0"),
    "2.9": ({"12.6", "12.8", "13.0"}, {"13.0"}, "12.8", ("3.10", "3.14"), "9.10.2.21", "2.27.5",
            "3.5.x"),
    "2.10": ({"12.6", "12.8", "13.0"}, {"13.0"}, "12.8", ("3.10", "3.14"), "9.10.2.21", "2.27.5",
             "3.6.0"),
    "2.11": ({"12.6", "12.8", "13.0"}, set(), "13.0", ("3.10", "3.14"), "9.19.0.56", "2.28.9",
             "3.6.0"),
}
PAIRS = {
    "2.4.0": "0.19.0", "2.4.1": "0.19.1", "2.5.0": "0.20.0", "2.5.1": "0.20.1",
    "2.6.0": "0.21.0", "2.7.0": "0.22.0", "2.7.1": "0.22.1", "2.8.0": "0.23.0",
    "2.9.0": "0.24.0", "2.9.1": "0.24.1", "2.10.0": "0.25.0", "2.11.0": "0.26.0",
}
DRIVERS = {  # toolkit minimum, minor-version-compatibility floor
    "11.8": ("520.61.05", "450.80.02"), "12.1": ("530.30.02", "525.60.13"),
    "12.4": ("550.54.14", "525.60.13"), "12.6": ("560.28.03", "525.60.13"),
    "12.8": ("570.26", "525.60.13"), "12.9": ("575.51.03", "525.60.13"),
    "13.0": ("580.65.06", "580"),
}
ARCH_2_9 = {
    "12.6": ("5.0", "6.0", "7.0", "7.5", "8.0", "8.6", "9.0"),
    "12.8": ("7.0", "7.5", "8.0", "8.6", "9.0", "10.0", "12.0"),
    "13.0": ("7.5", "8.0", "8.6", "9.0", "10.0", "12.0", "PTX"),
}
# Variants whose wheels pin other cuDNN / NCCL than the PyPI default one (2.9).
VARIANT_LIBS_2_9 = {"12.6": ("9.10.2.21", "2.27.5"), "13.0": ("9.13.0.50", "2.27.7")}


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    text = resources.files("torchstack.config").joinpath("data/compat.yaml").read_text()
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def test_cuda_118_with_torch_29_names_what_exists() -> None:
    with pytest.raises(CompatError) as caught:
        load_compat().variant("2.9.1", "11.8")
    message = str(caught.value)
    assert "torch 2.9.1 has no CUDA 11.8 build" in message
    for cuda in ("12.6 (cu126)", "12.8 (cu128)", "13.0 (cu130)"):
        assert cuda in message
    assert "cu118 last shipped in torch 2.7." in message


def test_last_releases_of_old_variants() -> None:
    compat = load_compat()
    assert compat.last_release_with("12.1") == "2.5.1"
    assert compat.last_release_with("11.8") == "2.7.1"
    assert compat.last_release_with("12.9") == "2.8.0"
    assert compat.last_release_with("10.2") is None


def test_python_39_is_too_old_for_torch_29() -> None:
    compat = load_compat()
    with pytest.raises(CompatError, match=r"supports Python 3\.10 to 3\.14, not 3\.9"):
        compat.check_python("2.9.1", "3.9")
    compat.check_python("2.9.1", "3.10")  # 3.10 > 3.9 numerically, not as text
    compat.check_python("2.9.1", "3.14")
    with pytest.raises(CompatError):
        compat.check_python("2.9.1", "3.15")


@pytest.mark.parametrize(("torch", "known"), [
    ("2.9.7", "known releases: 2.9.0, 2.9.1"),
    ("3.0.0", "known releases: 2.4.0, 2.4.1, 2.5.0"),
])
def test_never_released_torch(torch: str, known: str) -> None:
    with pytest.raises(CompatError) as caught:
        load_compat().release(torch)
    assert f"torch {torch} was never released" in str(caught.value)
    assert known in str(caught.value)


def test_torchvision_must_match_torch() -> None:
    compat = load_compat()
    assert compat.paired_version("2.9.1", "torchvision") == "0.24.1"
    assert compat.paired_version("2.9.1", "torchaudio") == "2.9.1"
    with pytest.raises(CompatError, match="no pairing is recorded for torchtext"):
        compat.paired_version("2.9.1", "torchtext")


def test_every_row_cites_known_sources(raw: dict[str, Any]) -> None:
    sources = set(raw["sources"])
    rows = [*raw["torch"].values(), *raw["cuda"].values()]
    assert rows
    for row in rows:
        assert row["source"], f"a row without sources: {row}"
        assert set(row["source"]) <= sources, set(row["source"]) - sources
    for release in load_compat().releases.values():
        assert set(release.sources) <= sources
    assert all(text.strip() for text in raw["sources"].values())


SERIES: list[str] = sorted(FACTS, key=version_key)


@pytest.mark.parametrize("series", SERIES)
def test_series_agree_with_the_facts(series: str, raw: dict[str, Any]) -> None:
    variants, experimental, default, python, cudnn, nccl, triton = FACTS[series]
    releases = [r for r in load_compat().releases.values() if r.series == series]
    assert releases
    for release in releases:
        assert set(release.variants) == variants
        assert {c for c, v in release.variants.items() if v.experimental} == experimental
        assert release.pypi_default == default
        assert (release.python_min, release.python_max) == python
        # The PyPI default wheel's libraries are always recorded.
        assert release.variants[default].cudnn == cudnn
        assert release.variants[default].nccl == nccl
    assert raw["torch"][series]["triton"] == triton


def test_torch_29_variants_in_detail() -> None:
    release = load_compat().release("2.9.1")
    for cuda, arch in ARCH_2_9.items():
        assert release.variants[cuda].arch == arch
    for cuda, (cudnn, nccl) in VARIANT_LIBS_2_9.items():
        assert (release.variants[cuda].cudnn, release.variants[cuda].nccl) == (cudnn, nccl)
    # What a built 2.9.1 image reported: cudnn.version() 91002.
    assert cudnn_as_int(release.variants["12.8"].cudnn or "") == 91002
    assert release.variants["13.0"].tag == "cu130"


def test_torchvision_and_torchaudio_pairs() -> None:
    compat = load_compat()
    assert set(compat.releases) == set(PAIRS)
    for torch, vision in PAIRS.items():
        assert compat.paired_version(torch, "torchvision") == vision
        assert compat.paired_version(torch, "torchaudio") == torch


def test_driver_minimums() -> None:
    compat = load_compat()
    assert set(compat.drivers) == set(DRIVERS)
    for cuda, (minimum, floor) in DRIVERS.items():
        assert (compat.driver(cuda).driver_min, compat.driver(cuda).compat_floor) == (minimum,
                                                                                       floor)
    with pytest.raises(CompatError, match=r"no driver minimum is recorded for CUDA 10\.2"):
        compat.driver("10.2")


def test_every_variant_has_a_driver_row() -> None:
    compat = load_compat()
    for release in compat.releases.values():
        for cuda in release.variants:
            assert compat.driver(cuda).driver_min


def test_helpers() -> None:
    assert cudnn_as_int("9.10.2.21") == 91002
    assert cudnn_as_int("9.1.0.70") == 90100
    assert cudnn_as_int("8.9.7.29") == 8907
    # The boundary between the two encodings: 9.0.0 is 90000, 8.9.9 is 8909.
    assert [cudnn_major(v) for v in (91002, 90000, 8907, 8000, 100100)] == [9, 9, 8, 8, 10]
    assert cuda_tag("12.8") == "cu128"
    assert cuda_tag("13.0") == "cu130"
    assert version_key("3.10") > version_key("3.9")


def repo_matrix_copy(repo_root: Path, tmp_path: Path, old: str, new: str) -> Path:
    shutil.copytree(repo_root / "layers", tmp_path / "layers")
    text = (repo_root / "matrix.yaml").read_text(encoding="utf-8")
    assert old in text
    (tmp_path / "matrix.yaml").write_text(text.replace(old, new, 1), encoding="utf-8")
    return tmp_path / "matrix.yaml"


def test_cli_refuses_cuda_118_for_torch_29(
    repo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = repo_matrix_copy(repo_root, tmp_path, 'cuda: ["12.6", "12.8", "13.0"]',
                            'cuda: ["12.8", "11.8"]')
    assert main(["--matrix", str(path), "plan"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "(axes.cuda[1]): torch 2.9.1 has no CUDA 11.8 build" in err
    assert all(c in err for c in ("12.6", "12.8", "13.0", "cu118 last shipped in torch 2.7."))


def test_cli_refuses_python_39_for_torch_29(
    repo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = repo_matrix_copy(repo_root, tmp_path, 'python: "3.11"', 'python: "3.9"')
    assert main(["--matrix", str(path), "plan"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "(axes.os[0]): torch 2.9.1 supports Python 3.10 to 3.14, not 3.9" in err

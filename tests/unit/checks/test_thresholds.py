"""Thresholds are judged strictly, by the suite's parser, on both sides (issues 13 and 14).

The same rules reach a user two ways: the expect file inside the container (exit 2 of
`python -m checks`) and matrix.yaml on the host (exit 2 of `torchstack`, with file:line of the
offending key). Both go through checks.expect.parse_expect, so they cannot drift.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.paths import REPO
from torchstack.checks.expect import ExpectError, parse_expect
from torchstack.checks.registry import CHECK_IDS
from torchstack.config.matrix import load_matrix
from torchstack.errors import ConfigError


@pytest.mark.parametrize(
    ("thresholds", "path", "fragment"),
    [
        ({"matmul_min_fraction_of_peak": {"H100": 5.0}},
         ("thresholds", "matmul_min_fraction_of_peak", "H100"), "is 5.0, above 1"),
        ({"matmul_min_fraction_of_peak": 1.5},
         ("thresholds", "matmul_min_fraction_of_peak", "default"), "above 1"),
        ({"matmul_min_fraction_of_peak": {"H10": 0.6}},
         ("thresholds", "matmul_min_fraction_of_peak", "H10"), "did you mean"),
        ({"check_timeout_s": {"nccl": 0}}, ("thresholds", "check_timeout_s", "nccl"),
         "must be greater than 0, got 0"),
        ({"check_timeout_s": -5}, ("thresholds", "check_timeout_s", "default"),
         "must be greater than 0"),
        ({"check_timeout_s": {"default": float("inf")}},
         ("thresholds", "check_timeout_s", "default"), "must be a finite number, got inf"),
        ({"check_timeout_s": {"ncll": 300}}, ("thresholds", "check_timeout_s", "ncll"),
         "did you mean 'thresholds.check_timeout_s.nccl'?"),
        ({"nccl_min_busbw_gbps": {"H100": {"eight": 300}}},
         ("thresholds", "nccl_min_busbw_gbps", "H100", "eight"), "a GPU count such as"),
        ({"nccl_min_busbw_gbps": {"H100": {"8": float("nan")}}},
         ("thresholds", "nccl_min_busbw_gbps", "H100", "8"), "finite"),
        ({"nccl_min_busbw_gbps": {"H100": {"8": 0}}},
         ("thresholds", "nccl_min_busbw_gbps", "H100", "8"), "greater than 0"),
        ({"nccl_min_busbw_gbps": {"H2000": 300}},
         ("thresholds", "nccl_min_busbw_gbps", "H2000"), "did you mean"),
        ({"nccl_multinode_min_busbw_gbps": "fast"},
         ("thresholds", "nccl_multinode_min_busbw_gbps"), "must be a number"),
        ({"nccl_min_busbw_gpbs": {}}, ("thresholds", "nccl_min_busbw_gpbs"),
         "did you mean 'thresholds.nccl_min_busbw_gbps'?"),
    ],
)
def test_the_suite_refuses_bad_thresholds_naming_the_key(
    thresholds: dict[str, object], path: tuple[str, ...], fragment: str
) -> None:
    with pytest.raises(ExpectError) as info:
        parse_expect({"thresholds": thresholds}, "e.json", check_ids=CHECK_IDS)
    assert info.value.path == path
    assert fragment in str(info.value) and str(info.value).startswith("e.json: ")


def test_good_thresholds_parse_into_typed_tables() -> None:
    t = parse_expect({"thresholds": {
        "matmul_min_fraction_of_peak": {"H100": 1, "default": 0},
        "nccl_min_busbw_gbps": {"H100": {"8": 300, "default": 50}, "L4": 10},
        "nccl_multinode_min_busbw_gbps": 20,
        "check_timeout_s": {"compile": 240, "default": 0.5},
    }}, check_ids=CHECK_IDS).thresholds
    assert t.matmul_min_fraction_of_peak == {"H100": 1.0, "default": 0.0}
    assert t.nccl_min_busbw_gbps == {"H100": {"8": 300.0, "default": 50.0},
                                     "L4": {"default": 10.0}}
    assert t.nccl_multinode_min_busbw_gbps == 20.0
    assert t.timeout_for("compile", 1) == 240 and t.timeout_for("train", 1) == 0.5


def test_the_shipped_matrix_gates_8_hopper_gpus_conservatively() -> None:
    matrix = load_matrix(REPO / "matrix.yaml")
    t = matrix.thresholds
    for family in ("H100", "H200"):
        gate = t.busbw_gate((family,), 8)
        # Below the published ring figure (~360 GB/s), so NVLS off still passes.
        assert gate is not None and 0 < gate < 360
        assert t.busbw_gate((family,), 2) is None  # no published figure: no gate
    assert t.nccl_max_bytes >= 1 << 30  # the gate is judged at >= 1 GiB messages
    assert all(0 < f <= 1 for f in t.matmul_min_fraction_of_peak.values())


def _matrix_with(tmp_path: Path, old: str, new: str) -> Path:
    for name in ("matrix.yaml", "layers"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name)
        else:
            shutil.copy(source, tmp_path / name)
    text = (tmp_path / "matrix.yaml").read_text()
    assert old in text
    (tmp_path / "matrix.yaml").write_text(text.replace(old, new))
    return tmp_path / "matrix.yaml"


@pytest.mark.parametrize(
    ("old", "new", "key_path", "says"),
    [
        ("H100: 0.6", "H100: 5.0", "checks.thresholds.matmul_min_fraction_of_peak.H100",
         "above 1"),
        ("check_timeout_s: {default: 120", "check_timeout_s: {default: 0",
         "checks.thresholds.check_timeout_s.default", "greater than 0"),
        ("check_timeout_s: {default: 120", "check_timeout_s: {default: .inf",
         "checks.thresholds.check_timeout_s.default", "finite"),
        ("nccl: 300, nlp", "ncll: 300, nlp", "checks.thresholds.check_timeout_s.ncll",
         "did you mean 'thresholds.check_timeout_s.nccl'?"),
        ('H200: {"8": 300}', 'H200: {"8": -1}', "checks.thresholds.nccl_min_busbw_gbps.H200.8",
         "greater than 0"),
        ("    nccl_min_busbw_gbps:", "    nccl_min_busbw_gbp:",
         "checks.thresholds.nccl_min_busbw_gbp", "did you mean"),
    ],
)
def test_matrix_thresholds_fail_with_the_line_of_the_key(
    tmp_path: Path, old: str, new: str, key_path: str, says: str
) -> None:
    path = _matrix_with(tmp_path, old, new)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if new in text)
    with pytest.raises(ConfigError) as info:
        load_matrix(path)
    message = str(info.value)
    assert message.startswith(f"matrix.yaml:{line} ({key_path}): "), message
    assert says in message
    assert info.value.exit_code == 2

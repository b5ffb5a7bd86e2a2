"""Expect-file parsing, its error messages, check selection and the CLI's usage errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from torchstack.checks.__main__ import main
from torchstack.checks.expect import GIB, MIB, Expect, ExpectError, load_expect, parse_expect
from torchstack.checks.registry import ALL_CHECKS, CHECK_IDS, SelectionError, present_layers, select

EXAMPLE: dict[str, Any] = {
    "image_id": "torch2.9.1-cu128-py3.11-vision",
    "layers": ["torch", "vision"],
    "checks": ["versions", "cuda", "driver", "matmul", "nccl", "shm", "base", "hygiene", "vision"],
    "expected": {
        "torch": "2.9.1+cu128",
        "cuda": "12.8",
        "cudnn": 91002,
        "nccl": "2.27.5",
        "python": "3.11",
        "torchvision": "0.24.1",
        "torchaudio": None,
    },
    "driver_min": "570.26",
    "thresholds": {
        "matmul_min_fraction_of_peak": {"default": 0.5, "H100": 0.6, "H200": 0.6},
        "shm_min_bytes": 1073741824,
        "nccl_max_bytes": 268435456,
        "nccl_min_busbw_gbps": {},
        "check_timeout_s": {"default": 120, "nccl": 300, "nlp": 180},
    },
}


def test_example_parses_into_typed_values() -> None:
    expect = parse_expect(EXAMPLE, "x.json", check_ids=CHECK_IDS)
    assert expect.image_id == "torch2.9.1-cu128-py3.11-vision"
    assert expect.checks is not None and "vision" in expect.checks
    assert expect.expected.cudnn == 91002 and expect.expected.torchaudio is None
    assert expect.driver_min == "570.26"
    thresholds = expect.thresholds
    assert thresholds.matmul_min_fraction_of_peak["H200"] == 0.6
    assert thresholds.shm_min_bytes == GIB and thresholds.nccl_max_bytes == 256 * MIB
    assert thresholds.timeout_for("nccl", 10) == 300
    assert thresholds.timeout_for("shm", 10) == 120  # the file's default beats the module's
    assert thresholds.matmul_size == 8192


def test_empty_file_means_no_expectations() -> None:
    expect = parse_expect({}, check_ids=CHECK_IDS)
    assert expect.checks is None and expect.expected.torch is None
    assert expect.thresholds.timeout_for("shm", 30) == 30
    assert expect.thresholds.matmul_min_fraction_of_peak == {"default": 0.5}


def test_bare_numbers_become_default_maps() -> None:
    expect = parse_expect(
        {"thresholds": {"matmul_min_fraction_of_peak": 0.7, "check_timeout_s": 9}}
    , check_ids=CHECK_IDS)
    assert expect.thresholds.matmul_min_fraction_of_peak == {"default": 0.7}
    assert expect.thresholds.timeout_for("anything", 100) == 9


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ([], "top level must be a JSON object, got list"),
        ({"chekcs": []}, "unknown key 'chekcs'; did you mean 'checks'?"),
        (
            {"expected": {"tourch": "2.9.1"}},
            "unknown key 'expected.tourch'; did you mean 'expected.torch'?",
        ),
        ({"thresholds": {"shm_min_byte": 1}}, "did you mean 'thresholds.shm_min_bytes'?"),
        ({"checks": "versions"}, "checks must be a list of strings"),
        ({"expected": {"torch": 2.9}}, "expected.torch must be a string, got float"),
        ({"expected": {"cudnn": "9.10"}}, "expected.cudnn must be an integer like 91002"),
        ({"expected": {"cuda": "cu128"}}, "expected.cuda must be dotted digits"),
        ({"driver_min": "latest"}, "driver_min must look like '570.26'"),
        ({"thresholds": {"shm_min_bytes": "1g"}}, "shm_min_bytes must be a positive integer"),
        ({"thresholds": {"shm_min_bytes": True}}, "shm_min_bytes must be a positive integer"),
        (
            {"thresholds": {"matmul_min_fraction_of_peak": {"H100": "high"}}},
            "thresholds.matmul_min_fraction_of_peak.H100 must be a number, got str",
        ),
    ],
)
def test_bad_input_names_the_key(data: object, fragment: str) -> None:
    with pytest.raises(ExpectError) as info:
        parse_expect(data, "img.json", check_ids=CHECK_IDS)
    assert fragment in str(info.value)
    assert str(info.value).startswith("img.json: ")


def test_load_expect_reports_missing_file_and_json_position(tmp_path: Path) -> None:
    with pytest.raises(ExpectError, match=r"cannot read expect file .*nope\.json"):
        load_expect(str(tmp_path / "nope.json"), CHECK_IDS)
    with pytest.raises(ExpectError, match=r"cannot read expect file .*: not UTF-8"):
        binary = tmp_path / "binary.json"
        binary.write_bytes(b"\xff\xfe{}")
        load_expect(str(binary), CHECK_IDS)
    with pytest.raises(ExpectError, match="cannot read expect file"):
        load_expect(str(tmp_path), CHECK_IDS)  # a directory
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "checks": [,]\n}\n')
    with pytest.raises(ExpectError, match=r"broken.json:2:\d+: invalid JSON"):
        load_expect(str(broken), CHECK_IDS)


def test_cli_exit_2_on_bad_expect_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"thresholds": {"shm_min_bytes": -1}}))
    assert main(["--json", "--expect", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "thresholds.shm_min_bytes must be a positive integer" in lines[0]
    assert "Traceback" not in captured.err


def test_cli_exit_2_on_unknown_only_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "--only", "versions,nccll"]) == 2
    err = capsys.readouterr().err
    assert "unknown check id 'nccll' in --only; did you mean 'nccl'?" in err


def test_cli_exit_2_on_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--gpu", "sometimes"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "invalid choice: 'sometimes'" in err


def test_selection_rules() -> None:
    ids = [spec.id for spec in ALL_CHECKS]
    assert ids == [
        "versions",
        "cuda",
        "driver",
        "matmul",
        "nccl",
        "shm",
        "base",
        "hygiene",
        "compile",
        "train",
        "vision",
        "nlp",
        "audio",
    ]
    ordered = select(Expect(checks=("shm", "versions")))
    assert [s.id for s in ordered] == ["versions", "shm"]  # suite order, not file order
    assert [s.id for s in select(Expect(checks=("vision",)), only=["nlp"])] == ["nlp"]
    by_layer = [s.id for s in select(Expect(layers=("torch", "vision")))]
    assert "vision" in by_layer and "nlp" not in by_layer and "cuda" in by_layer
    here = [s.id for s in select(Expect(), layers_here=lambda: ("torch",))]
    assert here == ids[:10]
    with pytest.raises(SelectionError, match="did you mean 'hygiene'"):
        select(Expect(checks=("hygeine",)))


def test_present_layers_uses_the_probe_modules() -> None:
    assert present_layers(lambda module: module == "transformers") == ("torch", "nlp")
    assert present_layers(lambda module: False) == ("torch",)  # torch always: missing must fail

"""Peak table lookup by device name, and the matmul gate maths."""

from __future__ import annotations

import pytest

from torchstack.checks.peaks import PEAKS, lookup_threshold, match_peak
from torchstack.checks.suite.matmul import Measurement, judge, matmul_flops, rate


@pytest.mark.parametrize(
    ("device_name", "key"),
    [
        ("NVIDIA H200", "H200"),
        ("NVIDIA H200 NVL", "H200 NVL"),
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA H100 NVL", "H100 NVL"),
        ("NVIDIA A100-SXM4-80GB", "A100 SXM4 80GB"),
        ("NVIDIA A100-SXM4-40GB", "A100 SXM4 40GB"),
        ("NVIDIA A100 80GB PCIe", "A100 PCIe 80GB"),
        ("NVIDIA A100-PCIE-40GB", "A100 PCIe 40GB"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA A10G", "A10G"),
        ("NVIDIA A10", "A10"),
        ("NVIDIA GeForce RTX 4090", "RTX 4090"),
    ],
)
def test_match_peak_by_name(device_name: str, key: str) -> None:
    row = match_peak(device_name)
    assert row is not None and row.key == key


@pytest.mark.parametrize("device_name", ["NVIDIA L40", "NVIDIA GeForce RTX 3090", "Tesla T4", ""])
def test_unknown_gpus_have_no_peak(device_name: str) -> None:
    assert match_peak(device_name) is None


def test_table_rows_are_sourced_and_sane() -> None:
    assert len({row.key for row in PEAKS}) == len(PEAKS)
    for row in PEAKS:
        assert row.source.strip()
        assert 0 < row.tf32_tflops < row.bf16_tflops
    # Values the project's verified facts file states.
    for name in ("NVIDIA H100 80GB HBM3", "NVIDIA H200"):
        hopper = match_peak(name)
        assert hopper is not None and (hopper.bf16_tflops, hopper.tf32_tflops) == (989.0, 495.0)
    a100 = match_peak("NVIDIA A100-SXM4-80GB")
    assert a100 is not None and (a100.bf16_tflops, a100.tf32_tflops) == (312.0, 156.0)


def test_lookup_threshold_prefers_key_then_family_then_default() -> None:
    pcie = match_peak("NVIDIA H100 PCIe")
    table = {"default": 0.5, "H100": 0.6}
    assert lookup_threshold(table, pcie) == 0.6
    assert lookup_threshold({**table, "H100 PCIe": 0.55}, pcie) == 0.55
    assert lookup_threshold(table, match_peak("NVIDIA L4")) == 0.5
    assert lookup_threshold({}, pcie) is None
    assert lookup_threshold(table, None) == 0.5


def test_rate_is_two_n_cubed_over_time() -> None:
    assert matmul_flops(8192) == 2 * 8192**3
    assert rate(1000, 2.0) == pytest.approx(1e9)


FRACTIONS = {"default": 0.5, "H100": 0.6, "H200": 0.6}


def test_judge_passes_a_fast_h100_and_reports_fractions() -> None:
    problems, notes, metrics = judge(
        [
            Measurement(0, "NVIDIA H100 80GB HBM3", "bf16", 794.5),
            Measurement(0, "NVIDIA H100 80GB HBM3", "tf32", 400.0),
        ],
        FRACTIONS,
    )
    assert problems == []
    assert metrics["bf16_tflops"].value == 794.5
    assert metrics["bf16_fraction_of_peak"].value == pytest.approx(794.5 / 989.0)
    assert metrics["tf32_fraction_of_peak"].unit == "ratio"
    assert len(notes) == 2


def test_judge_fails_below_the_family_gate_with_a_fix() -> None:
    # 0.55 of peak passes the 0.5 default but not the H200 gate of 0.6.
    problems, _, _ = judge([Measurement(0, "NVIDIA H200", "bf16", 0.55 * 989.0)], FRACTIONS)
    assert len(problems) == 1
    assert "below the 0.6 gate" in problems[0] and "nvidia-smi" in problems[0]
    problems, _, _ = judge([Measurement(0, "NVIDIA L4", "bf16", 0.55 * 121.0)], FRACTIONS)
    assert problems == []


def test_judge_unknown_gpu_is_reported_without_gate() -> None:
    problems, notes, metrics = judge([Measurement(0, "NVIDIA L40", "bf16", 1.0)], FRACTIONS)
    assert problems == [] and "no gate" in notes[0]
    assert "bf16_fraction_of_peak" not in metrics


def test_judge_several_gpus_headline_is_the_worst() -> None:
    problems, _, metrics = judge(
        [
            Measurement(0, "NVIDIA H200", "bf16", 800.0),
            Measurement(1, "NVIDIA H200", "bf16", 500.0),
        ],
        FRACTIONS,
    )
    assert metrics["gpu0_bf16_tflops"].value == 800.0
    assert metrics["bf16_tflops"].value == 500.0
    assert metrics["bf16_fraction_of_peak"].value == pytest.approx(500.0 / 989.0)
    assert len(problems) == 1 and "cuda:1" in problems[0]

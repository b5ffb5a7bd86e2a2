"""The in-container suite's gates, through the checks themselves (issue 22, item 9: behaviours 6,
7 and the suite's half of 9).

The matmul check runs against the fake CUDA surface (fake_cuda.py), the driver check against a
fake pynvml module and a fake torch, the versions check against a fake torch told by the host's
own expect document (config.expected.expect_for). Each test's docstring names the one-line bug
it catches; the expected verdicts are written out here.
"""

from __future__ import annotations

import platform
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from tests.paths import REPO
from tests.unit.checks.fake_cuda import FakeTorch
from torchstack.checks.expect import Expect, Thresholds, parse_expect
from torchstack.checks.registry import CHECK_IDS
from torchstack.checks.spec import CheckContext
from torchstack.checks.suite import driver, matmul, versions
from torchstack.checks.suite.matmul import Measurement, judge
from torchstack.config.expected import expect_for
from torchstack.config.matrix import load_matrix

H100 = "NVIDIA H100 80GB HBM3"


# --- 6. a GPU exactly at the matmul gate passes ----------------------------------------------

@pytest.mark.parametrize(("name", "bf16", "tf32", "fractions"), [
    # 494.5 / 989 and 247.5 / 495 are exactly 0.5 in binary floating point.
    ("NVIDIA H200", 494.5, 247.5, {"default": 0.5}),
    # 90.75 / 121 and 45 / 60 are exactly 0.75; the gate found by the family key.
    ("NVIDIA L4", 90.75, 45.0, {"default": 0.5, "L4": 0.75}),
])
def test_a_gpu_exactly_at_the_gate_passes(name: str, bf16: float, tf32: float,
                                          fractions: dict[str, float]) -> None:
    """Bug caught: judge() failing a GPU at the gate (`fraction <= gate` for `fraction < gate`),
    though its own message promises ">= gate"."""
    gate = fractions.get(name.split()[-1], fractions["default"])
    problems, notes, metrics = judge(
        [Measurement(0, name, "bf16", bf16), Measurement(0, name, "tf32", tf32)], fractions)
    assert metrics["bf16_fraction_of_peak"].value == gate  # exactly at it, by construction
    assert problems == []
    assert all(note.endswith(f">= {gate:g}") for note in notes)


def test_the_matmul_check_passes_a_gpu_exactly_at_its_gate() -> None:
    """The same bug through matmul.run_gpu: the gate set to the fraction this fake GPU reaches
    (measured once with the gate out of the way) passes; a hair above it fails."""
    def durations(_device: int, _dtype: str, nth: int) -> float:
        return 50.0 if nth < matmul.GPU_WARMUP else 2.0  # ms: 549.8 TFLOP/s at n = 8192

    def run(gate: float) -> Any:
        ctx = CheckContext(gpu_mode="required", gpu_present=True, expect=Expect(
            thresholds=Thresholds(matmul_size=8192, matmul_min_fraction_of_peak={"H100": gate})))
        return matmul.run_gpu(ctx, FakeTorch([H100], durations))

    reached = run(0.0).metrics["bf16_fraction_of_peak"].value  # tf32 reaches twice as much
    assert 0.5 < reached < 0.6
    at_gate = run(reached)
    assert at_gate.status == "pass", at_gate.message
    assert run(reached + 1e-9).status == "fail"


# --- 7. the driver check compares versions numerically ---------------------------------------

class FakeNvml:
    """The pynvml calls the driver check makes: one healthy GPU and the given driver."""

    NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
    NVML_VOLATILE_ECC = 0

    class NVMLError(Exception):
        pass

    def __init__(self, version: str) -> None:
        self.version = version

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        pass

    def nvmlSystemGetDriverVersion(self) -> bytes:
        return self.version.encode()  # old nvidia-ml-py answers bytes

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, _handle: int) -> str:
        return H100

    def nvmlDeviceGetMemoryInfo(self, _handle: int) -> SimpleNamespace:
        return SimpleNamespace(total=80 << 30)

    def nvmlDeviceGetTotalEccErrors(self, _handle: int, _kind: int, _counter: int) -> int:
        return 0


def hopper_torch() -> SimpleNamespace:
    """torch's CUDA surface with one sm_90 GPU that this build has native code for."""
    cuda = SimpleNamespace(get_arch_list=lambda: ["sm_80", "sm_90"], device_count=lambda: 1,
                           get_device_capability=lambda _index: (9, 0))
    return SimpleNamespace(cuda=cuda)


@pytest.mark.parametrize(("installed", "minimum", "status"), [
    ("570.100", "570.86", "pass"),  # as text, "570.100" < "570.86"
    ("570.86.15", "570.86", "pass"),
    ("570.86", "570.86", "pass"),
    ("99.0", "570.26", "fail"),  # as text, "99.0" > "570.26"
    ("570.9", "570.86", "fail"),  # as text, "570.9" > "570.86"
    ("565.57.01", "570.26", "fail"),
])
def test_the_driver_check_compares_versions_numerically(
        monkeypatch: pytest.MonkeyPatch, installed: str, minimum: str, status: str) -> None:
    """Bugs caught: the driver check comparing the strings (`elif version >= minimum`) or
    swapping its arguments (`dotted_ge(minimum, version)`), which its helper's tests never see."""
    monkeypatch.setattr(driver, "load_pynvml", lambda: FakeNvml(installed))
    monkeypatch.setitem(sys.modules, "torch", hopper_torch())
    ctx = CheckContext(gpu_mode="required", gpu_present=True, expect=Expect(driver_min=minimum))
    outcome = driver.run(ctx)
    assert outcome.status == status, outcome.message
    if status == "fail":
        assert f"driver {installed} is older than the required {minimum}" in outcome.message
    else:
        assert f"driver {installed} >= {minimum}" in outcome.message


# --- 9. the versions check: the wrong CUDA local label alone fails the image -----------------

CU128 = "torch2.9.1-cu128-py3.11-base"


def image_torch(version: str) -> SimpleNamespace:
    """torch as seen inside a cu128 image, but for torch.__version__: every other fact right."""
    return SimpleNamespace(
        __version__=version, version=SimpleNamespace(cuda="12.8"),
        backends=SimpleNamespace(cudnn=SimpleNamespace(version=lambda: 91002)),
        cuda=SimpleNamespace(nccl=SimpleNamespace(version=lambda: (2, 27, 5))),
        # The cu128 wheel's compiled archs (read inside the built base): the contract holds.
        _C=SimpleNamespace(_cuda_getArchFlags=lambda: "sm_70 sm_75 sm_80 sm_86 sm_90 sm_100"
                                                      " sm_120"))


@pytest.mark.parametrize(("torch_version", "status"), [
    ("2.9.1+cu128", "pass"),  # the control: the same image with the right label passes
    ("2.9.1+cu126", "fail"),
    ("2.9.1", "fail"),  # no label at all: not the build the image asked for either
])
def test_the_versions_check_fails_a_torch_with_another_cuda_label(
        monkeypatch: pytest.MonkeyPatch, torch_version: str, status: str) -> None:
    """Bugs caught: the label dropped from what the host asks (`expected_torch_version`
    returning `self.torch`), or from the comparison (torch_matches checking the public
    version only): a cu126 torch in a cu128 image would pass while torch.version.cuda agrees."""
    matrix = load_matrix(REPO / "matrix.yaml")
    document = expect_for(matrix.by_id()[CU128], matrix)
    expected = document["expected"]
    assert isinstance(expected, dict) and expected["cuda"] == "12.8"  # the fake torch agrees
    expect = parse_expect(document, check_ids=CHECK_IDS)
    monkeypatch.setitem(sys.modules, "torch", image_torch(torch_version))
    monkeypatch.setattr(platform, "python_version", lambda: "3.11.9")
    monkeypatch.setattr(versions, "dist_version", lambda _name: None)  # no companions here
    outcome = versions.run(CheckContext(expect=expect))
    assert outcome.status == status, outcome.message
    if status == "fail":
        assert outcome.message.startswith(f"torch is {torch_version}, expected 2.9.1+cu128.")

"""The GPU logic of matmul and nccl, pinned without a GPU (issue 13).

matmul runs against a fake of torch's CUDA surface (tests/unit/checks/fake_cuda.py) whose
events report milliseconds; nccl's planning, gating and the worker's warm-up are driven with
scripted documents and a fake torch.distributed. Each expected number is computed here from
the scripted durations, never by the code under test.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest

from tests.unit.checks.fake_cuda import FakeTorch
from torchstack.checks import _allreduce_worker
from torchstack.checks.expect import Expect, Thresholds
from torchstack.checks.spec import CheckContext
from torchstack.checks.suite import matmul, nccl
from torchstack.checks.suite.nccl import Plan, evaluate, plan_for, worker_commands

H100 = "NVIDIA H100 80GB HBM3"
N = 8192
FLOP = 2.0 * N**3
TIMED_MS = (2.0, 1.0, 4.0)  # cycled over the timed repeats: median 2, min 1, mean 2.33
WARMUP_MS = 50.0  # the first calls of each device/dtype are slow (kernel selection)


def durations(slow_device: int | None = None) -> Any:
    def duration(device: int, _dtype: str, nth: int) -> float:
        factor = 10.0 if device == slow_device else 1.0
        if nth < matmul.GPU_WARMUP:
            return WARMUP_MS * factor
        return TIMED_MS[(nth - matmul.GPU_WARMUP) % len(TIMED_MS)] * factor

    return duration


def ctx_for(gpus: int, **thresholds: Any) -> CheckContext:
    facts = {"gpus": [{"index": i, "name": H100} for i in range(gpus)]}
    return CheckContext(
        gpu_mode="required",
        gpu_present=True,
        expect=Expect(thresholds=Thresholds(matmul_size=N, **thresholds)),
        facts=facts,
    )


def expected_tflops(scale: float = 1.0) -> float:
    timed = [TIMED_MS[i % len(TIMED_MS)] * scale for i in range(matmul.GPU_REPEATS)]
    return FLOP / (statistics.median(timed) / 1000.0) / 1e12


# --- matmul ------------------------------------------------------------------------------


def test_tflops_is_from_the_median_of_event_milliseconds() -> None:
    torch = FakeTorch([H100], durations())
    outcome = matmul.run_gpu(ctx_for(1), torch)
    want = expected_tflops()  # 2 n^3 / 2 ms = 549.8 TFLOP/s
    assert want == pytest.approx(549.76, rel=1e-3)
    assert outcome.metrics["bf16_tflops"].value == pytest.approx(want)
    assert outcome.metrics["tf32_tflops"].value == pytest.approx(want)
    assert outcome.metrics["bf16_fraction_of_peak"].value == pytest.approx(want / 989.0)


def test_timing_starts_only_after_warm_up_on_each_device_and_dtype() -> None:
    torch = FakeTorch([H100, H100], durations())
    matmul.run_gpu(ctx_for(2), torch)
    # Events come in start/end pairs: a matmul between them is timed, any other is warm-up.
    timing: dict[int, bool] = {}
    seen: dict[tuple[int, str], list[bool]] = {}
    for call in torch.log:
        if call.op == "record":
            timing[call.device] = not timing.get(call.device, False)
        elif call.op == "matmul":
            seen.setdefault((call.device, call.dtype), []).append(timing.get(call.device, False))
    assert set(seen) == {(d, t) for d in (0, 1) for t in ("bf16", "fp32")}
    for key, timed in seen.items():
        assert timed[0] is False, f"{key}: the first matmul was timed (no warm-up)"
        assert timed.count(False) >= 1 and timed.count(True) == matmul.GPU_REPEATS, key
        first_timed = timed.index(True)
        assert all(timed[first_timed:]), f"{key}: warm-up calls between timed ones"


def test_fp32_matmuls_run_with_tf32_and_the_setting_is_restored() -> None:
    torch = FakeTorch([H100], durations())
    matmul.run_gpu(ctx_for(1), torch)
    fp32 = torch.matmuls(0, "fp32")
    assert fp32 and {c.precision for c in fp32} == {"high"}  # "high" = TF32 tensor cores
    assert torch.precision == "highest"


def test_every_device_is_measured_and_the_slow_one_fails_the_gate() -> None:
    torch = FakeTorch([H100, H100], durations(slow_device=1))
    outcome = matmul.run_gpu(ctx_for(2), torch)
    assert {c.device for c in torch.log if c.op == "matmul"} == {0, 1}
    assert outcome.metrics["gpu0_bf16_tflops"].value == pytest.approx(expected_tflops())
    assert outcome.metrics["gpu1_bf16_tflops"].value == pytest.approx(expected_tflops(10.0))
    assert outcome.status == "fail"
    assert "cuda:1" in outcome.message and "below the 0.5 gate" in outcome.message


def test_a_fast_device_passes_and_a_raised_gate_fails_it() -> None:
    assert matmul.run_gpu(ctx_for(1), FakeTorch([H100], durations())).status == "pass"
    strict = ctx_for(1, matmul_min_fraction_of_peak={"H100": 0.6})  # 0.556 < 0.6
    outcome = matmul.run_gpu(strict, FakeTorch([H100], durations()))
    assert outcome.status == "fail" and "below the 0.6 gate" in outcome.message


# --- nccl --------------------------------------------------------------------------------

GIB = 1 << 30


def test_gpu_plan_has_one_rank_per_gpu_warm_up_and_multi_gb_sizes() -> None:
    plan = plan_for(ctx_for(4, nccl_max_bytes=8 * GIB))
    assert plan.backend == "nccl" and plan.ranks == 4
    assert plan.sizes[-1] == 8 * GIB and plan.warmup >= 1 and plan.iters >= 5
    commands = worker_commands(plan, port=1234, hard_timeout_s=60)
    assert [c[c.index("--rank") + 1] for c in commands] == ["0", "1", "2", "3"]
    for command in commands:
        assert command[command.index("--world-size") + 1] == "4"
        assert command[command.index("--warmup") + 1] == str(plan.warmup)


def test_cpu_stand_in_keeps_small_sizes() -> None:
    cpu = CheckContext(gpu_mode="off", expect=Expect(thresholds=Thresholds(nccl_max_bytes=8 * GIB)))
    plan = plan_for(cpu)
    assert plan.backend == "gloo" and plan.ranks == 2 and plan.sizes[-1] <= 16 << 20


def _doc(ranks: int, algbw_gbps: float, size: int = 8 * GIB) -> dict[str, Any]:
    return {"world_size": ranks, "mismatches": 0, "expected_value": ranks * (ranks + 1) / 2,
            "results": [{"bytes": size, "seconds": size / (algbw_gbps * 1e9)}]}


def test_the_gate_is_on_busbw_with_the_real_world_size() -> None:
    # 8 ranks: busbw = algbw * 2 * 7 / 8 = 1.75 algbw. algbw 200 is below a 300 gate,
    # busbw 350 is above it: this passes only when the gate reads busbw.
    plan = Plan("nccl", 8, [8 * GIB], 5, 20)
    outcome = evaluate(_doc(8, 200.0), plan, 300.0)
    assert outcome.status == "pass", outcome.message
    assert outcome.metrics["busbw_8GiB"].value == pytest.approx(350.0)
    assert outcome.metrics["world_size"].value == 8
    assert evaluate(_doc(8, 160.0), plan, 300.0).status == "fail"  # busbw 280 < 300


def test_run_applies_the_gate_for_the_gpu_model_and_count(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Plan] = []

    def launch(plan: Plan, _timeout: float) -> dict[str, Any]:
        seen.append(plan)
        return _doc(plan.ranks, 100.0)  # busbw 175 GB/s on 8 ranks

    monkeypatch.setattr(nccl, "launch", launch)
    table = {"H100": {"8": 300.0}, "default": {"default": 10.0}}
    slow = nccl.run(ctx_for(8, nccl_max_bytes=8 * GIB, nccl_min_busbw_gbps=table))
    assert seen[-1].ranks == 8
    assert slow.status == "fail" and "below the 300 GB/s gate" in slow.message
    # 4 GPUs: no H100 entry for that count, so the catch-all default applies.
    four = nccl.run(ctx_for(4, nccl_max_bytes=8 * GIB, nccl_min_busbw_gbps=table))
    assert four.status == "pass" and ">= the 10 GB/s gate" in four.message
    ungated = nccl.run(ctx_for(8, nccl_max_bytes=8 * GIB))
    assert ungated.status == "pass" and "no busbw gate" in ungated.message


def test_gate_lookup_most_specific_first() -> None:
    thresholds = Thresholds(nccl_min_busbw_gbps={
        "H100 SXM": {"8": 340.0}, "H100": {"8": 300.0, "default": 100.0},
        "default": {"2": 5.0},
    })
    assert thresholds.busbw_gate(("H100 SXM", "H100"), 8) == 340.0
    assert thresholds.busbw_gate(("H100 PCIe", "H100"), 8) == 300.0
    assert thresholds.busbw_gate(("H100 PCIe", "H100"), 4) == 100.0
    assert thresholds.busbw_gate(("L4", "L4"), 2) == 5.0
    assert thresholds.busbw_gate(("L4", "L4"), 4) is None


class FakeDist:
    """torch.distributed for one rank: all-reduce is the identity; calls are logged."""

    class ReduceOp:
        MAX = "max"

    def __init__(self, log: list[tuple[str, int]]) -> None:
        self.log = log

    def get_rank(self) -> int:
        return 0

    def get_world_size(self) -> int:
        return 1

    def all_reduce(self, tensor: Any, op: Any = None) -> None:
        self.log.append(("all_reduce", int(tensor.numel())))


def test_worker_warms_up_each_size_before_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    log: list[tuple[str, int]] = []
    ticks = iter(range(1000))

    def clock() -> float:
        log.append(("clock", 0))
        return float(next(ticks))

    monkeypatch.setattr(time, "perf_counter", clock)
    sizes, warmup, iters = [4096, 8192], 5, 3
    doc = _allreduce_worker.measure(torch.device("cpu"), sizes, warmup, iters, FakeDist(log))
    assert doc["world_size"] == 1 and doc["mismatches"] == 0
    for size in sizes:
        numel = size // 4
        first_clock = next(
            i for i, (op, _) in enumerate(log)
            if op == "clock" and any(n == numel for _, n in log[max(0, i - 2):i])
        )
        before = [n for op, n in log[:first_clock] if op == "all_reduce" and n == numel]
        assert len(before) == warmup  # the checked call + warmup - 1 more
        timed = [n for op, n in log if op == "all_reduce" and n == numel]
        assert len(timed) == warmup + iters

"""matmul: dense matmul throughput against the GPU's datasheet peak.

On GPU: bf16 and tf32 n x n matmul on every device, timed with CUDA events (median of
repeats after warm-up), TFLOP/s = 2 n^3 / t, gated on a fraction of the dense peak from
checks.peaks. Without a usable GPU: an fp32 CPU matmul reported in GFLOP/s, never gated.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..peaks import Peak, lookup_threshold, match_peak
from ..result import Metric, Outcome, failed, passed
from ..spec import CheckContext, CheckSpec

DEFAULT_MIN_FRACTION = 0.5
CPU_SIZE = 1024
GPU_WARMUP, GPU_REPEATS = 5, 20
CPU_WARMUP, CPU_REPEATS = 1, 5
SLOW_FIX = (
    "check clocks and power cap (nvidia-smi -q -d CLOCK,POWER), thermal throttling, other "
    "processes on the GPU, and MIG/vGPU slicing"
)


def matmul_flops(n: int) -> float:
    return 2.0 * n**3


def rate(n: int, seconds: float) -> float:
    """FLOP/s of one n x n x n matmul taking `seconds`."""
    return matmul_flops(n) / seconds


@dataclass(frozen=True)
class Measurement:
    index: int
    name: str
    dtype: str  # "bf16" or "tf32"
    tflops: float


def peak_for(row: Peak, dtype: str) -> float:
    return row.bf16_tflops if dtype == "bf16" else row.tf32_tflops


def judge(
    measurements: list[Measurement], fractions: Mapping[str, float]
) -> tuple[list[str], list[str], dict[str, Metric]]:
    """(problems, notes, metrics). Headline metrics are the worst device's, which is what gates."""
    problems: list[str] = []
    notes: list[str] = []
    metrics: dict[str, Metric] = {}
    many = len({m.index for m in measurements}) > 1
    worst: dict[str, float] = {}
    for m in measurements:
        prefix = f"gpu{m.index}_" if many else ""
        metrics[f"{prefix}{m.dtype}_tflops"] = Metric(m.tflops, "TFLOP/s")
        worst[f"{m.dtype}_tflops"] = min(worst.get(f"{m.dtype}_tflops", m.tflops), m.tflops)
        row = match_peak(m.name)
        where = f"cuda:{m.index} {m.name} {m.dtype}"
        if row is None:
            notes.append(f"{where} {m.tflops:.1f} TFLOP/s (no peak known for this GPU; no gate)")
            continue
        peak = peak_for(row, m.dtype)
        fraction = m.tflops / peak
        metrics[f"{prefix}{m.dtype}_fraction_of_peak"] = Metric(fraction, "ratio")
        key = f"{m.dtype}_fraction_of_peak"
        worst[key] = min(worst.get(key, fraction), fraction)
        gate = lookup_threshold(fractions, row)
        gate = DEFAULT_MIN_FRACTION if gate is None else gate
        summary = (
            f"{where} {m.tflops:.1f} TFLOP/s = {fraction:.2f} of the {peak:g} TFLOP/s dense peak "
            f"({row.key}, {row.source})"
        )
        if fraction < gate:
            problems.append(f"{summary}, below the {gate:g} gate; {SLOW_FIX}")
        else:
            notes.append(f"{summary} >= {gate:g}")
    if many:
        metrics.update({name: Metric(value, _unit(name)) for name, value in worst.items()})
    return problems, notes, metrics


def _unit(name: str) -> str:
    return "TFLOP/s" if name.endswith("tflops") else "ratio"


def time_gpu(torch: Any, n: int, dtype: str, index: int) -> float:
    """TFLOP/s of an n x n matmul on cuda:`index`: warm-up first, then the median of
    CUDA-event timings. `torch` is the module (a fake of its CUDA surface in unit tests)."""
    device = torch.device("cuda", index)
    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    a = torch.randn(n, n, device=device, dtype=torch_dtype)
    b = torch.randn(n, n, device=device, dtype=torch_dtype)
    out = torch.empty(n, n, device=device, dtype=torch_dtype)
    for _ in range(GPU_WARMUP):  # cuBLAS picks and loads its kernel on the first calls
        torch.matmul(a, b, out=out)
    torch.cuda.synchronize(device)
    times = []
    for _ in range(GPU_REPEATS):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        torch.matmul(a, b, out=out)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000.0)  # CUDA events report ms
    del a, b, out
    torch.cuda.empty_cache()
    # The median: one slow repeat (a clock change, another process) must not move the gate.
    return rate(n, statistics.median(times)) / 1e12


def measure_all(torch: Any, n: int) -> list[Measurement]:
    """bf16 and tf32 on every visible device; fp32 matmuls use TF32 tensor cores meanwhile."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")  # "high" = TF32 for fp32 matmuls
    try:
        measurements = []
        for index in range(torch.cuda.device_count()):
            torch.cuda.set_device(index)
            name = torch.cuda.get_device_name(index)
            for dtype in ("bf16", "tf32"):
                tflops = time_gpu(torch, n, dtype, index)
                measurements.append(Measurement(index, name, dtype, tflops))
        return measurements
    finally:
        torch.set_float32_matmul_precision(previous)


def run_gpu(ctx: CheckContext, torch: Any = None) -> Outcome:
    if torch is None:
        import torch

    n = ctx.expect.thresholds.matmul_size
    measurements = measure_all(torch, n)
    fractions = ctx.expect.thresholds.matmul_min_fraction_of_peak
    problems, notes, metrics = judge(measurements, fractions)
    metrics["matrix_size"] = Metric(n, "n")
    if problems:
        return failed("; ".join(problems), metrics)
    return passed(f"{n}x{n} matmul: " + "; ".join(notes), metrics)


def run_cpu(ctx: CheckContext) -> Outcome:
    import torch

    n = min(CPU_SIZE, ctx.expect.thresholds.matmul_size)
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    for _ in range(CPU_WARMUP):
        torch.matmul(a, b, out=out)
    times = []
    for _ in range(CPU_REPEATS):
        start = time.perf_counter()
        torch.matmul(a, b, out=out)
        times.append(time.perf_counter() - start)
    gflops = rate(n, statistics.median(times)) / 1e9
    metrics = {"fp32_cpu_gflops": Metric(gflops, "GFLOP/s"), "matrix_size": Metric(n, "n")}
    return passed(
        f"CPU stand-in, no gate: fp32 {n}x{n} matmul at {gflops:.1f} GFLOP/s "
        f"on {torch.get_num_threads()} thread(s)",
        metrics,
    )


def run(ctx: CheckContext) -> Outcome:
    return run_gpu(ctx) if ctx.use_gpu else run_cpu(ctx)


CHECK = CheckSpec(
    id="matmul",
    layers=("torch",),
    needs_gpu="partly",
    timeout_s=180,
    run=run,
    summary="bf16/tf32 matmul TFLOP/s vs the dense datasheet peak (CPU fp32 stand-in)",
)

"""nccl: all-reduce across every visible GPU, one process per GPU, exact sums and bandwidth.

Sizes double from 1 MiB up to thresholds.nccl_max_bytes. busbw = algbw * 2(n-1)/n (the
nccl-tests convention), so it is 0 by definition for one rank. The gate
(thresholds.nccl_min_busbw_gbps, by GPU model and count) is judged on the best busbw at
messages of at least GATE_MIN_BYTES: published figures (8xH100/H200 ~360 GB/s ring, ~475 NVLS)
are for multi-GB messages, and small ones are latency-bound. Without a usable GPU the same code
path runs as a stand-in: backend gloo, 2 processes, sizes capped at 16 MiB, never gated.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from .. import PACKAGE, SEARCH_ROOT
from .._allreduce_worker import RESULT_PREFIX
from ..peaks import match_peak
from ..result import Metric, Outcome, failed, passed
from ..spec import CheckContext, CheckSpec

MIB = 1 << 20
GIB = 1 << 30
CPU_MAX_BYTES = 16 * MIB
GATE_MIN_BYTES = GIB  # below this all-reduce is latency-bound: no published figure applies
NCCL_FIX = "check NCCL_DEBUG=INFO, /dev/shm, NCCL_P2P/IB settings"
HUNG = f"all-reduce hung; {NCCL_FIX}"


def bus_bandwidth(algbw: float, ranks: int) -> float:
    """nccl-tests' all-reduce bus bandwidth: algbw * 2(n-1)/n (0 for a single rank)."""
    return algbw * 2.0 * (ranks - 1) / ranks


def message_sizes(max_bytes: int, start: int = MIB) -> list[int]:
    """start, 2*start, ... up to max_bytes; just [max_bytes] when that is below start."""
    if max_bytes < start:
        return [max_bytes]
    sizes = []
    size = start
    while size <= max_bytes:
        sizes.append(size)
        size *= 2
    return sizes


def size_label(size: int) -> str:
    if size % GIB == 0:
        return f"{size // GIB}GiB"
    return f"{size // MIB}MiB" if size % MIB == 0 else f"{size}B"


@dataclass(frozen=True)
class Plan:
    backend: str
    ranks: int
    sizes: list[int]
    warmup: int
    iters: int


def plan_for(ctx: CheckContext) -> Plan:
    max_bytes = ctx.expect.thresholds.nccl_max_bytes
    if ctx.use_gpu:
        ranks = max(len(ctx.facts.get("gpus") or []), 1)
        return Plan("nccl", ranks, message_sizes(max_bytes), 5, 20)
    return Plan("gloo", 2, message_sizes(min(max_bytes, CPU_MAX_BYTES)), 1, 3)



def _tail(handle: IO[bytes], limit: int = 600) -> str:
    handle.seek(0)
    text = handle.read().decode(errors="replace").strip()
    return text[-limit:].replace("\n", " | ")


def worker_commands(plan: Plan, port: int, hard_timeout_s: float) -> list[list[str]]:
    common = [
        *("--world-size", str(plan.ranks), "--backend", plan.backend, "--port", str(port)),
        *("--sizes", ",".join(map(str, plan.sizes)), "--warmup", str(plan.warmup)),
        *("--iters", str(plan.iters), "--timeout", str(hard_timeout_s)),
    ]
    module = f"{PACKAGE}._allreduce_worker"
    return [
        [sys.executable, "-m", module, "--rank", str(rank), *common] for rank in range(plan.ranks)
    ]


def launch(plan: Plan, hard_timeout_s: float) -> dict[str, Any] | str:
    """Run the worker group; the decoded rank-0 document, or a failure message."""
    import torch.distributed as dist

    # The store lives here on a port the OS picks, so workers never race for a free port.
    store = dist.TCPStore(  # type: ignore[attr-defined]
        "127.0.0.1", 0, is_master=True, wait_for_workers=False
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SEARCH_ROOT, env.get("PYTHONPATH")) if p)
    if plan.backend == "gloo":
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # stay on loopback
    return supervise(worker_commands(plan, store.port, hard_timeout_s), env, hard_timeout_s)


def supervise(
    commands: Sequence[Sequence[str]], env: dict[str, str] | None, hard_timeout_s: float
) -> dict[str, Any] | str:
    """Start one process per command (rank = position); wait for all, kill all on the first
    failure or at the deadline. Returns rank 0's RESULT_PREFIX document or a failure message."""
    with contextlib.ExitStack() as stack:
        # Files, not pipes: a chatty rank (NCCL_DEBUG=INFO) can never block on a full pipe.
        outputs = [stack.enter_context(tempfile.TemporaryFile()) for _ in commands]
        procs = [
            subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
            for cmd, out in zip(commands, outputs)  # noqa: B905 (Python 3.9 has no strict=)
        ]
        try:
            return _wait(procs, outputs, hard_timeout_s)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()


def _wait(
    procs: Sequence[subprocess.Popen[bytes]], outputs: Sequence[IO[bytes]], hard_timeout_s: float
) -> dict[str, Any] | str:
    deadline = time.monotonic() + hard_timeout_s
    while True:
        codes = [p.poll() for p in procs]
        bad = [(rank, code) for rank, code in enumerate(codes) if code not in (None, 0)]
        if bad:
            rank, code = bad[0]
            return f"rank {rank} exited with code {code}: {_tail(outputs[rank])}"
        if all(code == 0 for code in codes):
            break
        if time.monotonic() > deadline:
            return f"{HUNG} (no result after {hard_timeout_s:g}s)"
        time.sleep(0.05)
    outputs[0].seek(0)
    for line in reversed(outputs[0].read().decode(errors="replace").splitlines()):
        if line.startswith(RESULT_PREFIX):
            document: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return document
    return f"rank 0 printed no result: {_tail(outputs[0])}"


def evaluate(document: dict[str, Any], plan: Plan, min_busbw: float | None) -> Outcome:
    """Exact sums, then busbw against `min_busbw` (GB/s; None: no gate) at gate-sized messages."""
    ranks = int(document["world_size"])
    metrics: dict[str, Metric] = {"world_size": Metric(ranks, "ranks")}
    peak_bus, peak_alg, peak_at = 0.0, 0.0, 0
    gated_bus, gated_at = None, 0
    for row in document["results"]:
        size, seconds = int(row["bytes"]), float(row["seconds"])
        algbw = size / seconds / 1e9
        busbw = bus_bandwidth(algbw, ranks)
        metrics[f"algbw_{size_label(size)}"] = Metric(algbw, "GB/s")
        metrics[f"busbw_{size_label(size)}"] = Metric(busbw, "GB/s")
        if algbw > peak_alg:
            peak_bus, peak_alg, peak_at = busbw, algbw, size
        if size >= GATE_MIN_BYTES and (gated_bus is None or busbw > gated_bus):
            gated_bus, gated_at = busbw, size
    metrics["peak_busbw"] = Metric(peak_bus, "GB/s")
    metrics["peak_algbw"] = Metric(peak_alg, "GB/s")
    where = f"{plan.backend} all-reduce across {ranks} rank(s)"
    if document["mismatches"]:
        return failed(
            f"{where} gave {document['mismatches']} wrong element(s) (expected every element "
            f"= {document['expected_value']:g}); {NCCL_FIX}",
            metrics,
        )
    speed = f"peak busbw {peak_bus:.2f} GB/s, algbw {peak_alg:.2f} GB/s at {size_label(peak_at)}"
    if ranks == 1:
        speed = (
            f"peak algbw {peak_alg:.2f} GB/s at {size_label(peak_at)}; busbw is 0 by "
            "definition for one rank"
        )
    lead = "CPU stand-in, no gate: " if plan.backend == "gloo" else ""
    if min_busbw is None or ranks < 2:
        tail = "" if lead or ranks < 2 else " (no busbw gate for this GPU model and count)"
        return passed(f"{lead}{where} exact; {speed}{tail}", metrics)
    if gated_bus is None:
        largest = max((int(r["bytes"]) for r in document["results"]), default=0)
        return failed(
            f"{where} exact, but the largest message was {size_label(largest)}: the "
            f"{min_busbw:g} GB/s busbw gate is judged at messages of at least "
            f"{size_label(GATE_MIN_BYTES)}, where published figures hold; raise "
            "thresholds.nccl_max_bytes (e.g. 8589934592)",
            metrics,
        )
    metrics["gated_busbw"] = Metric(gated_bus, "GB/s")
    if gated_bus < min_busbw:
        return failed(
            f"{where} exact but busbw {gated_bus:.1f} GB/s at {size_label(gated_at)} is below the "
            f"{min_busbw:g} GB/s gate; check NVLink/P2P (nvidia-smi topo -m, nvidia-smi nvlink "
            "-s), NCCL_P2P_DISABLE/NCCL_SHM_DISABLE/NCCL_NVLS_ENABLE, and /dev/shm size",
            metrics,
        )
    return passed(
        f"{where} exact; busbw {gated_bus:.1f} GB/s at {size_label(gated_at)} >= the "
        f"{min_busbw:g} GB/s gate; {speed}",
        metrics,
    )


def gate_for(ctx: CheckContext, ranks: int) -> float | None:
    """The busbw gate for these GPUs: by the first GPU's model (peak-table key, then family)
    and the rank count; None for the gloo stand-in or an unlisted model/count."""
    row = match_peak(ctx.gpu_names[0]) if ctx.gpu_names else None
    keys = (row.key, row.family) if row is not None else ()
    return ctx.expect.thresholds.busbw_gate(keys, ranks)


def run(ctx: CheckContext) -> Outcome:
    plan = plan_for(ctx)
    hard_timeout = max(1.0, min(ctx.timeout_s - 10.0, ctx.timeout_s * 0.9))
    outcome = launch(plan, hard_timeout)
    if isinstance(outcome, str):
        where = f"{plan.backend} all-reduce across {plan.ranks} process(es)"
        return failed(f"{where} failed: {outcome}")
    min_busbw = gate_for(ctx, plan.ranks) if plan.backend == "nccl" else None
    return evaluate(outcome, plan, min_busbw)


CHECK = CheckSpec(
    id="nccl",
    layers=("torch",),
    needs_gpu="partly",
    timeout_s=300,
    run=run,
    summary="exact all-reduce across all GPUs with algbw/busbw per size (gloo CPU stand-in)",
)

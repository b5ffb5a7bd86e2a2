"""Run a list of checks: GPU gating, one isolated child per check, timeouts, results.

`run_checks(specs, ctx)` is the small API the CLI and the tests share: tests pass their own
CheckSpecs (a check that sleeps, one that raises) with tiny timeouts.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

from .isolate import ChildReport, run_isolated
from .result import CheckResult, Outcome, errored, failed, skipped
from .spec import CheckContext, CheckSpec, log

NO_GPU_FIX = (
    "start the container with `--gpus all` (Docker) or request nvidia.com/gpu through the "
    "NVIDIA device plugin (Kubernetes), and check that NVIDIA_VISIBLE_DEVICES / "
    "CUDA_VISIBLE_DEVICES do not hide the GPUs"
)


def no_gpu_message(ctx: CheckContext) -> str:
    if ctx.facts.get("torch") and ctx.facts.get("cuda") is None:
        return (
            "no GPU usable: --gpu required but this torch is a CPU-only build "
            "(torch.version.cuda is None); install a CUDA wheel (e.g. +cu128) in the image"
        )
    return f"no GPU visible: --gpu required but torch.cuda.is_available() is False; {NO_GPU_FIX}"


def gpu_gate(spec: CheckSpec, ctx: CheckContext) -> Outcome | None:
    """The outcome decided without running the check, or None to run it.

    needs_gpu=True: skip under --gpu off, or under auto without a GPU.
    needs_gpu="partly": runs its CPU stand-in in both of those cases.
    Either kind FAILS under --gpu required without a GPU: a stand-in would hide the problem.
    """
    if not spec.needs_gpu or ctx.use_gpu:
        return None
    if ctx.gpu_mode == "required":
        return failed(no_gpu_message(ctx))
    if spec.needs_gpu == "partly":
        return None
    if ctx.gpu_mode == "off":
        return skipped("needs a GPU; GPU checks disabled by --gpu off")
    return skipped("needs a GPU; none visible (--gpu auto), so skipped")


def outcome_from_child(report: ChildReport) -> Outcome:
    if report.kind == "returned":
        if isinstance(report.value, Outcome):
            return report.value
        return errored(f"check returned {type(report.value).__name__}, not an Outcome")
    if report.kind == "timeout":
        return failed(report.error)
    return errored(report.error)


def resolve_timeout(spec: CheckSpec, ctx: CheckContext) -> float:
    return ctx.expect.thresholds.timeout_for(spec.id, spec.timeout_s)


def run_check(spec: CheckSpec, ctx: CheckContext, timeout_s: float | None = None) -> CheckResult:
    started = time.monotonic()
    gated = gpu_gate(spec, ctx)
    if gated is not None:
        return CheckResult.from_outcome(spec.id, gated, time.monotonic() - started)
    limit = resolve_timeout(spec, ctx) if timeout_s is None else timeout_s
    child_ctx = dataclasses.replace(ctx, timeout_s=limit)

    def call() -> object:
        return spec.run(child_ctx)

    report = run_isolated(call, limit)
    return CheckResult.from_outcome(spec.id, outcome_from_child(report), report.elapsed_s)


def run_checks(
    specs: Sequence[CheckSpec], ctx: CheckContext, timeout_s: float | None = None
) -> list[CheckResult]:
    """Run each check in order; `timeout_s` overrides every check's own limit (tests)."""
    results = []
    for spec in specs:
        log(f"{spec.id}: running")
        result = run_check(spec, ctx, timeout_s)
        log(f"{spec.id}: {result.status} in {result.duration_s:.2f}s - {result.message}")
        results.append(result)
    return results

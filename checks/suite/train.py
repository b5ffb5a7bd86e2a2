"""train: what a training script does, in miniature.

1. A tiny model takes a few optimizer steps fed by a DataLoader with 2 worker processes (they
   pass batches through /dev/shm) under autocast (bf16, on CPU and on a GPU); the loss on the
   whole data set must fall.
2. The same model's step under DDP, started by torchrun: gloo with 2 processes on CPU; NCCL
   with one process per GPU when there are at least 2, else gloo. Rank 0's averaged gradients
   must equal (allclose) one process's gradients on the whole batch, computed here.
3. On a GPU: a conv2d forward and backward that runs through cuDNN (the profiler must show
   aten::cudnn_convolution), equal to the CPU result (small integers, so TF32 is exact).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from .. import PACKAGE, SEARCH_ROOT, _ddp_worker
from ..result import Metric, Outcome, failed, passed
from ..spec import CheckContext, CheckSpec

SAMPLES, EPOCHS, BATCH_SIZE, WORKERS = 256, 2, 32, 2
LOSS_MUST_FALL_TO = 0.8  # final loss at most this fraction of the initial one
SHM_FIX = (
    "DataLoader workers pass batches through /dev/shm: run with `--shm-size=1g` or larger "
    "(Kubernetes: an emptyDir with medium: Memory at /dev/shm)"
)
DDP_FIX = (
    "check that torchrun can reach 127.0.0.1 (a loopback interface), NCCL_DEBUG=INFO for "
    "NCCL, and that /tmp is writable"
)


# --- 1. optimizer steps through a multi-worker DataLoader under autocast --------------------


def dataset(torch: Any) -> Any:
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(SAMPLES, _ddp_worker.FEATURES, generator=generator)
    y = x.sum(dim=1, keepdim=True) * 0.5
    return torch.utils.data.TensorDataset(x, y)


def full_loss(torch: Any, model: Any, data: Any, device: Any) -> float:
    x, y = data.tensors
    with torch.no_grad():
        return float(_ddp_worker.loss_of(torch, model, x.to(device), y.to(device)))


def fit(torch: Any, device: Any) -> tuple[float, float, int]:
    """(loss before, loss after, steps taken)."""
    data = dataset(torch)
    loader = torch.utils.data.DataLoader(
        data,
        batch_size=BATCH_SIZE,
        shuffle=True,
        num_workers=WORKERS,
        generator=torch.Generator().manual_seed(0),
    )
    model = _ddp_worker.tiny_model(torch).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    before = full_loss(torch, model, data, device)
    steps = 0
    for _ in range(EPOCHS):
        for x, y in loader:
            optimizer.zero_grad()
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                out = model(x.to(device))
            loss = torch.nn.functional.mse_loss(out.float(), y.to(device))
            loss.backward()
            optimizer.step()
            steps += 1
    return before, full_loss(torch, model, data, device), steps


# --- 2. the DDP step through torchrun -----------------------------------------------------


def ddp_plan(use_gpu: bool, gpu_count: int) -> tuple[str, int]:
    """(backend, processes): NCCL one per GPU with at least 2 GPUs, else gloo on 2."""
    if use_gpu and gpu_count >= 2:
        return "nccl", gpu_count
    return "gloo", 2


def torchrun_command(backend: str, processes: int, out: str, timeout_s: float) -> list[str]:
    # --local-addr: workers reach the agent on loopback, not by the host name, which may not
    # resolve (a container without networking, a pod whose hostname is not in DNS).
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        "--local-addr", "127.0.0.1", "--nproc-per-node", str(processes),
        "-m", f"{PACKAGE}._ddp_worker", "--backend", backend, "--out", out,
        "--timeout", str(int(timeout_s)),
    ]


def reference_grads(torch: Any) -> dict[str, Any]:
    model = _ddp_worker.tiny_model(torch)
    x, y = _ddp_worker.fixed_batch(torch)
    _ddp_worker.loss_of(torch, model, x, y).backward()
    return {name: p.grad.detach() for name, p in model.named_parameters()}


def grad_problems(torch: Any, got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    if set(got) != set(want):
        return [f"DDP saved gradients for {sorted(got)}, expected {sorted(want)}"]
    problems = []
    for name, reference in want.items():
        if not torch.allclose(got[name], reference, rtol=1e-4, atol=1e-6):
            diff = float((got[name] - reference).abs().max())
            problems.append(f"DDP gradient of {name} differs from the full-batch one by {diff:.2e}")
    return problems


def ddp_step(torch: Any, backend: str, processes: int, timeout_s: float) -> list[str]:
    folder = tempfile.mkdtemp(prefix="torchstack-ddp-")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SEARCH_ROOT, env.get("PYTHONPATH")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    if backend == "gloo":
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    try:
        try:
            proc = subprocess.run(
                torchrun_command(backend, processes, folder, timeout_s),
                capture_output=True, text=True, env=env, timeout=timeout_s, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            return [
                f"torchrun ({backend}, {processes} processes) ran past {timeout_s:g}s: "
                f"{_tail(exc.stderr)}; {DDP_FIX}"
            ]
        path = os.path.join(folder, "grads.pt")
        if proc.returncode != 0 or not os.path.exists(path):
            return [f"torchrun ({backend}, {processes} processes) exited {proc.returncode}: "
                    f"{_tail(proc.stderr or proc.stdout)}; {DDP_FIX}"]
        saved = torch.load(path, map_location="cpu")
        if saved["world_size"] != processes:
            return [f"DDP ran with world size {saved['world_size']}, started {processes}"]
        return grad_problems(torch, saved["grads"], reference_grads(torch))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _tail(output: str | bytes | None, lines: int = 6) -> str:
    if isinstance(output, bytes):
        output = output.decode(errors="replace")
    return " | ".join((output or "no output").strip().splitlines()[-lines:])[-700:]


# --- 3. cuDNN convolution on a GPU -----------------------------------------------------


def cudnn_problems(torch: Any) -> list[str]:
    if not torch.backends.cudnn.enabled:
        return ["torch.backends.cudnn.enabled is False: convolutions would not use cuDNN"]
    generator = torch.Generator().manual_seed(3)
    x_cpu = torch.randint(-3, 4, (2, 3, 12, 12), generator=generator).float()
    w_cpu = torch.randint(-2, 3, (4, 3, 3, 3), generator=generator).float()
    x = x_cpu.cuda().requires_grad_()
    w = w_cpu.cuda().requires_grad_()
    if not torch.backends.cudnn.is_acceptable(x):
        return ["torch.backends.cudnn.is_acceptable rejects a float32 CUDA tensor: cuDNN unusable"]
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        out = torch.nn.functional.conv2d(x, w, padding=1)
        out.sum().backward()
        torch.cuda.synchronize()
    names = {event.key for event in prof.key_averages()}
    problems = []
    if not any("cudnn_convolution" in name for name in names):
        problems.append("conv2d on CUDA did not run aten::cudnn_convolution (cuDNN not used)")
    x_ref, w_ref = x_cpu.clone().requires_grad_(), w_cpu.clone().requires_grad_()
    ref = torch.nn.functional.conv2d(x_ref, w_ref, padding=1)
    ref.sum().backward()
    pairs = (("output", out, ref), ("input grad", x.grad, x_ref.grad),
             ("weight grad", w.grad, w_ref.grad))
    for what, got, want in pairs:
        if not torch.equal(got.detach().cpu(), want.detach()):
            problems.append(f"cuDNN conv2d {what} differs from the CPU result")
    return problems


def run(ctx: CheckContext) -> Outcome:
    import torch

    device = torch.device(ctx.device)
    metrics: dict[str, Metric] = {}
    problems: list[str] = []
    started = time.monotonic()
    try:
        before, after, steps = fit(torch, device)
    except RuntimeError as exc:  # a worker killed by SIGBUS when /dev/shm is too small
        return failed(f"DataLoader training on {device} failed ({exc}); {SHM_FIX}")
    metrics.update(loss_before=Metric(before, "mse"), loss_after=Metric(after, "mse"),
                   fit_s=Metric(time.monotonic() - started, "s"))
    if not after <= LOSS_MUST_FALL_TO * before:
        problems.append(f"loss went from {before:.4f} to {after:.4f} in {steps} steps; it must "
                        f"fall below {LOSS_MUST_FALL_TO:g}x (optimizer or autocast is broken)")
    backend, processes = ddp_plan(ctx.use_gpu, len(ctx.gpu_names))
    started = time.monotonic()
    budget = max(20.0, ctx.timeout_s * 0.6)
    problems += ddp_step(torch, backend, processes, budget)
    metrics["ddp_s"] = Metric(time.monotonic() - started, "s")
    metrics["ddp_world_size"] = Metric(processes, "ranks")
    if ctx.use_gpu:
        problems += cudnn_problems(torch)
    if problems:
        return failed("; ".join(problems), metrics)
    conv = "; cuDNN conv2d forward+backward equals CPU" if ctx.use_gpu else ""
    return passed(
        f"{steps} bf16-autocast steps on {device} with a {WORKERS}-worker DataLoader took the "
        f"loss from {before:.3f} to {after:.3f}; DDP ({backend}, {processes} ranks via "
        f"torchrun) gradients equal the full-batch ones{conv}",
        metrics,
    )


CHECK = CheckSpec(
    id="train",
    layers=("torch",),
    needs_gpu=False,
    timeout_s=180,
    run=run,
    summary="optimizer steps (DataLoader workers, autocast), a DDP step via torchrun, cuDNN conv",
)

"""shm: /dev/shm is big enough for DataLoader workers and NCCL's shared-memory transport.

Docker's default is 64 MiB, which makes multi-worker DataLoaders die with "bus error" and
NCCL fall back or fail, so the image must be run with a larger one.
"""

from __future__ import annotations

import os

from ..result import Metric, Outcome, failed, passed
from ..spec import CheckContext, CheckSpec

SHM_PATH = "/dev/shm"
FIX = (
    "run with `docker run --shm-size=1g` (or larger), or in Kubernetes mount an emptyDir "
    "with medium: Memory at /dev/shm"
)


def shm_total_bytes(path: str = SHM_PATH) -> int:
    stats = os.statvfs(path)
    return stats.f_frsize * stats.f_blocks


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def judge(total: int, minimum: int, path: str = SHM_PATH) -> Outcome:
    metrics = {"shm_total": Metric(total, "bytes"), "shm_min": Metric(minimum, "bytes")}
    if total < minimum:
        return failed(
            f"{path} is {human_bytes(total)}, below the required {human_bytes(minimum)}; {FIX}",
            metrics,
        )
    return passed(f"{path} is {human_bytes(total)} (>= {human_bytes(minimum)})", metrics)


def run(ctx: CheckContext, path: str = SHM_PATH) -> Outcome:
    minimum = ctx.expect.thresholds.shm_min_bytes
    try:
        total = shm_total_bytes(path)
    except OSError as exc:
        return failed(f"{path} is not usable ({exc.strerror or exc}); {FIX}")
    return judge(total, minimum, path)


CHECK = CheckSpec(
    id="shm",
    layers=("torch",),
    needs_gpu=False,
    timeout_s=30,
    run=run,
    summary="/dev/shm size >= shm_min_bytes",
)

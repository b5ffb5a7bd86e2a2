"""compile: torch.compile (inductor) gives eager's results, on CPU and, with a GPU, on CUDA.

A small function and a small nn.Module are compiled with fullgraph=True and compared with
eager mode (torch.testing.assert_close). On CPU inductor writes C++ and builds it with the
C++ compiler, so the image needs g++ and the Python headers; on a GPU Triton builds its
launcher with a C compiler and Python.h as well.

It runs the way the Kubernetes Job does: read-only root filesystem, only /tmp writable, a uid
with no home and no passwd entry. Every cache torch, inductor and Triton would put under $HOME
is pointed at a fresh folder under the temp dir, which is removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sysconfig
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..result import Metric, Outcome, failed, passed
from ..spec import CheckContext, CheckSpec

FIX = (
    "the image needs a C/C++ compiler and the Python headers for torch.compile "
    "(Debian/Ubuntu: apt-get install g++ python3-dev; inductor builds C++ kernels on CPU and "
    "Triton builds its launcher with a C compiler on GPU)"
)
CXX_CANDIDATES = ("g++", "c++", "clang++")
CC_CANDIDATES = ("gcc", "cc", "clang")


def find_compiler(env: Mapping[str, str], names: tuple[str, ...], variable: str) -> str | None:
    """The compiler inductor/Triton would use: $CXX (or $CC) when set, else the first of
    `names` on PATH."""
    chosen = env.get(variable)
    if chosen:
        return shutil.which(chosen, path=env.get("PATH"))
    for name in names:
        found = shutil.which(name, path=env.get("PATH"))
        if found:
            return found
    return None


def python_header() -> Path:
    return Path(sysconfig.get_paths()["include"]) / "Python.h"


def toolchain_problems(env: Mapping[str, str], need_cc: bool, header: Path) -> list[str]:
    """What is missing before torch.compile can work here, each with the fix."""
    problems = []
    if find_compiler(env, CXX_CANDIDATES, "CXX") is None:
        looked = f"$CXX={env['CXX']}" if env.get("CXX") else ", ".join(CXX_CANDIDATES)
        problems.append(f"no C++ compiler found (looked for {looked} on PATH)")
    if need_cc and find_compiler(env, CC_CANDIDATES, "CC") is None:
        problems.append(f"no C compiler found for Triton (looked for {', '.join(CC_CANDIDATES)})")
    if not header.is_file():
        problems.append(f"the Python headers are missing ({header} does not exist)")
    return problems


def cache_env(root: str) -> dict[str, str]:
    """Every cache location torch.compile's stack reads, under `root` (the temp dir)."""
    return {
        "TORCHINDUCTOR_CACHE_DIR": os.path.join(root, "inductor"),
        "TRITON_CACHE_DIR": os.path.join(root, "triton", "cache"),
        "TRITON_HOME": os.path.join(root, "triton"),
        "XDG_CACHE_HOME": os.path.join(root, "xdg-cache"),
        "HOME": os.path.join(root, "home"),
        # Inductor names its default dirs after the user; a uid with no passwd entry (the Job
        # runs as 1000) makes getpass.getuser() raise unless one of these is set.
        "USER": os.environ.get("USER") or f"uid{os.getuid()}",
        # One compile worker: no subprocess pool to start on 2 cores for a few tiny kernels.
        "TORCHINDUCTOR_COMPILE_THREADS": "1",
    }


@contextlib.contextmanager
def private_caches() -> Iterator[str]:
    """A fresh temp folder with the cache variables pointing into it, for this process only
    (the check runs in its own forked child)."""
    root = tempfile.mkdtemp(prefix="torchstack-compile-")
    saved = {key: os.environ.get(key) for key in cache_env(root)}
    os.environ.update(cache_env(root))
    for key in ("HOME", "XDG_CACHE_HOME"):
        os.makedirs(os.environ[key], exist_ok=True)
    try:
        yield root
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(root, ignore_errors=True)


def built_objects(root: str) -> int:
    """Shared objects inductor or Triton built: proof that code was compiled, not run eagerly."""
    return sum(1 for _ in Path(root).rglob("*.so"))


def _pointwise(x: Any) -> Any:
    import torch

    return torch.sin(x) * 2.0 + torch.cos(x) * x + 1.0


def compare_on(torch: Any, device: str) -> tuple[list[str], float]:
    """(problems, seconds) for the function and the module compiled on `device`."""
    problems = []
    started = time.monotonic()
    torch._dynamo.reset()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 33, generator=generator).to(device)
    try:
        got = torch.compile(_pointwise, fullgraph=True)(x)
        torch.testing.assert_close(got, _pointwise(x))
    except Exception as exc:
        problems.append(f"compiled function on {device}: {type(exc).__name__}: {_short(exc)}")
    torch.manual_seed(0)
    # Small on purpose: the first compile's fixed cost (inductor's ISA probes, headers) is
    # what a user pays too; every extra kernel adds a g++ run on a 2-core runner.
    model = torch.nn.Sequential(
        torch.nn.Linear(33, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)
    ).to(device)
    try:
        with torch.no_grad():
            got = torch.compile(model, fullgraph=True)(x)
            torch.testing.assert_close(got, model(x), rtol=1e-4, atol=1e-4)
    except Exception as exc:
        problems.append(f"compiled nn.Module on {device}: {type(exc).__name__}: {_short(exc)}")
    return problems, time.monotonic() - started


def _short(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."


def run(ctx: CheckContext) -> Outcome:
    import torch

    devices = ["cpu", "cuda"] if ctx.use_gpu else ["cpu"]
    missing = toolchain_problems(os.environ, ctx.use_gpu, python_header())
    if missing:
        return failed(f"torch.compile cannot work here: {'; '.join(missing)}. Fix: {FIX}")
    problems: list[str] = []
    metrics: dict[str, Metric] = {}
    with private_caches() as root:
        for device in devices:
            found, seconds = compare_on(torch, device)
            problems += found
            metrics[f"{device}_compile_s"] = Metric(seconds, "s")
        objects = built_objects(root)
    metrics["built_objects"] = Metric(objects, "files")
    if not problems and objects == 0:
        problems.append("torch.compile returned without building any kernel (no .so written)")
    if problems:
        return failed("; ".join(problems) + f". Fix: {FIX}", metrics)
    where = " and ".join("CPU (inductor C++)" if d == "cpu" else "CUDA (Triton)" for d in devices)
    return passed(
        f"torch.compile of a function and an nn.Module matches eager on {where}; "
        f"{objects} kernel object(s) built under the temp dir",
        metrics,
    )


CHECK = CheckSpec(
    id="compile",
    layers=("torch",),
    needs_gpu=False,
    timeout_s=240,
    run=run,
    summary="torch.compile (inductor; Triton on GPU) of a function and a module equals eager",
)

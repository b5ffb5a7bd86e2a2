"""base: the torch layer's basics: numpy interop and a warning-free `import torch`.

The import is tried in a fresh interpreter (this process already imported torch, and a
warning is only emitted once), with every warning recorded and stderr captured.
"""

from __future__ import annotations

import json
import subprocess
import sys

from ..result import Outcome, failed, passed
from ..spec import CheckContext, CheckSpec

# Prints the recorded warnings as JSON; anything else on stderr is reported too.
_IMPORT_PROBE = """
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import torch
print(json.dumps([f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught]))
"""


def numpy_problems() -> list[str]:
    try:
        import numpy as np
    except ImportError as exc:
        return [f"numpy is not importable ({exc}); add numpy to the torch layer"]
    import torch

    problems = []
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    tensor = torch.from_numpy(array)
    if tensor.dtype != torch.float32 or tuple(tensor.shape) != (3, 4):
        problems.append(f"torch.from_numpy gave {tensor.dtype} {tuple(tensor.shape)}")
    array[0, 0] = 42.0  # from_numpy must share memory, not copy
    if float(tensor[0, 0]) != 42.0:
        problems.append("torch.from_numpy copied instead of sharing memory")
    back = tensor.numpy()
    tensor[2, 3] = -1.0  # .numpy() must share memory too
    if back[2, 3] != -1.0 or not np.array_equal(back, array):
        problems.append("Tensor.numpy() does not share memory with the tensor")
    doubled = (torch.from_numpy(np.arange(5, dtype=np.int64)) * 2).numpy()
    if doubled.dtype != np.int64 or doubled.tolist() != [0, 2, 4, 6, 8]:
        problems.append(f"int64 round trip gave {doubled.dtype} {doubled.tolist()}")
    return problems


def import_warnings(timeout_s: float = 120.0) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return [f"`import torch` failed in a fresh interpreter ({last})"]
    found: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    stderr = proc.stderr.strip()
    if stderr:
        found.append("stderr: " + " | ".join(stderr.splitlines())[-500:])
    return found


def run(ctx: CheckContext) -> Outcome:
    problems = numpy_problems()
    warnings_seen = import_warnings(max(ctx.timeout_s - 5.0, 1.0))
    if warnings_seen:
        problems.append("`import torch` emitted: " + " | ".join(warnings_seen))
    if problems:
        return failed("; ".join(problems))
    return passed("numpy round trip shares memory; `import torch` emits no warnings")


CHECK = CheckSpec(
    id="base",
    layers=("torch",),
    needs_gpu=False,
    timeout_s=120,
    run=run,
    summary="numpy interop and a warning-free `import torch`",
)

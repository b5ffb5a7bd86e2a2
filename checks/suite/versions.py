"""versions: what is installed equals what the expect file asked for ("facts over config").

torch (public version, plus the +cuXXX label when asked), CUDA, cuDNN, NCCL and Python must
equal the expectation, and so must the GPU architectures compiled into torch (read with
`torch._C._cuda_getArchFlags()`, no GPU needed) against the arch contract (`expected.arch_flags`,
the host's compat data); torchvision, torchaudio and torchcodec, when installed, must be the
releases paired with this torch (`expected.paired`, the host's compat data), and equal the
expectation when one is given.
"""

from __future__ import annotations

import platform

from ..expect import COMPANIONS, Expected
from ..facts import dist_version
from ..result import Outcome, failed, passed
from ..spec import CheckContext, CheckSpec
from ..versioning import (
    nccl_string,
    pairs_with,
    prefix_equal,
    public_equal,
    split_local,
    torch_matches,
)

FIX = "rebuild the image or re-pin the version in matrix.yaml / the layer so they agree"


def compare_core(
    expected: Expected,
    torch_version: str,
    cuda: str | None,
    cudnn: int | None,
    nccl: str | None,
    python: str,
) -> list[str]:
    """One sentence per value that differs from the expectation (empty when all agree)."""
    problems = []
    if expected.torch and not torch_matches(torch_version, expected.torch):
        problems.append(f"torch is {torch_version}, expected {expected.torch}")
    if expected.cuda and (cuda is None or not prefix_equal(expected.cuda, cuda)):
        shown = cuda or "none (CPU-only torch build)"
        problems.append(f"torch.version.cuda is {shown}, expected {expected.cuda}")
    if expected.cudnn is not None and cudnn != expected.cudnn:
        # The dotted form comes from the host, which owns cuDNN's number encoding.
        dotted = f" (cuDNN {expected.cudnn_version})" if expected.cudnn_version else ""
        problems.append(
            f"cuDNN is {cudnn or 'unavailable'} (torch.backends.cudnn.version()), "
            f"expected {expected.cudnn}{dotted}"
        )
    if expected.nccl and (nccl is None or not public_equal(nccl, expected.nccl)):
        problems.append(f"NCCL is {nccl or 'unavailable'}, expected {expected.nccl}")
    if expected.python and not prefix_equal(expected.python, python):
        problems.append(f"Python is {python}, expected {expected.python}")
    return problems


def compare_arch(expected: tuple[str, ...] | None, flags: str | None) -> list[str]:
    """The arch flags compiled into torch (`torch._C._cuda_getArchFlags()`, which needs no GPU)
    against the contract in the expect file, compared as sets (the wheel's order varies)."""
    if expected is None:
        return []
    if flags is None:
        return ["torch reports no compiled GPU architectures (torch._C._cuda_getArchFlags()), "
                f"expected {' '.join(expected)}"]
    found = set(flags.split())
    if found == set(expected):
        return []
    missing, extra = _ordered(set(expected) - found), _ordered(found - set(expected))
    parts = ([f"missing {' '.join(missing)}"] if missing else []) + (
        [f"not in the contract {' '.join(extra)}"] if extra else [])
    return [f"compiled GPU architectures are {' '.join(_ordered(found))} ({'; '.join(parts)}), "
            f"expected {' '.join(expected)} (the host's compat data)"]


def _ordered(flags: set[str]) -> list[str]:
    """sm_ before compute_, then by number: sm_70 before sm_100."""
    def key(flag: str) -> tuple[bool, int, str]:
        kind, _, number = flag.partition("_")
        digits = "".join(c for c in number if c.isdigit())
        return kind != "sm", int(digits or 0), flag

    return sorted(flags, key=key)


def arch_flags(torch: object) -> str | None:
    """`torch._C._cuda_getArchFlags()`, or None in a build without CUDA."""
    reader = getattr(getattr(torch, "_C", None), "_cuda_getArchFlags", None)
    if reader is None:
        return None
    try:
        flags = reader()
    except Exception:
        return None
    return flags if isinstance(flags, str) else None


def compare_companion(
    name: str, installed: str | None, paired: str | None, expected: str | None, torch_version: str
) -> tuple[list[str], list[str]]:
    """(problems, notes) for torchvision or torchaudio."""
    problems: list[str] = []
    notes: list[str] = []
    if installed is None:
        if expected:
            problems.append(f"{name} is not installed, expected {expected}")
        return problems, notes
    public = split_local(installed)[0]
    if paired is None:
        notes.append(f"no {name} pairing given for torch {torch_version}")
    elif not pairs_with(installed, paired):
        problems.append(
            f"{name} {installed} does not pair with torch {torch_version} (needs {paired})"
        )
    if expected and not public_equal(public, split_local(expected)[0]):
        problems.append(f"{name} is {installed}, expected {expected}")
    return problems, notes


def run(ctx: CheckContext) -> Outcome:
    try:
        import torch
    except Exception as exc:
        return failed(f"torch is not importable ({type(exc).__name__}: {exc}); {FIX}")
    torch_version = str(torch.__version__)
    cuda = torch.version.cuda
    try:
        cudnn = torch.backends.cudnn.version()  # type: ignore[no-untyped-call]
    except Exception:
        cudnn = None
    try:
        nccl = nccl_string(torch.cuda.nccl.version())  # type: ignore[no-untyped-call]
    except Exception:
        nccl = None
    python = platform.python_version()
    expected = ctx.expect.expected
    problems = compare_core(expected, torch_version, cuda, cudnn, nccl, python)
    flags = arch_flags(torch)
    if cuda is not None:  # a CPU-only build already fails on torch.version.cuda above
        problems += compare_arch(expected.arch_flags, flags)
    notes: list[str] = []
    for name in COMPANIONS:
        more_problems, more_notes = compare_companion(
            name, dist_version(name), expected.paired.get(name), getattr(expected, name),
            torch_version,
        )
        problems += more_problems
        notes += more_notes
    if problems:
        return failed("; ".join(problems) + f". Fix: {FIX}.")
    seen = f"torch {torch_version}, CUDA {cuda}, cuDNN {cudnn}, NCCL {nccl}, Python {python}"
    if expected.arch_flags is not None and flags is not None:
        seen += f", GPU archs {flags}"
    asked = any(
        getattr(expected, field) is not None
        for field in ("torch", "cuda", "cudnn", "nccl", "python", *COMPANIONS)
    )
    lead = "match the expect file" if asked else "(no expected versions given; reported only)"
    tail = f" Note: {'; '.join(notes)}." if notes else ""
    return passed(f"{seen} {lead}.{tail}")


CHECK = CheckSpec(
    id="versions",
    layers=("torch",),
    needs_gpu=False,
    timeout_s=60,
    run=run,
    summary="torch/CUDA/cuDNN/NCCL/Python (+ paired companions) equal the expectation",
)

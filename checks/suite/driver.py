"""driver: the host driver is new enough, GPUs are healthy (ECC), and torch has code for them.

Uses NVML through pynvml (nvidia-ml-py); without it the check skips. Each GPU's compute
capability must be covered by torch.cuda.get_arch_list() and by the arch contract of the
expect file (`expected.arch_flags`, from the host's compat data), each by the same rule: native
cubin, a cubin of the same major with a lower minor (binary compatible), or PTX at or below the
capability (JIT at first use, which is slow but works).
"""

from __future__ import annotations

import re

from ..nvml import Nvml, load_pynvml
from ..result import Metric, Outcome, failed, passed, skipped
from ..spec import CheckContext, CheckSpec
from ..versioning import dotted_ge

_ARCH = re.compile(r"^(sm|compute)_(\d+)(\d)([a-z]?)$")


def parse_arch(entry: str) -> tuple[str, int, int, str] | None:
    """'sm_90' -> ('sm', 9, 0, ''); 'compute_120' -> ('compute', 12, 0, ''); 'sm_90a' keeps 'a'."""
    match = _ARCH.match(entry.strip())
    if match is None:
        return None
    return match.group(1), int(match.group(2)), int(match.group(3)), match.group(4)


def arch_support(capability: tuple[int, int], arch_list: list[str]) -> tuple[bool, str]:
    """(supported, how) for one GPU capability against torch's arch list."""
    major, minor = capability
    parsed = [p for p in (parse_arch(entry) for entry in arch_list) if p is not None]
    sm = f"sm_{major}{minor}"
    if any(kind == "sm" and (ma, mi) == (major, minor) for kind, ma, mi, _ in parsed):
        return True, f"{sm} native"
    compatible = [
        (ma, mi)
        for kind, ma, mi, sfx in parsed
        if kind == "sm" and ma == major and mi < minor and not sfx
    ]
    if compatible:
        ma, mi = max(compatible)
        return True, f"{sm} runs sm_{ma}{mi} code (binary compatible within sm_{major}x)"
    ptx = [
        (ma, mi)
        for kind, ma, mi, sfx in parsed
        if kind == "compute" and (ma, mi) <= (major, minor) and not sfx
    ]
    if ptx:
        ma, mi = max(ptx)
        return True, f"{sm} JIT-compiles PTX compute_{ma}{mi} at first use (slow start)"
    listed = " ".join(arch_list) or "(empty)"
    return False, (
        f"{sm} is not supported by this torch build (arch list: {listed}); use a torch/CUDA "
        "build that includes this GPU generation"
    )


def contract_problem(capability: tuple[int, int], contract: tuple[str, ...] | None) -> str | None:
    """A sentence when the image's arch contract (the host's compat data, which also placed
    the pod) does not cover this GPU; None when it does or no contract was given."""
    if contract is None:
        return None
    ok, _how = arch_support(capability, list(contract))
    if ok:
        return None
    major, minor = capability
    return (f"sm_{major}{minor} is outside the image's arch contract ({' '.join(contract)}); "
            "the node affinity should have kept this pod off this node: check the node's "
            "nvidia.com/gpu.compute labels")


def run(ctx: CheckContext) -> Outcome:
    module = load_pynvml()
    if module is None:
        return skipped("nvidia-ml-py not installed (import pynvml failed); driver not checked")
    try:
        module.nvmlInit()
    except Exception as exc:
        return failed(f"NVML failed to initialise ({exc}); is the NVIDIA driver mounted?")
    with Nvml(module) as nvml:
        return _inspect(nvml, ctx)


def _inspect(nvml: Nvml, ctx: CheckContext) -> Outcome:
    import torch

    problems: list[str] = []
    notes: list[str] = []
    metrics: dict[str, Metric] = {}
    version = nvml.driver_version()
    minimum = ctx.expect.driver_min
    if minimum is None:
        notes.append(f"driver {version} (no driver_min given)")
    elif dotted_ge(version, minimum):
        notes.append(f"driver {version} >= {minimum}")
    else:
        problems.append(
            f"driver {version} is older than the required {minimum}; upgrade the host's NVIDIA "
            "driver (or use an image built for an older CUDA)"
        )
    for index in range(nvml.device_count()):
        handle = nvml.handle(index)
        name = nvml.name(handle)
        metrics[f"gpu{index}_memory_total"] = Metric(nvml.memory_total(handle), "bytes")
        ecc = nvml.uncorrected_ecc(handle)
        if ecc is None:
            notes.append(f"NVML GPU{index} {name}: ECC unsupported")
            continue
        metrics[f"gpu{index}_uncorrected_ecc_volatile"] = Metric(ecc, "errors")
        if ecc:
            problems.append(
                f"NVML GPU{index} {name} has {ecc} uncorrected ECC error(s) since driver load; "
                "drain the node and reset or replace the GPU"
            )
        else:
            notes.append(f"NVML GPU{index} {name}: ECC ok")
    arch_list = torch.cuda.get_arch_list()
    contract = ctx.expect.expected.arch_flags
    for index in range(torch.cuda.device_count()):
        capability = torch.cuda.get_device_capability(index)
        ok, how = arch_support((capability[0], capability[1]), arch_list)
        (notes if ok else problems).append(f"cuda:{index}: {how}")
        problem = contract_problem((capability[0], capability[1]), contract)
        if problem:
            problems.append(f"cuda:{index}: {problem}")
    if problems:
        return failed("; ".join(problems), metrics)
    return passed("; ".join(notes), metrics)


CHECK = CheckSpec(
    id="driver",
    layers=("torch",),
    needs_gpu=True,
    timeout_s=60,
    run=run,
    summary="driver >= driver_min, no uncorrected ECC errors, GPU arch in torch's arch list",
)

"""Dense (non-sparse) tensor-core peaks per GPU model, and matching a device name to a row.

The matmul check divides what it measures by these numbers. NVIDIA datasheets print the
"with sparsity" figure next to the dense one (marked *); the dense figure is half of it, and
that is what a plain torch.matmul can reach. Every row names its source.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_FACTS = "shared/facts/torch-cuda.md (secondary sources, checked 2026-11-28)"
_A100 = f"{_FACTS}; NVIDIA A100 datasheet (same peak for SXM4/PCIe, 40/80 GB)"


@dataclass(frozen=True)
class Peak:
    key: str  # table key, also a thresholds key ("H100 SXM")
    family: str  # coarser thresholds key ("H100")
    tokens: frozenset[str]  # all must appear among the device name's tokens
    bf16_tflops: float
    tf32_tflops: float
    source: str


def _row(key: str, family: str, tokens: str, bf16: float, tf32: float, source: str) -> Peak:
    return Peak(key, family, frozenset(tokens.split()), bf16, tf32, source)


# Order matters: the first row whose tokens all appear wins, so specific rows (H200 NVL,
# H100 PCIe, A100 SXM4 80GB) come before the general ones of their family.
PEAKS: tuple[Peak, ...] = (
    _row("H200 NVL", "H200", "H200 NVL", 835.5, 417.5, "NVIDIA H200 NVL datasheet"),
    _row("H200", "H200", "H200", 989.0, 495.0, f"{_FACTS}; NVIDIA H200 datasheet"),
    _row("H100 NVL", "H100", "H100 NVL", 835.5, 417.5, "NVIDIA H100 NVL datasheet"),
    _row("H100 PCIe", "H100", "H100 PCIE", 756.5, 378.0, "NVIDIA H100 PCIe datasheet"),
    # torch names the SXM part "NVIDIA H100 80GB HBM3": any other H100 is taken as SXM.
    _row("H100 SXM", "H100", "H100", 989.0, 495.0, f"{_FACTS}; NVIDIA H100 SXM datasheet"),
    _row("A100 SXM4 80GB", "A100", "A100 SXM4 80GB", 312.0, 156.0, _A100),
    _row("A100 SXM4 40GB", "A100", "A100 SXM4", 312.0, 156.0, _A100),
    _row("A100 PCIe 80GB", "A100", "A100 80GB", 312.0, 156.0, _A100),
    _row("A100 PCIe 40GB", "A100", "A100", 312.0, 156.0, _A100),
    _row("L40S", "L40S", "L40S", 362.05, 183.0, "NVIDIA L40S datasheet"),
    _row("L4", "L4", "L4", 121.0, 60.0, "NVIDIA L4 datasheet (half the sparse 242/120)"),
    # NVIDIA publishes no A10G sheet; AWS's variant has less tensor throughput than the A10.
    _row("A10G", "A10G", "A10G", 70.0, 35.0, "AWS A10G figures as compiled by Baseten (secondary)"),
    _row("A10", "A10", "A10", 125.0, 62.5, "NVIDIA A10 datasheet"),
    _row(
        "RTX 4090",
        "RTX 4090",
        "RTX 4090",
        165.2,
        82.6,
        "NVIDIA Ada GPU architecture whitepaper (FP32 accumulate, dense)",
    ),
)

_SEPARATORS = re.compile(r"[\s\-_/,()]+")


def name_tokens(device_name: str) -> frozenset[str]:
    """'NVIDIA A100-SXM4-80GB' -> {NVIDIA, A100, SXM4, 80GB}; tokens keep 'L4' apart from 'L40S'."""
    return frozenset(token for token in _SEPARATORS.split(device_name.upper()) if token)


def match_peak(device_name: str) -> Peak | None:
    tokens = name_tokens(device_name)
    for row in PEAKS:
        if row.tokens <= tokens:
            return row
    return None


def lookup_threshold(table: Mapping[str, float], row: Peak | None) -> float | None:
    """Most specific key first: the row's key, its family, then "default"."""
    keys = [row.key, row.family] if row is not None else []
    for key in (*keys, "default"):
        if key in table:
            return table[key]
    return None

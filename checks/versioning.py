"""Pure version helpers: dotted comparisons, torch local labels, the torchvision pairing.

No imports of torch here, so these rules are unit-tested without a GPU or a wheel.
"""

from __future__ import annotations

import re

# torch -> torchvision, from ../shared/facts/torch-cuda.md ("torchvision/torchaudio" line,
# itself read from PyPI wheel metadata). torchaudio carries torch's own version number.
TORCHVISION_FOR_TORCH: dict[str, str] = {
    "2.4.0": "0.19.0",
    "2.4.1": "0.19.1",
    "2.5.0": "0.20.0",
    "2.5.1": "0.20.1",
    "2.6.0": "0.21.0",
    "2.7.0": "0.22.0",
    "2.7.1": "0.22.1",
    "2.8.0": "0.23.0",
    "2.9.0": "0.24.0",
    "2.9.1": "0.24.1",
    "2.10.0": "0.25.0",
    "2.11.0": "0.26.0",
}

_RELEASE = re.compile(r"^(\d+(?:\.\d+)*)(.*)$")


def parse_dotted(text: str) -> tuple[int, ...]:
    """'570.86.15' -> (570, 86, 15); raises ValueError on anything else."""
    parts = text.strip().split(".")
    if not parts or not all(part.isdigit() for part in parts):
        raise ValueError(f"not a dotted version: {text!r}")
    return tuple(int(part) for part in parts)


def _padded(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)), b + (0,) * (width - len(b))


def dotted_ge(actual: str, minimum: str) -> bool:
    """Numeric comparison, so '570.100' >= '570.86' (a string compare would say no)."""
    left, right = _padded(parse_dotted(actual), parse_dotted(minimum))
    return left >= right


def prefix_equal(expected: str, actual: str) -> bool:
    """Components given in `expected` must match `actual` ('3.11' matches '3.11.2').

    Components that `actual` does not have are not compared ('12.8.1' vs torch's '12.8').
    """
    want = parse_dotted(expected)
    have = parse_dotted(actual.split("+")[0])
    shared = min(len(want), len(have))
    return shared > 0 and want[:shared] == have[:shared]


def split_local(version: str) -> tuple[str, str | None]:
    """'2.9.1+cu128' -> ('2.9.1', 'cu128'); '2.9.1' -> ('2.9.1', None)."""
    public, sep, local = version.partition("+")
    return public, (local if sep else None)


def public_equal(a: str, b: str) -> bool:
    """Equal public versions, treating '2.9' and '2.9.0' alike ('2.10.0a0' keeps its suffix)."""
    ma, mb = _RELEASE.match(a.strip()), _RELEASE.match(b.strip())
    if ma is None or mb is None:
        return a.strip() == b.strip()
    left, right = _padded(parse_dotted(ma.group(1)), parse_dotted(mb.group(1)))
    return left == right and ma.group(2) == mb.group(2)


def torch_matches(actual: str, expected: str) -> bool:
    """Public versions equal, and the local label (+cu128) too when `expected` names one."""
    act_public, act_local = split_local(actual)
    exp_public, exp_local = split_local(expected)
    if not public_equal(act_public, exp_public):
        return False
    return exp_local is None or exp_local == act_local


def paired_torchvision(torch_version: str) -> str | None:
    """The torchvision release built against this torch, or None when the table lacks it."""
    public, _ = split_local(torch_version)
    for torch_public, vision in TORCHVISION_FOR_TORCH.items():
        if public_equal(public, torch_public):
            return vision
    return None


def paired_torchaudio(torch_version: str) -> str:
    return split_local(torch_version)[0]


def nccl_string(raw: object) -> str | None:
    """torch.cuda.nccl.version() as '2.27.5'.

    New torch returns (major, minor, patch[, suffix]); old torch returned NCCL_VERSION_CODE,
    an int encoded as major*10000+minor*100+patch since NCCL 2.9 (major*1000+... before).
    """
    if isinstance(raw, tuple) and len(raw) >= 3:
        return ".".join(str(part) for part in raw[:3])
    if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
        if raw >= 10000:
            return f"{raw // 10000}.{raw % 10000 // 100}.{raw % 100}"
        return f"{raw // 1000}.{raw % 1000 // 100}.{raw % 100}"
    return None


def cudnn_string(code: int) -> str:
    """91002 -> '9.10.2' (cuDNN 9 encoding); 8902 -> '8.9.2' (cuDNN 8 encoding)."""
    if code >= 90000:
        return f"{code // 10000}.{code % 10000 // 100}.{code % 100}"
    return f"{code // 1000}.{code % 1000 // 100}.{code % 100}"

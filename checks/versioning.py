"""Pure version helpers: dotted comparisons, torch local labels, NCCL's version code.

No imports of torch here, so these rules are unit-tested without a GPU or a wheel. Which
torchvision/torchaudio/torchcodec pairs with a torch, and how cuDNN's number reads dotted, are
the host's facts (torchstack's compat data): they arrive in the expect file, never kept here.
"""

from __future__ import annotations

import re

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


def pairs_with(installed: str, paired: str) -> bool:
    """Whether an installed companion is the paired release: '0.24.1' needs 0.24.1 exactly
    (its local label ignored); a shorter pair such as torchcodec's '0.9' accepts any 0.9.x."""
    public = split_local(installed)[0].strip()
    release = _RELEASE.match(public)
    try:
        want = parse_dotted(paired)
    except ValueError:
        return public_equal(public, paired)
    if release is None or release.group(2):  # a pre-release or odd suffix: exact only
        return public_equal(public, paired)
    have = parse_dotted(release.group(1))
    have = have + (0,) * (len(want) - len(have))
    return have[: len(want)] == want

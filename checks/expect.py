"""The expect file: what the host asked for, parsed once into frozen dataclasses.

Every key is optional. A missing value means "no expectation": the check that needs it only
reports (or skips). Anything malformed raises `ExpectError`, which the CLI turns into exit
code 2 with a one-line message naming the file and the key. The host validates matrix.yaml's
thresholds with this same parser (torchstack.config.matrix._check_thresholds), so the two cannot
drift; `ExpectError.path` lets it point at the offending key's line.

Facts the host owns are handed over here rather than kept as a second copy in the suite:
the paired torchvision/torchaudio/torchcodec versions (`expected.paired`) and the dotted
cuDNN version next to torch's integer encoding of it (`expected.cudnn_version`).
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from .frame import MAX_INT, loads
from .peaks import PEAKS

GIB = 1 << 30
MIB = 1 << 20
_DOTTED = re.compile(r"^\d+(\.\d+)*$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_COUNT = re.compile(r"^[1-9][0-9]*$")
_ARCH_FLAG = re.compile(r"(sm|compute)_[0-9]{2,3}[a-z]?")
COMPANIONS = ("torchvision", "torchaudio", "torchcodec")
# Keys a per-GPU table may use: a peak-table key ("H100 SXM"), a family ("H100"), "default".
GPU_KEYS: tuple[str, ...] = tuple(
    sorted({row.key for row in PEAKS} | {row.family for row in PEAKS} | {"default"})
)


class ExpectError(Exception):
    """A bad or unreadable expect file (CLI exit code 2).

    `path` is the key path of the offending value (("thresholds", "check_timeout_s", "ncll")),
    empty when the problem is the file itself.
    """

    def __init__(self, message: str, path: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class Expected:
    torch: str | None = None
    cuda: str | None = None
    cudnn: int | None = None  # as torch.backends.cudnn.version() reports it: 91002
    cudnn_version: str | None = None  # the same release dotted, from the host: "9.10.2.21"
    nccl: str | None = None
    python: str | None = None
    torchvision: str | None = None  # must be installed, at this version (None: not asked)
    torchaudio: str | None = None
    torchcodec: str | None = None
    # The release of each companion that pairs with this torch (the host's compat data); an
    # installed companion must match it whether or not the layer asked for it. A torchcodec
    # pair such as "0.9" matches any 0.9.x.
    paired: Mapping[str, str] = field(default_factory=dict)
    # The image's arch contract from the host's compat data: what
    # torch._C._cuda_getArchFlags() prints inside it ("sm_90", "compute_120" for PTX), as a set.
    arch_flags: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Thresholds:
    matmul_min_fraction_of_peak: Mapping[str, float] = field(
        default_factory=lambda: {"default": 0.5}
    )
    matmul_size: int = 8192
    shm_min_bytes: int = GIB
    nccl_max_bytes: int = 256 * MIB
    # GPU key -> GPU count ("8", or "default") -> GB/s. No entry: no gate.
    nccl_min_busbw_gbps: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # Across nodes over the pod network (checks.multinode); None: no gate.
    nccl_multinode_min_busbw_gbps: float | None = None
    check_timeout_s: Mapping[str, float] = field(default_factory=dict)

    def timeout_for(self, check_id: str, module_default: float) -> float:
        """Per-id value, else the file's "default", else the check module's own default."""
        if check_id in self.check_timeout_s:
            return self.check_timeout_s[check_id]
        return self.check_timeout_s.get("default", module_default)

    def busbw_gate(self, gpu_keys: Collection[str], gpu_count: int) -> float | None:
        """The single-node gate for `gpu_count` GPUs of a model, most specific key first
        (`gpu_keys` in order, e.g. ("H100 SXM", "H100"), then "default"); None: no gate."""
        for key in (*gpu_keys, "default"):
            by_count = self.nccl_min_busbw_gbps.get(key)
            if by_count is None:
                continue
            if str(gpu_count) in by_count:
                return by_count[str(gpu_count)]
            if "default" in by_count:
                return by_count["default"]
        return None


@dataclass(frozen=True)
class Expect:
    image_id: str | None = None
    # The registry manifest digest the image was pushed as, when the host knows it.
    image_digest: str | None = None
    layers: tuple[str, ...] | None = None
    checks: tuple[str, ...] | None = None
    expected: Expected = field(default_factory=Expected)
    driver_min: str | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    source: str | None = None


def load_expect(path: str, check_ids: Collection[str]) -> Expect:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ExpectError(f"cannot read expect file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ExpectError(f"cannot read expect file {path}: not UTF-8 ({exc.reason})") from None
    try:
        data = loads(text)
    except json.JSONDecodeError as exc:
        raise ExpectError(
            f"{path}:{exc.lineno}:{exc.colno}: invalid JSON in expect file: {exc.msg}"
        ) from None
    except ValueError as exc:  # a huge number, NaN, deep nesting
        raise ExpectError(f"{path}: invalid JSON in expect file: {exc}") from None
    return parse_expect(data, source=path, check_ids=check_ids)


def parse_expect(data: object, source: str = "<expect>", *, check_ids: Collection[str]) -> Expect:
    """`check_ids`: the suite's check ids (checks.registry.CHECK_IDS), handed in so that this
    parser, which every suite module reads, never imports the registry of those modules."""
    top = _object(data, source, "top level")
    _reject_unknown(top, Expect.__dataclass_fields__.keys() - {"source"}, source, ())
    layers = _opt_str_list(top.get("layers"), source, "layers")
    checks = _opt_str_list(top.get("checks"), source, "checks")
    driver_min = _opt_str(top.get("driver_min"), source, "driver_min")
    if driver_min is not None and not _DOTTED.match(driver_min):
        raise ExpectError(
            f"{source}: driver_min must look like '570.26', got {driver_min!r}", ("driver_min",)
        )
    digest = _opt_str(top.get("image_digest"), source, "image_digest")
    if digest is not None and not _DIGEST.match(digest):
        raise ExpectError(
            f"{source}: image_digest must be 'sha256:' and 64 lower-case hex digits, "
            f"got {digest!r}",
            ("image_digest",),
        )
    return Expect(
        image_id=_opt_str(top.get("image_id"), source, "image_id"),
        image_digest=digest,
        layers=layers,
        checks=checks,
        expected=_parse_expected(top.get("expected"), source),
        driver_min=driver_min,
        thresholds=_parse_thresholds(top.get("thresholds"), source, check_ids),
        source=source,
    )


def _parse_expected(raw: object, source: str) -> Expected:
    if raw is None:
        return Expected()
    obj = _object(raw, source, "expected")
    _reject_unknown(obj, Expected.__dataclass_fields__.keys(), source, ("expected",))
    keys = ("torch", "cuda", "cudnn_version", "nccl", "python", *COMPANIONS)
    strings = {key: _opt_str(obj.get(key), source, f"expected.{key}") for key in keys}
    for key in ("cuda", "cudnn_version", "nccl", "python"):
        value = strings[key]
        if value is not None and not _DOTTED.match(value):
            raise ExpectError(
                f"{source}: expected.{key} must be dotted digits, got {value!r}", ("expected", key)
            )
    paired_raw = obj.get("paired")
    paired: dict[str, str] = {}
    if paired_raw is not None:
        table = _object(paired_raw, source, "expected.paired")
        _reject_unknown(table, COMPANIONS, source, ("expected", "paired"))
        for name, version in table.items():
            text = _opt_str(version, source, f"expected.paired.{name}")
            if text is not None:
                paired[name] = text
    arch_flags = _opt_str_list(obj.get("arch_flags"), source, "expected.arch_flags")
    for flag in arch_flags or ():
        if not _ARCH_FLAG.fullmatch(flag):
            raise ExpectError(
                f"{source}: expected.arch_flags holds {flag!r}, not an arch flag like sm_90",
                ("expected", "arch_flags"),
            )
    return Expected(
        cudnn=_opt_cudnn(obj.get("cudnn"), source), paired=paired, arch_flags=arch_flags,
        **strings,
    )


def _parse_thresholds(raw: object, source: str, check_ids: Collection[str]) -> Thresholds:
    if raw is None:
        return Thresholds()
    obj = _object(raw, source, "thresholds")
    _reject_unknown(obj, Thresholds.__dataclass_fields__.keys(), source, ("thresholds",))
    base = Thresholds()
    key = "matmul_min_fraction_of_peak"
    fractions = _num_map(obj.get(key), source, key, GPU_KEYS, upper=1.0)
    multinode = obj.get("nccl_multinode_min_busbw_gbps")
    return Thresholds(
        matmul_min_fraction_of_peak=fractions or base.matmul_min_fraction_of_peak,
        matmul_size=_pos_int(obj.get("matmul_size"), source, "matmul_size", base.matmul_size),
        shm_min_bytes=_pos_int(
            obj.get("shm_min_bytes"), source, "shm_min_bytes", base.shm_min_bytes
        ),
        nccl_max_bytes=_pos_int(
            obj.get("nccl_max_bytes"), source, "nccl_max_bytes", base.nccl_max_bytes
        ),
        nccl_min_busbw_gbps=_busbw_table(obj.get("nccl_min_busbw_gbps"), source),
        nccl_multinode_min_busbw_gbps=None
        if multinode is None
        else _number(multinode, source, ("thresholds", "nccl_multinode_min_busbw_gbps")),
        check_timeout_s=_num_map(
            obj.get("check_timeout_s"), source, "check_timeout_s", (*sorted(check_ids), "default"),
            positive=True,
        ),
    )


# --- small typed readers; each names the key path in its error -------------------------------


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path)


def _object(value: object, source: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ExpectError(
            f"{source}: {where} must be a JSON object, got {_type_name(value)}",
            tuple(where.split(".")) if where != "top level" else (),
        )
    return value


def _reject_unknown(
    obj: Mapping[str, Any], known: Collection[str], source: str, prefix: tuple[str, ...]
) -> None:
    for key in obj:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean '{_dotted((*prefix, close[0]))}'?" if close else ""
            allowed = f" (allowed: {', '.join(sorted(known))})" if len(known) <= 30 else ""
            raise ExpectError(
                f"{source}: unknown key '{_dotted((*prefix, str(key)))}'{hint}{allowed}",
                (*prefix, str(key)),
            )


def _opt_str(value: object, source: str, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ExpectError(
        f"{source}: {where} must be a string, got {_type_name(value)}", tuple(where.split("."))
    )


def _opt_str_list(value: object, source: str, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ExpectError(f"{source}: {where} must be a list of strings", (where,))


def _opt_cudnn(value: object, source: str) -> int | None:
    # cuDNN as torch reports it: an int such as 91002; a digit string is accepted too.
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value > MAX_INT:
        raise ExpectError(f"{source}: expected.cudnn is out of range", ("expected", "cudnn"))
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,9}", value):  # ASCII digits only
        return int(value)
    raise ExpectError(
        f"{source}: expected.cudnn must be an integer like 91002, got {value!r}",
        ("expected", "cudnn"),
    )


def _shown(value: object) -> str:
    """A value for a message, cut short: a 5000-digit integer is not printed whole."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        return "an integer of more than 19 digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _pos_int(value: object, source: str, key: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_INT:
        return value
    raise ExpectError(
        f"{source}: thresholds.{key} must be a positive integer up to 2**63-1, got"
        f" {_shown(value)}",
        ("thresholds", key),
    )


def _number(
    value: object,
    source: str,
    path: tuple[str, ...],
    *,
    positive: bool = False,
    upper: float | None = None,
) -> float:
    """A finite number >= 0 (> 0 when `positive`, <= `upper` when given)."""
    where = _dotted(path)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExpectError(f"{source}: {where} must be a number, got {_type_name(value)}", path)
    if isinstance(value, int) and abs(value) > MAX_INT:  # float() of it would overflow
        raise ExpectError(f"{source}: {where} is out of range, got {_shown(value)}", path)
    if not math.isfinite(value):
        raise ExpectError(f"{source}: {where} must be a finite number, got {value!r}", path)
    if positive and value <= 0:
        raise ExpectError(f"{source}: {where} must be greater than 0, got {value!r}", path)
    if value < 0:
        raise ExpectError(f"{source}: {where} must be a non-negative number, got {value!r}", path)
    if upper is not None and value > upper:
        raise ExpectError(
            f"{source}: {where} is {value!r}, above {upper:g}: a fraction of peak is at most "
            f"{upper:g} (0.6 means 60% of the datasheet figure)",
            path,
        )
    return float(value)


def _num_map(
    value: object,
    source: str,
    key: str,
    names: Collection[str],
    *,
    positive: bool = False,
    upper: float | None = None,
) -> dict[str, float]:
    """A {name: number} map with names from `names`; a bare number means {"default": number}."""
    path = ("thresholds", key)
    if value is None:
        return {}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = {"default": value}
    if not isinstance(value, dict):
        raise ExpectError(
            f"{source}: thresholds.{key} must be a number or an object of numbers, "
            f"got {_type_name(value)}",
            path,
        )
    _reject_unknown(value, names, source, path)
    return {
        str(name): _number(number, source, (*path, str(name)), positive=positive, upper=upper)
        for name, number in value.items()
    }


def _busbw_table(value: object, source: str) -> dict[str, dict[str, float]]:
    """{GPU key: {GPU count or "default": GB/s}}; a bare number under a GPU key means any count."""
    path = ("thresholds", "nccl_min_busbw_gbps")
    if value is None:
        return {}
    table = _object(value, source, _dotted(path))
    _reject_unknown(table, GPU_KEYS, source, path)
    out: dict[str, dict[str, float]] = {}
    for gpu, by_count in table.items():
        here = (*path, str(gpu))
        if isinstance(by_count, (int, float)) and not isinstance(by_count, bool):
            by_count = {"default": by_count}
        counts = _object(by_count, source, _dotted(here))
        for count in counts:
            if count != "default" and not _COUNT.match(str(count)):
                raise ExpectError(
                    f"{source}: {_dotted((*here, str(count)))}: a GPU count such as \"8\" or "
                    f"\"default\" was expected, got {count!r}",
                    (*here, str(count)),
                )
        out[str(gpu)] = {
            str(count): _number(gbps, source, (*here, str(count)), positive=True)
            for count, gbps in counts.items()
        }
    return out

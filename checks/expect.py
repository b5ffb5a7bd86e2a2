"""The expect file: what the host asked for, parsed once into frozen dataclasses.

Every key is optional. A missing value means "no expectation": the check that needs it only
reports (or skips). Anything malformed raises `ExpectError`, which the CLI turns into exit
code 2 with a one-line message naming the file and the key.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

GIB = 1 << 30
MIB = 1 << 20
_DOTTED = re.compile(r"^\d+(\.\d+)*$")


class ExpectError(Exception):
    """A bad or unreadable expect file (CLI exit code 2)."""


@dataclass(frozen=True)
class Expected:
    torch: str | None = None
    cuda: str | None = None
    cudnn: int | None = None
    nccl: str | None = None
    python: str | None = None
    torchvision: str | None = None
    torchaudio: str | None = None


@dataclass(frozen=True)
class Thresholds:
    matmul_min_fraction_of_peak: Mapping[str, float] = field(
        default_factory=lambda: {"default": 0.5}
    )
    matmul_size: int = 8192
    shm_min_bytes: int = GIB
    nccl_max_bytes: int = 256 * MIB
    nccl_min_busbw_gbps: Mapping[str, float] = field(default_factory=dict)
    check_timeout_s: Mapping[str, float] = field(default_factory=dict)

    def timeout_for(self, check_id: str, module_default: float) -> float:
        """Per-id value, else the file's "default", else the check module's own default."""
        if check_id in self.check_timeout_s:
            return self.check_timeout_s[check_id]
        return self.check_timeout_s.get("default", module_default)


@dataclass(frozen=True)
class Expect:
    image_id: str | None = None
    layers: tuple[str, ...] | None = None
    checks: tuple[str, ...] | None = None
    expected: Expected = field(default_factory=Expected)
    driver_min: str | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    source: str | None = None


def load_expect(path: str) -> Expect:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ExpectError(f"cannot read expect file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ExpectError(f"cannot read expect file {path}: not UTF-8 ({exc.reason})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExpectError(
            f"{path}:{exc.lineno}:{exc.colno}: invalid JSON in expect file: {exc.msg}"
        ) from None
    return parse_expect(data, source=path)


def parse_expect(data: object, source: str = "<expect>") -> Expect:
    top = _object(data, source, "top level")
    _reject_unknown(top, Expect.__dataclass_fields__.keys() - {"source"}, source, "")
    layers = _opt_str_list(top.get("layers"), source, "layers")
    checks = _opt_str_list(top.get("checks"), source, "checks")
    driver_min = _opt_str(top.get("driver_min"), source, "driver_min")
    if driver_min is not None and not _DOTTED.match(driver_min):
        raise ExpectError(f"{source}: driver_min must look like '570.26', got {driver_min!r}")
    return Expect(
        image_id=_opt_str(top.get("image_id"), source, "image_id"),
        layers=layers,
        checks=checks,
        expected=_parse_expected(top.get("expected"), source),
        driver_min=driver_min,
        thresholds=_parse_thresholds(top.get("thresholds"), source),
        source=source,
    )


def _parse_expected(raw: object, source: str) -> Expected:
    if raw is None:
        return Expected()
    obj = _object(raw, source, "expected")
    _reject_unknown(obj, Expected.__dataclass_fields__.keys(), source, "expected.")
    strings = {
        key: _opt_str(obj.get(key), source, f"expected.{key}")
        for key in ("torch", "cuda", "nccl", "python", "torchvision", "torchaudio")
    }
    for key in ("cuda", "nccl", "python"):
        value = strings[key]
        if value is not None and not _DOTTED.match(value):
            raise ExpectError(f"{source}: expected.{key} must be dotted digits, got {value!r}")
    return Expected(cudnn=_opt_cudnn(obj.get("cudnn"), source), **strings)


def _parse_thresholds(raw: object, source: str) -> Thresholds:
    if raw is None:
        return Thresholds()
    obj = _object(raw, source, "thresholds")
    _reject_unknown(obj, Thresholds.__dataclass_fields__.keys(), source, "thresholds.")
    base = Thresholds()
    key = "matmul_min_fraction_of_peak"
    fractions = _num_map(obj.get(key), source, key)
    return Thresholds(
        matmul_min_fraction_of_peak=fractions or base.matmul_min_fraction_of_peak,
        matmul_size=_pos_int(obj.get("matmul_size"), source, "matmul_size", base.matmul_size),
        shm_min_bytes=_pos_int(
            obj.get("shm_min_bytes"), source, "shm_min_bytes", base.shm_min_bytes
        ),
        nccl_max_bytes=_pos_int(
            obj.get("nccl_max_bytes"), source, "nccl_max_bytes", base.nccl_max_bytes
        ),
        nccl_min_busbw_gbps=_num_map(obj.get("nccl_min_busbw_gbps"), source, "nccl_min_busbw_gbps"),
        check_timeout_s=_num_map(obj.get("check_timeout_s"), source, "check_timeout_s"),
    )


# --- small typed readers; each names the key path in its error -------------------------------


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _object(value: object, source: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ExpectError(f"{source}: {where} must be a JSON object, got {_type_name(value)}")
    return value


def _reject_unknown(
    obj: Mapping[str, Any], known: Collection[str], source: str, prefix: str
) -> None:
    for key in obj:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
            raise ExpectError(f"{source}: unknown key '{prefix}{key}'{hint}")


def _opt_str(value: object, source: str, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ExpectError(f"{source}: {where} must be a string, got {_type_name(value)}")


def _opt_str_list(value: object, source: str, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ExpectError(f"{source}: {where} must be a list of strings")


def _opt_cudnn(value: object, source: str) -> int | None:
    # cuDNN as torch reports it: an int such as 91002; a digit string is accepted too.
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ExpectError(f"{source}: expected.cudnn must be an integer like 91002, got {value!r}")


def _pos_int(value: object, source: str, key: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ExpectError(f"{source}: thresholds.{key} must be a positive integer, got {value!r}")


def _num_map(value: object, source: str, key: str) -> dict[str, float]:
    """A {name: number} map; a bare number means {"default": number}."""
    if value is None:
        return {}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = {"default": value}
    if isinstance(value, dict):
        out: dict[str, float] = {}
        for name, number in value.items():
            if isinstance(number, bool) or not isinstance(number, (int, float)) or number < 0:
                raise ExpectError(
                    f"{source}: thresholds.{key}.{name} must be a non-negative number, "
                    f"got {number!r}"
                )
            out[name] = float(number)
        return out
    raise ExpectError(
        f"{source}: thresholds.{key} must be a number or an object of numbers, "
        f"got {_type_name(value)}"
    )

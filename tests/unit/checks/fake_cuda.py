"""A small fake of the torch surface the matmul check drives on a GPU.

Each device has a clock in milliseconds; a matmul advances its device's clock by a scripted
duration, and CUDA events read that clock, so `elapsed_time` is in ms exactly as CUDA's is.
Every call is logged (with the fp32 matmul precision in force), so tests can ask what the
check did: which devices it timed, whether it warmed up first, whether TF32 was on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FakeDevice:
    type: str
    index: int


@dataclass
class FakeTensor:
    device: FakeDevice
    dtype: str


@dataclass(frozen=True)
class Call:
    op: str  # "matmul", "record", "set_device", "synchronize"
    device: int
    dtype: str = ""
    precision: str = ""


# duration_ms(device index, dtype, n-th matmul on that device and dtype) -> ms
Durations = Callable[[int, str, int], float]


@dataclass
class FakeTorch:
    names: list[str]
    durations: Durations
    precision: str = "highest"
    log: list[Call] = field(default_factory=list)
    clocks: dict[int, float] = field(default_factory=dict)
    counts: dict[tuple[int, str], int] = field(default_factory=dict)
    current: int = 0
    bfloat16: str = "bf16"
    float32: str = "fp32"

    def __post_init__(self) -> None:
        self.cuda = _FakeCuda(self)

    # --- torch.* -----------------------------------------------------------------------
    def device(self, kind: str, index: int) -> FakeDevice:
        return FakeDevice(kind, index)

    def randn(self, *_shape: int, device: FakeDevice, dtype: str) -> FakeTensor:
        return FakeTensor(device, dtype)

    def empty(self, *_shape: int, device: FakeDevice, dtype: str) -> FakeTensor:
        return FakeTensor(device, dtype)

    def matmul(self, a: FakeTensor, b: FakeTensor, out: FakeTensor) -> FakeTensor:
        assert a.device == b.device == out.device, "operands on different devices"
        index = a.device.index
        key = (index, a.dtype)
        nth = self.counts.get(key, 0)
        self.counts[key] = nth + 1
        self.clocks[index] = self.clocks.get(index, 0.0) + self.durations(index, a.dtype, nth)
        self.log.append(Call("matmul", index, a.dtype, self.precision))
        return out

    def get_float32_matmul_precision(self) -> str:
        return self.precision

    def set_float32_matmul_precision(self, precision: str) -> None:
        self.precision = precision

    # --- what tests ask ----------------------------------------------------------------
    def matmuls(self, device: int, dtype: str) -> list[Call]:
        return [c for c in self.log if c.op == "matmul" and (c.device, c.dtype) == (device, dtype)]


class _FakeEvent:
    def __init__(self, torch: FakeTorch) -> None:
        self._torch = torch
        self.at: float | None = None
        self.device: int | None = None

    def record(self) -> None:
        # Events record on the current device's stream, like torch.cuda.Event().record().
        self.device = self._torch.current
        self.at = self._torch.clocks.get(self.device, 0.0)
        self._torch.log.append(Call("record", self.device))

    def synchronize(self) -> None:
        assert self.at is not None, "synchronize() on an event never recorded"

    def elapsed_time(self, end: _FakeEvent) -> float:
        assert self.at is not None and end.at is not None, "elapsed_time needs recorded events"
        assert self.device == end.device, "events on different devices"
        return end.at - self.at  # milliseconds, as CUDA reports


class _FakeCuda:
    def __init__(self, torch: FakeTorch) -> None:
        self._torch = torch

    def Event(self, enable_timing: bool = False) -> _FakeEvent:
        assert enable_timing, "timing needs Event(enable_timing=True)"
        return _FakeEvent(self._torch)

    def device_count(self) -> int:
        return len(self._torch.names)

    def set_device(self, index: int) -> None:
        assert 0 <= index < len(self._torch.names)
        self._torch.current = index
        self._torch.log.append(Call("set_device", index))

    def get_device_name(self, index: int) -> str:
        return self._torch.names[index]

    def synchronize(self, device: Any = None) -> None:
        index = device.index if isinstance(device, FakeDevice) else self._torch.current
        self._torch.log.append(Call("synchronize", index))

    def empty_cache(self) -> None:
        pass

"""What a check is (`CheckSpec`) and what it is given (`CheckContext`).

Each module under `checks/suite/` exposes one `CHECK = CheckSpec(...)`. The runner calls
`spec.run(ctx)` in a child process; the function returns an `Outcome` (or raises, which the
runner reports as status "error").
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from .expect import Expect
from .result import Outcome

GpuMode = Literal["required", "auto", "off"]
GPU_MODES: tuple[GpuMode, ...] = ("required", "auto", "off")

# True: needs a GPU; False: never; "partly": has a CPU stand-in when no GPU may be used.
# Union, not `|`: this alias is evaluated at runtime and the suite supports Python 3.9.
NeedsGpu = Union[bool, Literal["partly"]]  # noqa: UP007

LAYERS = ("torch", "vision", "nlp")


@dataclass(frozen=True)
class CheckContext:
    gpu_mode: GpuMode = "auto"
    gpu_present: bool = False
    expect: Expect = field(default_factory=Expect)
    facts: Mapping[str, Any] = field(default_factory=dict)
    # The timeout the runner enforces for this check; checks that start their own workers
    # use it to give up a little earlier with a better message.
    timeout_s: float = 120.0

    @property
    def use_gpu(self) -> bool:
        """Whether a check may put work on a GPU right now."""
        return self.gpu_mode != "off" and self.gpu_present

    @property
    def device(self) -> str:
        return "cuda" if self.use_gpu else "cpu"

    @property
    def gpu_names(self) -> list[str]:
        return [str(gpu.get("name", "")) for gpu in self.facts.get("gpus") or []]


CheckFn = Callable[[CheckContext], Outcome]


@dataclass(frozen=True)
class CheckSpec:
    id: str
    layers: tuple[str, ...]
    needs_gpu: NeedsGpu
    timeout_s: float
    run: CheckFn
    summary: str = ""


def log(message: str) -> None:
    """Progress goes to stderr; stdout is reserved for the JSON document."""
    print(f"[checks {os.getpid()}] {message}", file=sys.stderr, flush=True)

"""Hold Ctrl-C and SIGTERM over a short step that must not be cut in half."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from torchstack.errors import Interrupted


@contextmanager
def deferred_signals(step: str) -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends, then act on them (raise Interrupted)."""
    caught: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        caught.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        raise Interrupted(f"interrupted after finishing {step}")

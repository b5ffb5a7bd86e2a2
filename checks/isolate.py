"""Run one function in a forked child with a hard timeout.

Why fork: the parent imports torch once (about 2 s) and every child inherits it for free. That
is safe because the parent never initialises CUDA; anything that touches a GPU (even gathering
GPU facts) happens in a child. Each child leads its own process group, so a timeout kills the
child together with any workers it started (the nccl check starts one process per GPU).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Literal

ChildKind = Literal["returned", "raised", "timeout", "died"]


@dataclass(frozen=True)
class ChildReport:
    kind: ChildKind
    value: object = None
    error: str = ""  # "ValueError: bad input", "killed by signal 11 (SIGSEGV)", ...
    elapsed_s: float = 0.0


def run_isolated(fn: Callable[[], object], timeout_s: float) -> ChildReport:
    """Call `fn()` in a forked child; its return value must be picklable."""
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    # Unflushed parent output would be written twice (once by the child at exit).
    sys.stdout.flush()
    sys.stderr.flush()
    started = time.monotonic()
    proc = ctx.Process(target=_child_main, args=(fn, sender), daemon=False)
    proc.start()
    pid = proc.pid
    assert pid is not None  # set by start()
    _set_group(pid)  # also done by the child: whichever runs first wins the race
    sender.close()
    try:
        if receiver.poll(max(timeout_s, 0.0)):
            try:
                kind, payload = receiver.recv()
            except EOFError:
                proc.join(5)
                return ChildReport("died", error=_death(proc.exitcode), elapsed_s=_since(started))
            proc.join(10)
            return ChildReport(
                kind,
                payload if kind == "returned" else None,
                "" if kind == "returned" else str(payload),
                _since(started),
            )
        return ChildReport(
            "timeout", error=f"timed out after {timeout_s:g}s", elapsed_s=_since(started)
        )
    finally:
        receiver.close()
        _kill_group(pid)
        if proc.is_alive():
            proc.kill()
        proc.join(5)


def _since(started: float) -> float:
    return time.monotonic() - started


def _set_group(pid: int) -> None:
    with contextlib.suppress(OSError):  # the child already did it, or already exited
        os.setpgid(pid, pid)


def _kill_group(pgid: int) -> None:
    # Also run after a normal return: it reaps workers a check left behind.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown"
        return f"check process killed by signal {-exitcode} ({name}) before reporting"
    return f"check process exited with code {exitcode} before reporting"


def _child_main(fn: Callable[[], object], sender: Connection) -> None:
    _set_group(0)
    # stdout belongs to the JSON document: whatever a check or a library prints goes to stderr.
    os.dup2(2, 1)
    try:
        value = fn()
        sender.send(("returned", value))
    except BaseException as exc:  # report everything, including SystemExit
        traceback.print_exc(file=sys.stderr)
        message = f"{type(exc).__name__}: {exc}".rstrip(": ")
        with contextlib.suppress(Exception):  # else the parent reports the child as died
            sender.send(("raised", message))
    finally:
        sender.close()

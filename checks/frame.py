"""Report framing: the suite's JSON document between two marker lines, with its checksum.

A report that travels through logs (a Kubernetes Job's pod log, a CI console) can arrive cut
short or mixed with other output. With `python -m checks --json --frame` stdout carries::

    ==== TORCHSTACK-REPORT BEGIN v1 sha256=<64 hex> bytes=<N> ====
    <the JSON document as ONE line: json.dumps(doc, separators=(",", ":"), sort_keys=True)>
    ==== TORCHSTACK-REPORT END ====

sha256 and bytes are over the UTF-8 bytes of that one JSON line. `unframe` finds the frame
in any text (other lines around it are ignored) and refuses a truncated or altered one.

This module is plain standard library with no torch import and no import of the rest of
`checks`, so the host (torchstack's `record import`) imports it as `checks.frame` and both
sides share one parser.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

# ASCII digits, bounded: `\d` also takes other scripts' digits, and int() of 5000 of them fails.
BEGIN_RE = re.compile(
    r"==== TORCHSTACK-REPORT BEGIN v(?P<version>[0-9]{1,6}) sha256=(?P<sha>[0-9a-f]{64}) "
    r"bytes=(?P<bytes>[0-9]{1,12}) ===="
)
END = "==== TORCHSTACK-REPORT END ===="
VERSION = 1


# Numbers in a document from elsewhere (a report, the expect file): 64-bit integers, and
# numbers written with at most 40 characters; anything else is refused, not computed with.
MAX_INT = 2**63 - 1
MAX_NUMBER_CHARS = 40


def loads(text: str | bytes) -> Any:
    """json.loads for a document from elsewhere: a ValueError (never a RecursionError,
    OverflowError or an unbounded int) for deep nesting, huge numbers, NaN or Infinity."""
    try:
        return json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


def _int(text: str) -> int:
    value = int(text) if len(text) <= MAX_NUMBER_CHARS else MAX_INT + 1
    if abs(value) > MAX_INT:
        raise ValueError(f"the integer {text[:20]}{'...' if len(text) > 20 else ''} is out of"
                         " range (at most 2**63-1)")
    return value


def _float(text: str) -> float:
    value = float(text) if len(text) <= MAX_NUMBER_CHARS else float("inf")
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:20]}{'...' if len(text) > 20 else ''} is out of"
                         " range")
    return value


def _constant(text: str) -> float:
    raise ValueError(f"{text} is not a number JSON allows")


class FrameError(ValueError):
    """A framed report that is missing, truncated, altered or not a JSON object."""


def canonical(doc: dict[str, Any]) -> str:
    """The one-line form that is framed and checksummed."""
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, allow_nan=False)


def frame(doc: dict[str, Any]) -> str:
    """The three lines (no trailing newline) that carry `doc`."""
    line = canonical(doc)
    data = line.encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    begin = f"==== TORCHSTACK-REPORT BEGIN v{VERSION} sha256={digest} bytes={len(data)} ===="
    return f"{begin}\n{line}\n{END}"


def unframe(text: str) -> dict[str, Any]:
    """The document of the LAST complete frame in `text`; FrameError says what is wrong.

    The last one wins: a retried Job pod can log an earlier, interrupted attempt first.
    """
    lines = [line.rstrip("\r") for line in text.split("\n")]
    begins = [i for i, line in enumerate(lines) if line.startswith("==== TORCHSTACK-REPORT BEGIN")]
    if not begins:
        raise FrameError("no TORCHSTACK-REPORT BEGIN line found (was the suite run with --frame?)")
    at = begins[-1]
    match = BEGIN_RE.fullmatch(lines[at])
    if match is None:
        raise FrameError(f"malformed BEGIN line: {lines[at][:120]!r}")
    if int(match["version"]) != VERSION:
        raise FrameError(
            f"report frame v{match['version']} is not understood (this parser reads v{VERSION})"
        )
    if at + 2 >= len(lines) or lines[at + 2] != END:
        raise FrameError(
            "report frame is truncated: no END line right after the JSON line "
            "(the output was cut short)"
        )
    data = lines[at + 1].encode("utf-8")
    want = int(match["bytes"])
    if len(data) != want:
        raise FrameError(
            f"report frame is truncated or altered: {len(data)} bytes, header says {want}"
        )
    digest = hashlib.sha256(data).hexdigest()
    if digest != match["sha"]:
        raise FrameError(f"report checksum mismatch: sha256 {digest}, header says {match['sha']}")
    try:
        doc = loads(data)
    except ValueError as exc:
        raise FrameError(f"framed report is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise FrameError(f"framed report is a JSON {type(doc).__name__}, not an object")
    return doc

"""Build progress for people and for CI: the `build.Reporter` implementations.

On a terminal: a rich live table (image, state, step n/N, elapsed, last log line). Elsewhere:
plain lines; on GitHub Actions each image's build log is folded in `::group::build <id>`.
Both end with the same summary: result, duration, size and image ID per image, then each
failure with its step, reason and last log lines.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Column, Table
from rich.text import Text

if TYPE_CHECKING:  # types only: `plan` imports this module and must not load Docker code
    from torchstack.build.builder import BuildSummary, ImageResult

ICONS = {"waiting": "·", "building": "▶", "cached": "=", "built": "✓", "failed": "✗",
         "skipped": "-"}
STYLES = {"cached": "cyan", "built": "green", "failed": "bold red", "skipped": "yellow",
          "building": "bold"}


def make_reporter(*, live: bool = True, github: bool = False,
                  stream: TextIO | None = None) -> PlainReporter:
    """The live view on a terminal, plain lines in CI (`github`: folded) or when piped."""
    stream = stream or sys.stdout
    if live and not github and stream.isatty():
        return LiveReporter(stream)
    return PlainReporter(stream, github=github)


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 60 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def summary_rows(summary: BuildSummary) -> list[list[str]]:
    return [[r.id, r.status, "-" if r.status == "skipped" else human_duration(r.duration_s),
             human_size(r.size),
             (r.image_id or "-").removeprefix("sha256:")[:12],
             r.reason if r.status == "skipped" and r.reason else ""]
            for r in summary.results]


STEP_WIDTH = 120  # a LABEL step with every label is one very long line
SUMMARY_HEADER = ("image", "result", "duration", "size", "image id", "note")


def failure_text(summary: BuildSummary) -> list[str]:
    lines = []
    for result in summary.failed:
        where = f" at {result.failed_step}" if result.failed_step else ""
        lines += ["", f"FAILED {result.id}{where}", f"  {result.reason}"]
        if result.log_tail:
            lines.append(f"  last {len(result.log_tail)} log lines:")
            lines += [f"  | {line}" for line in result.log_tail]
        if result.log:
            lines.append(f"  full log: {summary.run.path / result.log}")
    return lines


def totals(summary: BuildSummary) -> str:
    counts: dict[str, int] = {}
    for result in summary.results:
        counts[result.status] = counts.get(result.status, 0) + 1
    parts = ", ".join(f"{n} {status}" for status, n in counts.items())
    return (f"{len(summary.results)} images: {parts}; {summary.docker_builds} Docker builds in"
            f" {human_duration(summary.duration_s)}; run: {summary.run.path}")


class Fold:
    """GitHub Actions' log folds (`::group::TITLE` ... `::endgroup::`), for the build and for
    every other verb. GitHub does not nest folds, so opening one closes the one still open.
    Off GitHub Actions (`enabled` false) it prints nothing."""

    def __init__(self, emit: Callable[[str], None], *, enabled: bool) -> None:
        self.emit, self.enabled = emit, enabled
        self.key: str | None = None  # what the open fold is for (an image id, an item)

    def open(self, key: str, title: str) -> None:
        if not self.enabled:
            return
        self.close()
        self.emit(f"::group::{title}")
        self.key = key

    def close(self) -> None:
        if self.key is not None:
            self.emit("::endgroup::")
            self.key = None


class PlainReporter:
    """One line per state change; build logs only on GitHub Actions, folded per image."""

    def __init__(self, stream: TextIO, *, github: bool = False) -> None:
        self.stream, self.github = stream, github
        self.shown: dict[str, tuple[str, int]] = {}
        self.fold = Fold(self.print, enabled=github)

    def print(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    def begin(self, results: list[ImageResult]) -> None:
        self.print(f"building {len(results)} images: {', '.join(r.id for r in results)}")

    def update(self, result: ImageResult) -> None:
        step = result.step.n if result.step else 0
        if self.shown.get(result.id) == (result.status, step):
            return
        self.shown[result.id] = (result.status, step)
        if result.status == "building" and self.fold.key != result.id:
            self.fold.open(result.id, f"build {result.id}")
        if self.fold.key == result.id and result.status != "building":
            self.fold.close()
        if result.status == "building" and result.step is not None:
            if not self.github:  # on GitHub the step lines are in the folded log
                self.print(f"{result.id}: {str(result.step)[:STEP_WIDTH]}")
        elif result.status not in ("waiting",):
            self.print(self._state_line(result))

    def _state_line(self, result: ImageResult) -> str:
        if result.status == "building":
            return f"{result.id}: building"
        detail = [human_duration(result.duration_s)] if result.duration_s else []
        if result.image_id:
            detail += [result.image_id.removeprefix("sha256:")[:12], human_size(result.size)]
        line = f"{result.id}: {result.status}" + (f" ({', '.join(detail)})" if detail else "")
        return line + (f": {result.reason}" if result.reason else "")

    def line(self, result: ImageResult, text: str) -> None:
        if self.github:
            self.print(text)

    def end(self, summary: BuildSummary) -> None:
        self.fold.close()
        self.print()
        self.print(format_table(SUMMARY_HEADER, summary_rows(summary)))
        for line in failure_text(summary):
            self.print(line)
        self.print()
        self.print(totals(summary))


class LiveReporter(PlainReporter):
    """A rich live table while building; the same summary as plain output at the end."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.console = Console(file=stream)
        self.results: list[ImageResult] = []
        self.last_line: dict[str, str] = {}
        self.live = Live(get_renderable=self._table, console=self.console,
                         refresh_per_second=4, transient=True)

    def begin(self, results: list[ImageResult]) -> None:
        self.results = results
        self.live.start()

    def update(self, result: ImageResult) -> None:
        self.live.refresh()

    def line(self, result: ImageResult, text: str) -> None:
        if text.strip():
            self.last_line[result.id] = text.strip()

    def end(self, summary: BuildSummary) -> None:
        self.live.stop()
        widest = max((len(r.id) for r in summary.results), default=5)
        # The id is what users search for: never truncate it.
        fixed = [Column(name, no_wrap=True) for name in ("result", "duration", "size", "image id")]
        table = Table(Column("image", no_wrap=True, min_width=widest), *fixed, "note",
                      title="build summary")
        for row, result in zip(summary_rows(summary), summary.results, strict=True):
            row[1] = f"[{STYLES.get(result.status, '')}]{ICONS[result.status]} {row[1]}"
            table.add_row(*row)
        self.console.print(table)
        for line in failure_text(summary):
            self.console.print(line, markup=False, highlight=False)
        self.console.print(totals(summary), markup=False, highlight=False)

    def _table(self) -> Table:
        table = Table(Column("image", no_wrap=True), "state", "step", "elapsed",
                      Column("last output", overflow="ellipsis", no_wrap=True), box=None)
        now = time.monotonic()
        for r in self.results:
            step = f"{r.step.n}/{r.step.total}" if r.step and r.status == "building" else ""
            elapsed = r.duration_s if r.status != "building" else now - r.started
            shown = human_duration(elapsed) if r.status != "waiting" else ""
            last = self.last_line.get(r.id, "")[:60] if r.status == "building" else ""
            style = STYLES.get(r.status, "dim")
            table.add_row(r.id, f"[{style}]{ICONS[r.status]} {r.status}", step, shown, Text(last))
        return table


def format_table(header: tuple[str, ...], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


class StageReporter:
    """Progress of every long verb but build (lock, check, promote and its pushes, bootstrap),
    one shape for all: each item starts, may print lines, and finishes with its result and
    duration. On a terminal a spinner names the item in flight; elsewhere plain lines, each
    item's lines folded in `::group::` on GitHub Actions with its result line after the fold.
    """

    def __init__(self, verb: str, *, live: bool = True, github: bool = False,
                 stream: TextIO | None = None) -> None:
        self.verb, self.github = verb, github
        self.stream = stream or sys.stdout
        self.console = Console(file=self.stream)
        use_live = live and not github and self.stream.isatty()
        self.status = self.console.status("") if use_live else None
        self.started: dict[str, float] = {}
        self.begun = time.monotonic()
        self.fold = Fold(self._print, enabled=github)

    def _print(self, text: str) -> None:
        if self.status is not None:
            self.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    def start(self, item: str, what: str = "") -> None:
        self.started[item] = time.monotonic()
        title = f"{self.verb} {item}" + (f" {what}" if what else "")
        if self.github:
            self.fold.open(item, title)
        elif self.status is not None:
            self.status.update(f"{title} ...")
            self.status.start()
        else:
            self._print(f"{title} ...")

    def line(self, text: str) -> None:
        self._print(text)

    def finish(self, item: str, result: str, *, ok: bool = True) -> None:
        """The item's result line, with how long it took since `start` (when it was started)."""
        began = self.started.pop(item, None)
        took = f" ({human_duration(time.monotonic() - began)})" if began is not None else ""
        if began is not None:
            self.fold.close()
        if self.status is not None and not self.started:
            self.status.stop()
        mark = ICONS["built"] if ok else ICONS["failed"]
        self._print(f"{mark} {item}: {result}{took}")

    def end(self, summary: str) -> None:
        if self.status is not None:
            self.status.stop()
        self._print(f"{summary} in {human_duration(time.monotonic() - self.begun)}")

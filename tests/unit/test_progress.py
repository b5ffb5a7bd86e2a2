"""The one stage reporter of lock, check, promote and bootstrap: the same lines for each verb,
durations on every finished item, and GitHub Actions folds that keep the result visible."""

from __future__ import annotations

import io
import re

import pytest

from torchstack.progress import Fold, StageReporter


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_two_items(reporter: StageReporter) -> None:
    reporter.start("img-a", "--gpu auto")
    reporter.line("a detail")
    reporter.finish("img-a", "PASS 9 pass")
    reporter.start("img-b")
    reporter.finish("img-b", "FAIL shm: too small", ok=False)
    reporter.finish("img-c", "unchanged")  # reported without a start: no duration to give
    reporter.end("3 images checked")


def test_plain_lines_name_each_item_with_its_result_and_duration() -> None:
    stream = io.StringIO()
    run_two_items(StageReporter("check", stream=stream))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "check img-a --gpu auto ..."
    assert lines[1] == "a detail"
    assert re.fullmatch(r"✓ img-a: PASS 9 pass \(\d+\.\ds\)", lines[2])
    assert re.fullmatch(r"✗ img-b: FAIL shm: too small \(\d+\.\ds\)", lines[4])
    assert lines[5] == "✓ img-c: unchanged"
    assert re.fullmatch(r"3 images checked in \d+\.\ds", lines[6])
    assert "::group::" not in stream.getvalue()


def test_github_folds_each_item_and_prints_its_result_after_the_fold() -> None:
    stream = Tty()  # a terminal on a runner is still folded, never live
    run_two_items(StageReporter("check", github=True, stream=stream))
    lines = stream.getvalue().splitlines()
    assert lines[:3] == ["::group::check img-a --gpu auto", "a detail", "::endgroup::"]
    assert lines[3].startswith("✓ img-a: PASS")
    assert lines[4:6] == ["::group::check img-b", "::endgroup::"]
    assert lines[6].startswith("✗ img-b: FAIL")
    assert lines.count("::endgroup::") == 2  # none for the item that never started


@pytest.mark.parametrize("live", [True, False])
def test_a_terminal_gets_a_spinner_only_when_live(live: bool) -> None:
    stream = Tty()
    reporter = StageReporter("lock", live=live, stream=stream)
    assert (reporter.status is not None) == live
    reporter.start("img-a")
    reporter.finish("img-a", "locked")
    reporter.end("1 locked")
    assert "img-a: locked" in stream.getvalue()


def test_a_fold_closes_the_open_one_before_opening_and_is_silent_off_github() -> None:
    lines: list[str] = []
    fold = Fold(lines.append, enabled=True)
    fold.open("a", "build a")
    fold.open("b", "build b")  # GitHub does not nest folds
    fold.close()
    fold.close()  # nothing open: nothing printed
    assert lines == ["::group::build a", "::endgroup::", "::group::build b", "::endgroup::"]
    quiet: list[str] = []
    off = Fold(quiet.append, enabled=False)
    off.open("a", "build a")
    off.close()
    assert quiet == [] and off.key is None

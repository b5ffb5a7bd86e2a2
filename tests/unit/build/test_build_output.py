"""Run directories and progress output (plain, GitHub Actions, live)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from torchstack.build.builder import BuildSummary, ImageResult, Step
from torchstack.progress import (
    LiveReporter,
    PlainReporter,
    human_duration,
    human_size,
    make_reporter,
)
from torchstack.workspace.runs import create_run

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_runs_get_unique_folders_and_latest_follows(tmp_path: Path) -> None:
    first, second = create_run(tmp_path, NOW), create_run(tmp_path, NOW)
    assert first.name == "20260102T030405Z" and second.name == "20260102T030405Z-1"
    assert first.path.parent == tmp_path / ".torchstack" / "runs"
    assert (tmp_path / ".torchstack" / "runs" / "latest").resolve() == second.path.resolve()
    second.write_json("build.json", {"run": "second"})
    assert second.read_json("build.json") == {"run": "second"}
    assert not list(second.path.glob(".*partial"))


def summary(tmp_path: Path) -> BuildSummary:
    built = ImageResult("img-base", None, True, status="built", image_id="sha256:" + "ab" * 32,
                        duration_s=75.0, size=7_498_385_793, log="img-base.build.log")
    failed = ImageResult("img-nlp", "img-base", True, status="failed", duration_s=3.0,
                         reason="The command returned 1", failed_step="step 9/16: RUN sh x",
                         log_tail=["pip: no such package"], log="img-nlp.build.log")
    skipped = ImageResult("img-nlp-child", "img-nlp", True, status="skipped",
                          reason="parent img-nlp failed")
    return BuildSummary(create_run(tmp_path, NOW), [built, failed, skipped], 1, 80.0)


def drive(reporter: PlainReporter, result: BuildSummary) -> None:
    base = result.results[0]
    reporter.begin(result.results)
    base.status, base.step = "building", None
    reporter.update(base)
    base.step = Step(1, 2, "FROM debian")
    reporter.update(base)
    reporter.line(base, "Step 1/2 : FROM debian")
    base.status = "built"
    reporter.update(base)
    reporter.end(result)


def test_plain_output_shows_states_steps_and_the_summary(tmp_path: Path) -> None:
    out = io.StringIO()
    drive(PlainReporter(out), summary(tmp_path))
    text = out.getvalue()
    assert "img-base: step 1/2: FROM debian" in text
    assert "::group::" not in text and "Step 1/2 : FROM debian" not in text  # logs: run dir
    assert "img-base: built (1m15s, abababababab, 7.5 GB)" in text
    for row in ("img-base       built    1m15s     7.5 GB  abababababab",
                "img-nlp-child  skipped  -         -       -             parent img-nlp failed"):
        assert row in text
    assert "FAILED img-nlp at step 9/16: RUN sh x" in text
    assert "  | pip: no such package" in text and "full log: " in text
    assert "3 images: 1 built, 1 failed, 1 skipped; 1 Docker builds in 1m20s" in text


def test_github_actions_folds_each_build_log(tmp_path: Path) -> None:
    out = io.StringIO()
    drive(PlainReporter(out, github=True), summary(tmp_path))
    lines = out.getvalue().splitlines()
    start, end = lines.index("::group::build img-base"), lines.index("::endgroup::")
    assert start < lines.index("Step 1/2 : FROM debian") < end
    assert lines.index("img-base: built (1m15s, abababababab, 7.5 GB)") > end


def test_live_view_ends_with_the_summary(tmp_path: Path) -> None:
    out = io.StringIO()
    drive(LiveReporter(out), summary(tmp_path))
    text = out.getvalue()
    assert "build summary" in text and "img-nlp-child" in text and "FAILED img-nlp" in text


def test_reporter_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert type(make_reporter(stream=Tty())) is LiveReporter
    assert type(make_reporter(stream=Tty(), live=False)) is PlainReporter
    assert type(make_reporter(stream=io.StringIO())) is PlainReporter
    github = make_reporter(stream=Tty(), github=True)
    assert type(github) is PlainReporter and github.github


def test_human_units() -> None:
    assert [human_size(n) for n in (None, 999, 1500, 7_498_385_793)] == [
        "-", "999 B", "1.5 kB", "7.5 GB"]
    assert [human_duration(s) for s in (0.04, 59.9, 61, 3725)] == [
        "0.0s", "59.9s", "1m01s", "62m05s"]

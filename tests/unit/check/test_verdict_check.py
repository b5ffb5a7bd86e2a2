"""The check stage's verdict: what a container run, a stored record and an imported report make of
an image (issue 22, item 9, behaviours 1 to 5 and 15).

Each test drives the stage as `torchstack check` does (resolve, then check_images) against a
stand-in Engine (`Host`: images from dicts, one scripted container run), or the CLI for `record
import`, and names in its docstring the one-line bug it catches. The expected verdicts are
written out here, never computed by the code under test.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from tests.paths import REPO
from tests.unit.reportutil import synthetic
from torchstack.backend.docker import ContainerRun, DockerBackend
from torchstack.backend.identity import ImageInspect
from torchstack.check.stage import CheckRun, check_images
from torchstack.checks import SUITE_VERSION
from torchstack.checks.frame import frame
from torchstack.checks.result import CheckResult, Node, Report, Status, parse_report
from torchstack.cli import main
from torchstack.cluster.report_import import verify
from torchstack.config.matrix import load_matrix
from torchstack.config.model import Matrix
from torchstack.errors import ConfigError
from torchstack.names import HASH_LABEL
from torchstack.resolve.order import input_hash
from torchstack.resolve.outcome import GpuMode, ImageCheck
from torchstack.resolve.records import CheckRecord, RecordStore
from torchstack.resolve.state import Resolution, Resolved, resolve
from torchstack.workspace.json_types import JSONObject
from torchstack.workspace.runs import RunDir

BASE = "torch2.9.1-cu128-py3.11-base"
OS_ID = "sha256:" + "0" * 64
BUILT = "sha256:" + "b" * 64  # the local image torchstack built for BASE
REPOSITORY = "127.0.0.1:5000/torchstack"
FACTS: JSONObject = {"torch": "2.9.1+cu128", "cuda": "12.8", "cudnn": 91002, "nccl": "2.27.5",
         "python": "3.11.9", "torchvision": None, "torchaudio": None, "torchcodec": None}


@dataclass
class Host:
    """What resolve and the check stage ask the Engine: images from dicts, a scripted container
    run for every check, and whether this host can give a container GPUs."""

    labels: dict[str, str]  # image ID -> input hash
    refs: dict[str, str]  # ref -> image ID
    answer: ContainerRun
    has_gpus: bool = False
    runs: list[dict[str, Any]] = field(default_factory=list)  # what each container was given

    def image_id(self, ref: str) -> str | None:
        return ref if ref in self.labels else self.refs.get(ref)

    def inspect(self, ref: str) -> ImageInspect | None:
        image = self.image_id(ref)
        return {"Id": image, "RootFS": {"Layers": [image]}} if image else None

    def images_with_label(self, key: str, value: str) -> list[tuple[str, list[str]]]:
        if key != HASH_LABEL:
            return []
        return [(image, [r for r, target in self.refs.items() if target == image])
                for image, label in self.labels.items() if label == value]

    def can_give_gpus(self) -> bool:
        return self.has_gpus

    def run_container(self, image: str, command: list[str], *, mounts: dict[str, str],
                      env: dict[str, str], shm_size: str, gpus: bool,
                      timeout_s: float) -> ContainerRun:
        self.runs.append({"image": image, "command": command, "gpus": gpus})
        return self.answer


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix(REPO / "matrix.yaml")


def suite_output(*statuses: Status, gpu_mode: str = "auto", gpu_present: bool = False) -> str:
    """The suite's JSON document with one check per status (ids as the real suite's)."""
    ids = ("versions", "shm", "cuda", "matmul", "driver")
    results = [CheckResult(check_id, status, f"{check_id} said {status}", {}, 0.1)
               for check_id, status in zip(ids, statuses, strict=False)]
    report = Report(SUITE_VERSION, BASE, gpu_mode, gpu_present, FACTS, results,
                    node=Node(hostname="runner"))
    return report.to_json()


def built_host(matrix: Matrix, answer: ContainerRun, has_gpus: bool = False) -> Host:
    """BASE built by torchstack (its input hash label, its local tag) on the OS base image."""
    wanted = input_hash(Resolution(matrix).context_hash(matrix.by_id()[BASE]), OS_ID)
    return Host(labels={BUILT: wanted},
                refs={"debian:bookworm-slim": OS_ID, matrix.local_tag(BASE): BUILT},
                answer=answer, has_gpus=has_gpus)


def resolved_base(matrix: Matrix, host: Host, store: RecordStore) -> Resolved:
    resolved = resolve(matrix, [BASE], backend=host, store=store, repository=REPOSITORY)
    assert resolved.states[0].local_image_id == BUILT  # the stand-in is set up right
    return resolved


def check_base(matrix: Matrix, tmp_path: Path, answer: ContainerRun, *,
               gpu_mode: GpuMode = "auto", has_gpus: bool = False,
               earlier: tuple[CheckRecord, ...] = ()) -> tuple[CheckRun, Host, RecordStore]:
    """`torchstack check BASE --gpu <mode>` against the stand-in; the records in tmp_path."""
    store = RecordStore(tmp_path / "records")
    for record in earlier:
        store.add(record)
    host = built_host(matrix, answer, has_gpus)
    run = RunDir(tmp_path / "runs" / "run-1")
    run.path.mkdir(parents=True)
    outcome = check_images(resolved_base(matrix, host, store), cast(DockerBackend, host),
                           gpu_mode, run, store=store)
    return outcome, host, store


def only(outcome: CheckRun) -> ImageCheck:
    (result,) = outcome.results
    return result


@pytest.fixture(autouse=True)
def _no_step_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


# --- 1. exit 0 with an `error` check ---------------------------------------------------------

def test_an_error_check_fails_the_image_even_when_the_container_exits_0(
        matrix: Matrix, tmp_path: Path) -> None:
    """Bug caught: interpret() counting only "fail" as failed (`c.status == "fail"`), so a
    check that crashed (status error) in a container that still exited 0 passes the image."""
    answer = ContainerRun(0, suite_output("pass", "error", "skip"), "", False)
    outcome, _, store = check_base(matrix, tmp_path, answer)
    result = only(outcome)
    assert result.status == "fail" and not result.ok
    assert "shm: shm said error" in result.message
    assert [r.passed for r in store.all_for(BUILT)] == [False]
    error = outcome.error(tmp_path)
    assert error is not None and error.exit_code == 5


# --- 2. an all-pass report, then a non-zero exit ---------------------------------------------

@pytest.mark.parametrize("code", [137, 139, 1])  # OOM kill (SIGKILL), segfault at exit, plain
def test_a_non_zero_exit_after_an_all_pass_report_fails_the_image(
        matrix: Matrix, tmp_path: Path, code: int) -> None:
    """Bug caught: interpret() trusting the document alone (dropping `or run.exit_code != 0`),
    so a suite killed after printing an all-pass report passes the image."""
    answer = ContainerRun(code, suite_output("pass", "pass", "skip"), "Killed\n", False)
    outcome, _, store = check_base(matrix, tmp_path, answer)
    result = only(outcome)
    assert result.status == "fail" and not result.ok
    assert f"exited {code}" in result.message
    assert [r.passed for r in store.all_for(BUILT)] == [False]


# --- 3. --gpu auto on a host without a GPU ---------------------------------------------------

def test_gpu_auto_without_a_gpu_never_writes_a_gpu_level_record(matrix: Matrix,
                                                               tmp_path: Path) -> None:
    """Bug caught: level_of() giving "gpu" to any mode but off (`gpu_mode != "off"`), so an auto
    run whose GPU checks all skipped stands for the gpu level and releases under require: gpu."""
    answer = ContainerRun(0, suite_output("pass", "pass", "skip", "pass", "skip"), "", False)
    outcome, host, store = check_base(matrix, tmp_path, answer, gpu_mode="auto", has_gpus=False)
    result = only(outcome)
    assert result.status == "pass" and result.level == "cpu"
    assert [run["gpus"] for run in host.runs] == [False]  # no GPU asked of a host without one
    records = store.all_for(BUILT)
    assert [(r.level, r.passed) for r in records] == [("cpu", True)]
    # What promote sees next: no gpu-level verdict, so no release tag under `require: gpu`.
    state = resolved_base(matrix, host, store).states[0]
    assert state.records.gpu is None and state.records.cpu is not None
    assert matrix.promotion_level == "gpu"
    assert state.decision.releases == () and "a release needs gpu" in state.decision.reason


# --- 4. the newest record failed --------------------------------------------------------------

def record(passed: bool, checked_at: float, matrix: Matrix) -> CheckRecord:
    wanted = input_hash(Resolution(matrix).context_hash(matrix.by_id()[BASE]), OS_ID)
    return CheckRecord(image_id=BASE, docker_id=BUILT, input_hash=wanted,
                       suite_version=SUITE_VERSION, level="cpu", passed=passed, facts=FACTS,
                       summary={}, report="run-0/report.json", checked_at=checked_at)


def test_an_image_whose_newest_record_failed_is_checked_again(matrix: Matrix,
                                                              tmp_path: Path) -> None:
    """Bugs caught: check_images() taking any record as a reason to skip (`record is not None`
    instead of `record.satisfies(level)`), or RecordStore.verdict() picking the oldest (`min`)
    record, or the newest pass: either reports a failed image as "cached"."""
    answer = ContainerRun(0, suite_output("pass", "pass"), "", False)
    earlier = (record(True, 1_000.0, matrix), record(False, 2_000.0, matrix))
    outcome, host, store = check_base(matrix, tmp_path, answer, earlier=earlier)
    result = only(outcome)
    assert result.status == "pass"  # what the container said now, not "cached"
    assert len(host.runs) == 1
    assert [r.passed for r in store.all_for(BUILT)] == [True, False, True]


def test_an_image_whose_newest_record_passed_is_cached(matrix: Matrix, tmp_path: Path) -> None:
    """The control of the test above: the same set-up with the order swapped is not run."""
    answer = ContainerRun(0, suite_output("pass", "pass"), "", False)
    earlier = (record(False, 1_000.0, matrix), record(True, 2_000.0, matrix))
    outcome, host, _ = check_base(matrix, tmp_path, answer, earlier=earlier)
    assert only(outcome).status == "cached" and host.runs == []


# --- 5. a timed-out suite, or no report ------------------------------------------------------

NO_VERDICT = {
    # The report came out, then the container hung on exit and was stopped (exit left 0).
    "timed out after an all-pass report": ContainerRun(0, suite_output("pass", "pass"),
                                                       "", True),
    "timed out, killed": ContainerRun(137, "", "[checks 1] matmul ...\n", True),
    "no report at all": ContainerRun(0, "", "Segmentation fault\n", False),
    "progress text, no JSON": ContainerRun(0, "[checks 1] all good\n", "", False),
    "half a report": ContainerRun(0, suite_output("pass", "pass")[:60], "", False),
}


@pytest.mark.parametrize("answer", NO_VERDICT.values(), ids=NO_VERDICT.keys())
def test_a_timed_out_or_silent_suite_is_recorded_as_failed(
        matrix: Matrix, tmp_path: Path, answer: ContainerRun) -> None:
    """Bugs caught: the record written with `passed=result.status != "fail"` (an "error" run
    stored as a pass), ImageCheck.ok counting "error", or interpret() losing its timed_out
    branch (a stopped suite whose report was complete would pass)."""
    outcome, _, store = check_base(matrix, tmp_path, answer)
    result = only(outcome)
    assert result.status == "error" and not result.ok
    assert [(r.level, r.passed) for r in store.all_for(BUILT)] == [("cpu", False)]
    report = json.loads((outcome.run.path / "report.json").read_text(encoding="utf-8"))
    assert report["ok"] is False


# --- 15. a report from a newer suite ---------------------------------------------------------

NEWER = "99.0.0"
DIGEST = "sha256:" + "d" * 64


def newer_report() -> dict[str, Any]:
    """A passing --gpu required report, in every way acceptable but its suite version."""
    document = synthetic(BASE, DIGEST)
    document["suite_version"] = NEWER
    return document


def test_verify_refuses_a_report_of_a_newer_suite() -> None:
    """Bug caught: verify() refusing only older suites (`theirs < ours` instead of `!=`), so a
    report of checks this torchstack does not know is taken for a verdict."""
    document = newer_report()
    verify(parse_report({**document, "suite_version": SUITE_VERSION}), SUITE_VERSION, "r.txt")
    with pytest.raises(ConfigError, match=rf"from another check suite \({NEWER};") as caught:
        verify(parse_report(document), SUITE_VERSION, "r.txt")
    assert caught.value.exit_code == 2


def test_record_import_of_a_newer_suite_exits_2_and_records_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same bug through the CLI: exit 2 and no success line, nothing under .torchstack."""
    shutil.copy2(REPO / "matrix.yaml", tmp_path / "matrix.yaml")
    shutil.copytree(REPO / "layers", tmp_path / "layers")
    report = tmp_path / "report.txt"
    report.write_text("[checks 7] progress\n" + frame(newer_report()) + "\n", encoding="utf-8")
    assert main(["--matrix", str(tmp_path / "matrix.yaml"), "record", "import",
                 str(report)]) == 2
    out, err = capsys.readouterr()
    assert "recorded" not in out
    assert f"from another check suite ({NEWER}; this torchstack's is {SUITE_VERSION})" in err
    assert "nothing was recorded" in err
    assert not (tmp_path / ".torchstack").exists()

"""`torchstack record import`: refusals on real reports of `python -m checks` run on this host,
tampered with; the accepted GPU path on a synthetic report (no GPU host here); and the record
going through the promote decision (tags.decide) like one from `check --gpu required`.

The refusals that need no registry run through the CLI; proving a digest against the push
registry and a local build is in tests/integration/test_record_import.py.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.integration.promoteutil import free_port
from tests.paths import REPO
from tests.unit.reportutil import finish, reframed, start_multinode, start_suite, synthetic
from torchstack.checks import SUITE_VERSION
from torchstack.checks.frame import frame
from torchstack.cli import main
from torchstack.cluster.candidates import Candidate, digest_of_image_id
from torchstack.cluster.report_import import (
    Source,
    prove,
    read_report,
    record_for,
    run_time,
    verify,
)
from torchstack.config.expected import expect_for
from torchstack.config.matrix import load_matrix
from torchstack.config.model import Matrix
from torchstack.errors import ConfigError
from torchstack.release.journal import PublishedVariant
from torchstack.resolve.records import CheckRecord, RecordStore
from torchstack.resolve.tags import decide

IMAGE = "torch2.9.1-cu128-py3.11-base"
DIGEST = "sha256:" + "d" * 64  # the registry manifest digest the Job was pinned to
OTHER = "sha256:" + "e" * 64
DOCKER_ID = "sha256:" + "c" * 64  # the config digest (local image ID) the registry maps it to
INPUT_HASH = "ab12cd34ef56" + "0" * 52
REPOSITORY = "127.0.0.1:5000/torchstack"
CANDIDATE = Candidate(IMAGE, DOCKER_ID, INPUT_HASH, f"{REPOSITORY}:{IMAGE}-ab12cd34ef56", DIGEST)
FILE = Source("report.txt", {"kind": "file", "path": "/tmp/report.txt"})
# Written out from matrix.yaml's tags.release, not computed by the code under test.
RELEASE = f"{REPOSITORY}:2.9.1-cuda12.8-cudnn9-py3.11-base"


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix(REPO / "matrix.yaml")


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory, matrix: Matrix) -> dict[str, str]:
    """Pod-log-like output of the real suite: `--gpu required` (fails: no GPU), `--gpu auto`,
    and checks.multinode (2 gloo ranks), run side by side."""
    folder = tmp_path_factory.mktemp("expect")
    expect = folder / "expect.json"
    spec = matrix.by_id()[IMAGE]
    expect.write_text(json.dumps({**expect_for(spec, matrix), "image_digest": DIGEST}))
    # The image's thresholds size NCCL messages for GPUs (>= 1 GiB): far too slow for the gloo
    # stand-in on two CPU cores, so the multi-node run gets only the ids.
    small = folder / "multinode-expect.json"
    small.write_text(json.dumps({"image_id": IMAGE, "image_digest": DIGEST}))
    running = {"required": start_suite(expect, "required"), "auto": start_suite(expect, "auto"),
               "multinode": start_multinode(small, free_port())}
    return {name: finish(process) for name, process in running.items()}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A copy of the repository's matrix, so records land in tmp_path."""
    shutil.copy2(REPO / "matrix.yaml", tmp_path / "matrix.yaml")
    shutil.copytree(REPO / "layers", tmp_path / "layers")
    return tmp_path


def test_the_real_log_mixes_progress_with_one_framed_report(logs: dict[str, str]) -> None:
    text = logs["required"]
    assert "[checks " in text  # the suite's stderr progress, interleaved as in a pod log
    imported = read_report(text, "log")
    report = imported.report
    assert (report.image_id, report.image_digest, report.gpu_mode) == (IMAGE, DIGEST, "required")
    assert report.suite_version == SUITE_VERSION
    # No GPU here: the GPU checks fail, which is what makes this a genuine failed report.
    assert {"cuda", "driver"} <= {r.id for r in report.results if r.status == "fail"}
    assert imported.scope == "suite" and imported.failures


def cut_inside_the_json(text: str) -> str:
    begin = text.index("==== TORCHSTACK-REPORT BEGIN")
    return text[: begin + (len(text) - begin) // 2]


def cut_before_the_end_line(text: str) -> str:
    return text[: text.index("==== TORCHSTACK-REPORT END")]


def fail_turned_into_pass(text: str) -> str:
    """Same length, so only the checksum can tell."""
    tampered = text.replace('"status":"fail"', '"status":"pass"', 1)
    assert tampered != text
    return tampered


def progress_only(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if line.startswith("[checks "))


def unframed(text: str) -> str:
    """What `--json` without `--frame` prints: a plain document, no checksum."""
    from torchstack.checks.frame import unframe
    return json.dumps(unframe(text), indent=2)


TAMPERED: dict[str, tuple[Callable[[str], str], str]] = {
    "truncated in the JSON": (cut_inside_the_json, "truncated"),
    "END line missing": (cut_before_the_end_line, "truncated"),
    "bad checksum": (fail_turned_into_pass, "checksum mismatch"),
    "no report, only progress": (progress_only, "no TORCHSTACK-REPORT BEGIN"),
    "plain --json": (unframed, "no TORCHSTACK-REPORT BEGIN"),
    "older suite version": (lambda t: reframed(t, suite_version="0.9.0"),
                            "from an older check suite (0.9.0"),
    "no digest": (lambda t: reframed(t, image_digest=None), "names no image digest"),
    "image not in the matrix": (lambda t: reframed(t, image_id="torch1.0-cu00-py2.7-base"),
                                "'torch1.0-cu00-py2.7-base', which the current matrix"),
    "not a suite report": (lambda t: frame({"checks": "all good"}), "not a report of"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_refused_with_exit_2_and_nothing_recorded(case: str, logs: dict[str, str], root: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    tamper, expected = TAMPERED[case]
    report = root / "report.txt"
    report.write_text(tamper(logs["required"]), encoding="utf-8")
    assert main(["--matrix", str(root / "matrix.yaml"), "record", "import", str(report)]) == 2
    err = capsys.readouterr().err
    assert expected in err and f"error: {report}" in err
    assert "tip:" in err and "nothing was recorded" in err
    assert not (root / ".torchstack").exists()


def test_gpu_auto_is_refused(logs: dict[str, str], root: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    report = root / "auto.txt"
    report.write_text(logs["auto"], encoding="utf-8")
    assert main(["--matrix", str(root / "matrix.yaml"), "record", "import", str(report)]) == 2
    assert "--gpu auto" in capsys.readouterr().err
    assert not (root / ".torchstack").exists()


@pytest.mark.parametrize("argv", [[], ["r.txt", "--from-job", "j"], ["r.txt", "--context", "c"]])
def test_report_or_job_not_both(argv: list[str], root: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--matrix", str(root / "matrix.yaml"), "record", "import", *argv]) == 2
    assert "tip:" in capsys.readouterr().err


def test_missing_file_and_bad_namespace(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--matrix", str(root / "matrix.yaml"), "record", "import",
                 str(root / "nope.txt")]) == 2
    assert "cannot read the report" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--matrix", str(root / "matrix.yaml"), "record", "import", "--from-job", "j",
              "--namespace", "Bad NS!"])
    assert exit_info.value.code == 2 and "--namespace" in capsys.readouterr().err


def framed_synthetic(**changes: Any) -> str:
    return "some kubelet noise\n" + frame(synthetic(IMAGE, DIGEST, **changes)) + "\n"


def test_another_digest_is_refused() -> None:
    imported = read_report(frame(synthetic(IMAGE, OTHER)), "r")
    with pytest.raises(ConfigError) as error:
        prove(imported.report, CANDIDATE, FILE)
    assert OTHER in error.value.message and DIGEST in error.value.message


@pytest.mark.parametrize("image_id", [f"docker-pullable://{REPOSITORY}@{DIGEST}",
                                      f"{REPOSITORY}@{DIGEST}", f"docker://{DOCKER_ID}"])
def test_the_pods_image_id_forms_that_prove_the_digest(image_id: str) -> None:
    imported = read_report(framed_synthetic(), "r")
    prove(imported.report, CANDIDATE, Source("job", {}, (("pod-0", image_id),)))


@pytest.mark.parametrize("image_id", [f"docker-pullable://{REPOSITORY}@{OTHER}",
                                      f"{REPOSITORY}:latest", ""])
def test_a_pod_that_ran_another_image_is_refused(image_id: str) -> None:
    imported = read_report(framed_synthetic(), "r")
    with pytest.raises(ConfigError) as error:
        prove(imported.report, CANDIDATE, Source("job", {}, (("pod-0", image_id),)))
    assert "pod pod-0 ran image" in error.value.message


def test_a_report_of_any_published_variant_is_accepted() -> None:
    """A Job pinned to the zstd variant (k8s --compression zstd) proves the same image."""
    zstd = "sha256:" + "f" * 64
    both = replace(CANDIDATE, variants=(
        PublishedVariant("gzip", CANDIDATE.ref, DIGEST),
        PublishedVariant("zstd", CANDIDATE.ref + "-zstd", zstd)))
    imported = read_report(frame(synthetic(IMAGE, zstd)), "r")
    prove(imported.report, both, Source("job", {}, (("pod-0", f"{REPOSITORY}@{zstd}"),)))
    with pytest.raises(ConfigError) as error:  # without the variant, the digest is unknown
        prove(imported.report, CANDIDATE, FILE)
    assert zstd in error.value.message
    # A pod that ran a digest of neither variant is still refused.
    with pytest.raises(ConfigError, match="pod pod-0 ran image"):
        prove(imported.report, both, Source("job", {}, (("pod-0", f"{REPOSITORY}@{OTHER}"),)))


def test_digest_of_image_id() -> None:
    assert digest_of_image_id(f"docker-pullable://r/x@{DIGEST}") == DIGEST
    assert digest_of_image_id(DIGEST) == DIGEST
    assert digest_of_image_id("docker-pullable://r/x@sha256:abc") is None


def gpu_record_like_check(passed: bool, checked_at: float) -> Any:
    """What `torchstack check --gpu required` stores (commands/check.py's fields)."""
    doc = synthetic(IMAGE, DIGEST)
    record = CheckRecord(image_id=IMAGE, docker_id=DOCKER_ID, input_hash=INPUT_HASH,
                        suite_version=SUITE_VERSION, level="gpu", passed=passed,
                        facts=doc["facts"], summary=doc["summary"], report="r/report.json")
    return record.__class__(**{**record.__dict__, "checked_at": checked_at})


def promote_decision(store: RecordStore, matrix: Matrix) -> Any:
    """commands/promote.py's lookup, then the decision it acts on."""
    verdict = (store.verdict(DOCKER_ID, INPUT_HASH, SUITE_VERSION, matrix.promotion_level)
               or store.verdict(DOCKER_ID, INPUT_HASH, SUITE_VERSION, "cpu"))
    return decide(matrix.by_id()[IMAGE], matrix, REPOSITORY, INPUT_HASH, verdict,
                  matrix.promotion_level)


def test_an_imported_pass_releases_like_check_gpu_required(matrix: Matrix,
                                                           tmp_path: Path) -> None:
    assert matrix.promotion_level == "gpu"
    imported = read_report(framed_synthetic(), "r")
    verify(imported.report, SUITE_VERSION, "r")
    store = RecordStore(tmp_path / "imported")
    store.add(record_for(imported, CANDIDATE, FILE, "run/report.json"))
    decision = promote_decision(store, matrix)
    assert decision.releases and decision.releases[0] == RELEASE
    assert not decision.refused
    checked = RecordStore(tmp_path / "checked")
    checked.add(gpu_record_like_check(True, 1.0))
    assert promote_decision(checked, matrix) == decision
    (record,) = store.all_for(DOCKER_ID)  # what the record keeps about the cluster run
    assert record.node == {"gpu_model": "NVIDIA H100 80GB HBM3", "driver": "570.133.20",
                           "device_count": 1, "hostname": "synthetic-gpu-node"}
    assert record.source == {"kind": "file", "path": "/tmp/report.txt", "image_digest": DIGEST}
    assert record.figures["matmul"] == {"bf16_tflops": {"value": 600.0, "unit": "TFLOP/s"}}


def test_an_older_cluster_pass_imported_late_does_not_outvote_a_newer_failure(
        matrix: Matrix, tmp_path: Path) -> None:
    """Bug caught: an import dated at import time: a 10:00 cluster pass imported at 12:00
    became newer than an 11:00 failure on a runner, and released the image."""
    store = RecordStore(tmp_path)
    store.add(gpu_record_like_check(False, 11.0 * 3600))  # the runner's failure, at 11:00
    imported = read_report(framed_synthetic(finished_at=10.0 * 3600), "r")  # ran at 10:00
    record = record_for(imported, CANDIDATE, FILE, "run/report.json")
    assert record.passed and record.checked_at == 10.0 * 3600
    store.add(record)
    decision = promote_decision(store, matrix)
    assert decision.refused and not decision.releases


@pytest.mark.parametrize("finished_at", [None, float("inf"), -5.0, 4e10])
def test_a_report_without_a_plausible_run_time_is_dated_at_import(
        finished_at: float | None) -> None:
    # A report from before the suite recorded it, or one dated in the future.
    assert run_time(finished_at, 1000.0) == 1000.0
    assert run_time(1000.0 + 300, 1000.0) == 1000.0 + 300  # verify's 5 minutes of skew


def test_a_genuine_failure_is_the_newest_verdict(logs: dict[str, str], matrix: Matrix,
                                                 tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    store.add(gpu_record_like_check(True, 1.0))  # an earlier pass of the same build
    assert promote_decision(store, matrix).releases
    imported = read_report(logs["required"], "log")
    verify(imported.report, SUITE_VERSION, "log")
    failed = record_for(imported, CANDIDATE, FILE, "run/report.json")
    assert failed.level == "gpu" and not failed.passed
    store.add(failed)
    decision = promote_decision(store, matrix)
    assert decision.refused and not decision.releases
    assert "checks failed at level gpu" in decision.reason


def test_multinode_figures_are_kept_but_never_stand_for_a_level(logs: dict[str, str],
                                                                matrix: Matrix,
                                                                tmp_path: Path) -> None:
    # checks.multinode prints the plain document (no --frame, no image_digest yet): frame it
    # with the digest its expect file carried, as `--frame` would.
    doc = json.loads(logs["multinode"])
    imported = read_report(frame({**doc, "image_id": IMAGE, "image_digest": DIGEST}), "mn")
    verify(imported.report, SUITE_VERSION, "mn")
    assert imported.scope == "multinode" and not imported.failures
    store = RecordStore(tmp_path)
    store.add(record_for(imported, CANDIDATE, FILE, "run/report.json"))
    (record,) = store.all_for(DOCKER_ID)
    assert record.scope == "multinode" and record.passed
    figures = record.figures["nccl_multinode"]
    assert isinstance(figures, dict) and figures["world_size"] == {"value": 2, "unit": "ranks"}
    assert "not checked" in promote_decision(store, matrix).reason  # alone it is nothing
    store.add(CheckRecord(image_id=IMAGE, docker_id=DOCKER_ID, input_hash=INPUT_HASH,
                         suite_version=SUITE_VERSION, level="cpu", passed=True,
                         facts=synthetic(IMAGE, DIGEST)["facts"], summary={}, report="r"))
    decision = promote_decision(store, matrix)
    assert not decision.releases and decision.candidate and "candidate only" in decision.reason


def test_records_written_before_the_new_fields_still_read(tmp_path: Path) -> None:
    old = {"image_id": IMAGE, "docker_id": DOCKER_ID, "input_hash": INPUT_HASH,
           "suite_version": SUITE_VERSION, "level": "gpu", "passed": True, "facts": {},
           "summary": {}, "report": "r", "checked_at": 1.0}
    (tmp_path / (DOCKER_ID.removeprefix("sha256:") + ".json")).write_text(json.dumps([old]))
    (record,) = RecordStore(tmp_path).all_for(DOCKER_ID)
    assert record.scope == "suite" and record.satisfies("gpu")


def test_an_imported_record_keeps_the_arch_contract(tmp_path: Path) -> None:
    from torchstack.config.contract import contract_for

    imported = read_report(framed_synthetic(), "r")
    contract = contract_for("2.9.1", "12.8").to_json()
    store = RecordStore(tmp_path)
    store.add(record_for(imported, CANDIDATE, FILE, "run/report.json", contract))
    (record,) = store.all_for(DOCKER_ID)  # read back from disk
    assert record.contract["driver_min"] == "570.26"
    assert record.contract["arch_flags"] == ["sm_70", "sm_75", "sm_80", "sm_86", "sm_90",
                                             "sm_100", "sm_120"]

"""Release tags come from facts read inside the image, and only for what passed the policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.paths import REPO
from torchstack.config.matrix import load_matrix
from torchstack.config.model import ImageSpec, Matrix
from torchstack.resolve.records import CheckRecord, RecordStore
from torchstack.resolve.tags import decide, fact_mismatches
from torchstack.workspace.json_types import JSONObject

REPOSITORY = "127.0.0.1:5000/torchstack"
HASH = "ab" * 32
BASE = "torch2.9.1-cu128-py3.11-base"
FACTS: JSONObject = {"torch": "2.9.1+cu128", "cuda": "12.8", "cudnn": 91002, "nccl": "2.27.5",
         "python": "3.11.2", "torchvision": None, "torchaudio": None}


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix(REPO / "matrix.yaml")


def spec(matrix: Matrix, image_id: str = BASE) -> ImageSpec:
    return matrix.by_id()[image_id]


def record(level: Any = "gpu", passed: bool = True, **facts: Any) -> CheckRecord:
    return CheckRecord(image_id=BASE, docker_id="sha256:" + "1" * 64, input_hash=HASH,
                      suite_version="1.0.0", level=level, passed=passed,
                      facts={**FACTS, **facts}, summary={}, report="r/report.json")


def test_gpu_pass_gives_release_tag_and_aliases_from_facts(matrix: Matrix) -> None:
    decision = decide(spec(matrix), matrix, REPOSITORY, HASH, record(), "gpu")
    assert decision.candidate == f"{REPOSITORY}:{BASE}-{HASH[:12]}"
    assert decision.releases == (
        f"{REPOSITORY}:2.9.1-cuda12.8-cudnn9-py3.11-base",
        f"{REPOSITORY}:2.9-cuda12.8-base",
        f"{REPOSITORY}:v2.9",
        f"{REPOSITORY}:latest",
    )


def test_non_default_image_gets_no_latest(matrix: Matrix) -> None:
    image = spec(matrix, "torch2.9.1-cu126-py3.11-base")
    facts = {"torch": "2.9.1+cu126", "cuda": "12.6"}
    decision = decide(image, matrix, REPOSITORY, HASH, record("gpu", True, **facts), "gpu")
    assert f"{REPOSITORY}:latest" not in decision.releases
    assert decision.releases[0] == f"{REPOSITORY}:2.9.1-cuda12.6-cudnn9-py3.11-base"


@pytest.mark.parametrize("level", ["cpu"])
def test_cpu_pass_under_gpu_policy_is_candidate_only(matrix: Matrix, level: Any) -> None:
    decision = decide(spec(matrix), matrix, REPOSITORY, HASH, record(level=level), "gpu")
    assert decision.candidate is not None
    assert decision.releases == ()
    assert "a release needs gpu" in decision.reason


def test_cpu_policy_releases_on_cpu_pass(matrix: Matrix) -> None:
    decision = decide(spec(matrix), matrix, REPOSITORY, HASH, record(level="cpu"), "cpu")
    assert decision.releases


def test_failed_or_unchecked_or_unbuilt_moves_nothing(matrix: Matrix) -> None:
    failed = decide(spec(matrix), matrix, REPOSITORY, HASH, record(passed=False), "cpu")
    unchecked = decide(spec(matrix), matrix, REPOSITORY, HASH, None, "cpu")
    unbuilt = decide(spec(matrix), matrix, REPOSITORY, None, None, "cpu")
    for decision in (failed, unchecked, unbuilt):
        assert decision.releases == ()
        assert decision.candidate is None
    assert "checks failed" in failed.reason
    assert "not checked" in unchecked.reason
    assert "not built" in unbuilt.reason


@pytest.mark.parametrize(("key", "value"), [
    ("torch", "2.9.0+cu128"), ("cuda", "12.6"), ("cudnn", 90100), ("nccl", "2.21.5"),
    ("python", "3.12.1"),
])
def test_facts_that_disagree_block_the_release(matrix: Matrix, key: str, value: Any) -> None:
    decision = decide(spec(matrix), matrix, REPOSITORY, HASH, record(**{key: value}), "gpu")
    assert decision.releases == ()
    assert f"{key} is" in decision.reason
    assert fact_mismatches(spec(matrix), {**FACTS, key: value})


def test_vision_pairs_ignore_local_label(matrix: Matrix) -> None:
    vision = spec(matrix, "torch2.9.1-cu128-py3.11-vision")
    assert fact_mismatches(vision, {**FACTS, "torchvision": "0.24.1+cu128"}) == []
    assert fact_mismatches(vision, {**FACTS, "torchvision": "0.24.0"})


def test_the_newest_record_at_a_level_decides(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    image = "sha256:" + "1" * 64
    store.add(record(level="gpu"))
    store.add(record(level="cpu"))  # a later CPU-only run does not hide the GPU pass
    gpu = store.verdict(image, HASH, "1.0.0", "gpu")
    assert gpu is not None and gpu.level == "gpu" and gpu.passed
    assert gpu.satisfies("cpu") and gpu.satisfies("gpu")
    cpu = store.verdict(image, HASH, "1.0.0", "cpu")
    assert cpu is not None and cpu.level == "cpu"
    store.add(record(level="gpu", passed=False))  # failed since: the old pass no longer counts
    failed = store.verdict(image, HASH, "1.0.0", "gpu")
    assert failed is not None and not failed.passed
    assert store.verdict(image, "other", "1.0.0", "cpu") is None
    assert store.verdict(image, HASH, "2.0.0", "cpu") is None


def test_unreadable_record_counts_as_none(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    (tmp_path / ("1" * 64 + ".json")).write_text("{not json")
    assert store.verdict("sha256:" + "1" * 64, HASH, "1.0.0", "cpu") is None


def test_only_unpromotable_images_are_refused(matrix: Matrix) -> None:
    waiting = decide(spec(matrix), matrix, REPOSITORY, HASH, record(level="cpu"), "gpu")
    assert not waiting.refused
    for refused in (decide(spec(matrix), matrix, REPOSITORY, None, None, "gpu"),
                    decide(spec(matrix), matrix, REPOSITORY, HASH, None, "gpu"),
                    decide(spec(matrix), matrix, REPOSITORY, HASH, record(passed=False), "gpu"),
                    decide(spec(matrix), matrix, REPOSITORY, HASH, record(cuda="12.6"), "gpu")):
        assert refused.refused, refused.reason

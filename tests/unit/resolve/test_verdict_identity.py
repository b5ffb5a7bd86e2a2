"""Which image an image id resolves to, and which facts may carry a release tag (issue 22,
item 9: behaviours 8 and 9).

Resolving runs against a stand-in Engine (`Engine`: labels, tags and layer lists from dicts).
Each test's docstring names the one-line bug it catches; expected values are written out here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.paths import REPO
from torchstack.backend.identity import ImageInspect
from torchstack.checks import SUITE_VERSION
from torchstack.config.matrix import load_matrix
from torchstack.config.model import Matrix
from torchstack.names import CHAIN_LABEL, HASH_LABEL
from torchstack.resolve.order import input_hash
from torchstack.resolve.records import CheckRecord, RecordStore
from torchstack.resolve.staging import staging_tag
from torchstack.resolve.state import Resolution, resolve
from torchstack.resolve.tags import decide
from torchstack.workspace.json_types import JSONObject

BASE = "torch2.9.1-cu128-py3.11-base"
VISION = "torch2.9.1-cu128-py3.11-vision"
REPOSITORY = "127.0.0.1:5000/torchstack"
OS_ID = "sha256:" + "0" * 64
BASE_STAGED_ON = "sha256:" + "1" * 64  # the base the staged vision image was built on
BASE_REBUILT = "sha256:" + "2" * 64  # the base built since (same matrix, other layers)
VISION_STAGED = "sha256:" + "3" * 64
LAYERS = {
    OS_ID: ["sha256:os"],
    BASE_STAGED_ON: ["sha256:os", "sha256:torch-a"],
    BASE_REBUILT: ["sha256:os", "sha256:torch-b"],
    VISION_STAGED: ["sha256:os", "sha256:torch-a", "sha256:vision"],
}


@dataclass
class Engine:
    refs: dict[str, str]  # ref -> image ID
    labels: dict[str, dict[str, str]]  # image ID -> labels
    layers: dict[str, list[str]] = field(default_factory=lambda: dict(LAYERS))

    def image_id(self, ref: str) -> str | None:
        return ref if ref in self.labels or ref in self.layers else self.refs.get(ref)

    def inspect(self, ref: str) -> ImageInspect | None:
        image = self.image_id(ref)
        if image is None:
            return None
        return {"Id": image, "RootFS": {"Layers": self.layers.get(image, [])}}

    def images_with_label(self, key: str, value: str) -> list[tuple[str, list[str]]]:
        return [(image, [r for r, target in self.refs.items() if target == image])
                for image, labels in self.labels.items() if labels.get(key) == value]


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix(REPO / "matrix.yaml")


def engine_with(matrix: Matrix, base: str) -> Engine:
    """`base` built by torchstack for BASE; a vision image bake staged on BASE_STAGED_ON."""
    resolution = Resolution(matrix)
    specs = matrix.by_id()
    chain = resolution.chain_hash(specs[VISION])
    return Engine(
        refs={"debian:bookworm-slim": OS_ID, matrix.local_tag(BASE): base,
              f"{REPOSITORY}:{staging_tag(specs[VISION], chain)}": VISION_STAGED},
        labels={base: {HASH_LABEL: input_hash(resolution.context_hash(specs[BASE]), OS_ID)},
                VISION_STAGED: {CHAIN_LABEL: chain}})


def resolved_vision(matrix: Matrix, engine: Engine,
                    tmp_path: Path) -> tuple[str | None, str | None]:
    """(base's local image, vision's local image) as resolve finds them."""
    states = resolve(matrix, [VISION], backend=engine, store=RecordStore(tmp_path),
                     repository=REPOSITORY).by_id()
    return states[BASE].local_image_id, states[VISION].local_image_id


# --- 8. a staged image built on another parent ------------------------------------------------

def test_a_staged_image_on_its_parent_is_adopted(matrix: Matrix, tmp_path: Path) -> None:
    """The control for the tests below: the same staged image, on the base it was built on."""
    engine = engine_with(matrix, BASE_STAGED_ON)
    assert resolved_vision(matrix, engine, tmp_path) == (BASE_STAGED_ON, VISION_STAGED)


def test_a_staged_image_built_on_another_parent_is_never_adopted(matrix: Matrix,
                                                                 tmp_path: Path) -> None:
    """Bugs caught: adopt_staged() trusting the chain label and staging tag alone (dropping
    the layer comparison), or comparing only the first layer (`layers[0] == parent_layers[0]`,
    the OS layer every base shares): the vision image would be checked and released as a child
    of a base it does not contain."""
    engine = engine_with(matrix, BASE_REBUILT)
    assert resolved_vision(matrix, engine, tmp_path) == (BASE_REBUILT, None)


def test_a_staged_image_is_not_adopted_when_its_parents_layers_are_unknown(
        matrix: Matrix, tmp_path: Path) -> None:
    """Bug caught: `if not parent_layers or ...` for `if parent_layers and ...`: a parent
    whose layers cannot be read proves nothing, so nothing is adopted on top of it."""
    engine = engine_with(matrix, BASE_STAGED_ON)
    engine.layers[BASE_STAGED_ON] = []
    assert resolved_vision(matrix, engine, tmp_path) == (BASE_STAGED_ON, None)


# --- 9. the torch CUDA label alone blocks a release ------------------------------------------

FACTS: JSONObject = {"torch": "2.9.1+cu128", "cuda": "12.8", "cudnn": 91002, "nccl": "2.27.5",
         "python": "3.11.9", "torchvision": None, "torchaudio": None, "torchcodec": None}


def gpu_pass(**facts: Any) -> CheckRecord:
    return CheckRecord(image_id=BASE, docker_id="sha256:" + "b" * 64, input_hash="ab" * 32,
                       suite_version=SUITE_VERSION, level="gpu", passed=True,
                       facts={**FACTS, **facts}, summary={}, report="r/report.json",
                       checked_at=1.0)


def test_a_passing_cu128_image_gets_its_release_tags(matrix: Matrix) -> None:
    """The control for the test below: the same record with torch's own label."""
    decision = decide(matrix.by_id()[BASE], matrix, REPOSITORY, "ab" * 32, gpu_pass(), "gpu")
    assert decision.releases[0] == f"{REPOSITORY}:2.9.1-cuda12.8-cudnn9-py3.11-base"


@pytest.mark.parametrize("torch", ["2.9.1+cu126", "2.9.1+cpu", "2.9.1"])
def test_a_torch_with_another_cuda_label_blocks_the_release_by_itself(matrix: Matrix,
                                                                      torch: str) -> None:
    """Bug caught: fact_mismatches() normalising torch like its companions (stripping the
    local label: `key in ("torch", "torchvision", "torchaudio")`), so a cu126 torch in a cu128
    image, with every other fact right, is released under the cuda12.8 tag."""
    decision = decide(matrix.by_id()[BASE], matrix, REPOSITORY, "ab" * 32,
                      gpu_pass(torch=torch), "gpu")
    assert decision.releases == () and decision.refused
    assert decision.reason == ("facts disagree with the matrix: torch is"
                               f" '{torch}' inside the image, matrix asks '2.9.1+cu128'")

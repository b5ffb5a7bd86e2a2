"""The resolve stage: one ImageState per image, each image rendered once per run, no Engine for
`plan`, and a build's results carried into the children's input hashes."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from tests.paths import REPO
from torchstack.backend.identity import ImageInspect
from torchstack.build.builder import read_contexts
from torchstack.cli import main
from torchstack.config.matrix import load_matrix
from torchstack.config.model import ImageSpec, Matrix
from torchstack.names import HASH_LABEL
from torchstack.render import dockerfile as render
from torchstack.resolve.records import RecordStore
from torchstack.resolve.state import Resolution, plan_json, resolve

BASE = "torch2.9.1-cu128-py3.11-base"
VISION = "torch2.9.1-cu128-py3.11-vision"
NLP = "torch2.9.1-cu128-py3.11-nlp"
OS_ID = "sha256:" + "0" * 64


class Engine:
    """The three questions resolving asks the Engine, answered from dicts."""

    def __init__(self, refs: dict[str, str], labels: dict[str, str]) -> None:
        self.refs, self.labels = refs, labels  # ref -> image ID; image ID -> input hash

    def image_id(self, ref: str) -> str | None:
        return ref if ref in self.refs.values() else self.refs.get(ref)

    def inspect(self, ref: str) -> ImageInspect | None:
        image = self.image_id(ref)
        return {"Id": image} if image else None

    def images_with_label(self, key: str, value: str) -> list[tuple[str, list[str]]]:
        if key != HASH_LABEL:
            return []
        return [(i, [r for r, t in self.refs.items() if t == i])
                for i, h in self.labels.items() if h == value]


@pytest.fixture
def matrix() -> Matrix:
    return load_matrix(REPO / "matrix.yaml")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_plan_json_lists_what_the_workflows_read(capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # No Engine answers there: plan must not ask one.
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    assert main(["--matrix", str(REPO / "matrix.yaml"), "plan", "--json", VISION]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)["include"]}
    assert list(rows) == [BASE, VISION]  # parents first
    vision, base = rows[VISION], rows[BASE]
    assert (vision["parent"], vision["ancestors"], vision["depth"]) == (BASE, [BASE], 1)
    assert (base["parent"], base["ancestors"], base["depth"]) == (None, [], 0)
    assert vision["root"] == base["root"] == BASE
    assert vision["base_image"] == base["base_image"] == "debian:bookworm-slim"
    assert vision["local_tag"] == "torchstack:" + VISION
    assert (vision["requested"], base["requested"]) == (True, False)
    assert (vision["default"], vision["legacy"]) == (True, False)
    assert vision["candidate_template"] == "{id}-{hash12}"
    assert vision["release_tag"].startswith("2.9.1-cuda12.8-")
    assert vision["local_image_id"] is None and vision["input_hash"] is None


def test_plan_json_lists_ancestors_root_first(matrix: Matrix) -> None:
    rows = plan_json(resolve(matrix, everything=True))
    nlp = next(r for r in rows if r["id"] == NLP)
    assert (nlp["ancestors"], nlp["depth"]) == ([BASE], 1)
    for row in rows:  # every chain: root first, as deep as it is long
        assert row["depth"] == len(row["ancestors"])
        assert row["ancestors"][:1] in ([], [row["root"]])


def count_renders(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Wrap render_image in every torchstack module that holds it, counting per image."""
    counts: dict[str, int] = {}
    real = render.render_image

    def counting(image: ImageSpec, matrix: Matrix) -> dict[str, str]:
        counts[image.id] = counts.get(image.id, 0) + 1
        return real(image, matrix)

    for name, module in list(sys.modules.items()):
        if name.startswith("torchstack") and getattr(module, "render_image", None) is real:
            monkeypatch.setattr(module, "render_image", counting)
    return counts


def test_a_run_renders_each_image_once(matrix: Matrix, monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Path) -> None:
    counts = count_renders(monkeypatch)
    resolution = Resolution(matrix)
    engine = Engine({"debian:bookworm-slim": OS_ID}, {})
    resolved = resolve(matrix, [NLP], backend=engine, store=RecordStore(tmp_path),
                       resolution=resolution)
    # What a build does next with the same run: check images/ against a render, hash chains.
    read_contexts(matrix, [s.spec for s in resolved.states], resolution)
    for state in resolved.states:
        resolution.chain_hash(state.spec)
    assert counts == {BASE: 1, NLP: 1}  # nlp and its parent, once each


def test_bake_renders_each_image_once(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    counts = count_renders(monkeypatch)
    assert main(["--matrix", str(REPO / "matrix.yaml"), "bake", NLP]) == 0
    assert json.loads(capsys.readouterr().out)["target"]
    assert counts == {BASE: 1, NLP: 1}


def test_states_resolve_the_chain_through_the_local_images(matrix: Matrix,
                                                           tmp_path: Path) -> None:
    resolution = Resolution(matrix)
    specs = matrix.by_id()
    base_hash = sha(f"{resolution.context_hash(specs[BASE])}\0{OS_ID}")
    base_id = "sha256:" + "b" * 64
    engine = Engine({"debian:bookworm-slim": OS_ID, "torchstack:" + BASE: base_id},
                    {base_id: base_hash})
    states = resolve(matrix, [VISION], backend=engine, store=RecordStore(tmp_path),
                     resolution=resolution).by_id()
    assert states[BASE].parent_image_id == OS_ID
    assert (states[BASE].local_image_id, states[BASE].input_hash) == (base_id, base_hash)
    # vision is not built: its input hash is known (its parent is) but no image carries it
    assert states[VISION].parent_image_id == base_id
    assert states[VISION].local_image_id is None and states[VISION].input_hash is None
    assert states[VISION].decision.refused and "not built" in states[VISION].decision.reason
    assert states[BASE].decision.reason.startswith("not checked")  # built, no record


def test_an_image_built_from_ours_is_not_resolved_as_ours(matrix: Matrix,
                                                          tmp_path: Path) -> None:
    resolution = Resolution(matrix)
    base_hash = sha(f"{resolution.context_hash(matrix.by_id()[BASE])}\0{OS_ID}")
    derived = "sha256:" + "d" * 64  # inherits the label, under a user's tag
    engine = Engine({"debian:bookworm-slim": OS_ID, "someone/derived:1": derived},
                    {derived: base_hash})
    state = resolve(matrix, [BASE], backend=engine, store=RecordStore(tmp_path)).states[0]
    assert state.local_image_id is None


def test_after_build_gives_children_the_image_their_parent_just_got(matrix: Matrix,
                                                                   tmp_path: Path) -> None:
    resolved = resolve(matrix, [VISION])  # as build resolves: no Engine asked
    assert all(s.parent_image_id is None for s in resolved.states)
    base_id, vision_id = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    engine = Engine({"debian:bookworm-slim": OS_ID}, {})
    updated = resolved.after_build({BASE: (base_id, "h" * 64), VISION: (vision_id, "i" * 64)},
                                   RecordStore(tmp_path), engine).by_id()
    assert updated[BASE].parent_image_id == OS_ID
    assert updated[VISION].parent_image_id == base_id
    assert (updated[VISION].local_image_id, updated[VISION].input_hash) == (vision_id, "i" * 64)
    failed = resolved.after_build({BASE: (None, "h" * 64), VISION: (None, None)},
                                  RecordStore(tmp_path), engine).by_id()
    assert failed[VISION].parent_image_id is None and not failed[VISION].built

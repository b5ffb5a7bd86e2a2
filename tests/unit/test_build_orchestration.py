"""build.Builder with a fake backend: order, reuse by input hash, failure isolation, interrupts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.integration.fixture_matrix import (
    ALPHA,
    BASE,
    BETA,
    BROKEN,
    ORPHAN,
    change_layer,
    rerender,
    write_fixture_matrix,
)
from tests.unit.build_fakes import OS_IMAGE_ID, FakeBackend, Recorder
from torchstack.build import (
    Builder,
    BuildSummary,
    find_built,
    own_image,
    parse_step,
    skip_reason,
)
from torchstack.buildinputs import BuildInputs
from torchstack.errors import ConfigError, Interrupted
from torchstack.matrix import load_matrix
from torchstack.model import Matrix
from torchstack.plan import make_plan
from torchstack.runs import create_run

REPO = Path(__file__).resolve().parents[2]
FAILED_LINES = [f"Step {n}/16 : ARG X={n}" for n in range(1, 9)] + [
    "Step 9/16 : RUN sh /tmp/layer/install.sh", " ---> Running in 0123456789ab",
    *[f"pip line {n}" for n in range(30)],
    "ERROR: No matching distribution found for torchstack-it-no-such-package==0.0.1",
    "Removing intermediate container 0123456789ab"]
INSTALL_ERROR = "The command '/bin/sh -c sh /tmp/layer/install.sh' returned a non-zero code: 1"


@pytest.fixture
def matrix(tmp_path: Path) -> Matrix:
    return write_fixture_matrix(tmp_path / "m")


def build(matrix: Matrix, backend: FakeBackend, *globs: str, everything: bool = False,
          inputs: BuildInputs | None = None, probe: object = None) -> BuildSummary:
    builder = Builder(matrix, backend, inputs or BuildInputs(), create_run(matrix.root),  # type: ignore[arg-type]
                      Recorder(), **({"probe": probe} if probe else {}))
    return builder.build(make_plan(matrix, list(globs), everything=everything))


def status(summary: BuildSummary) -> dict[str, str]:
    return {r.id: r.status for r in summary.results}


def test_parents_first_from_exact_ids_with_the_contract_hash(matrix: Matrix) -> None:
    backend = FakeBackend()
    summary = build(matrix, backend)
    assert status(summary) == {BASE: "built", ALPHA: "built", BETA: "built"}
    assert [b.image for b in backend.built] == [BASE, ALPHA, BETA]
    base, alpha = backend.built[0], backend.built[1]
    assert base.args["BASE_IMAGE"] == OS_IMAGE_ID and "PARENT_IMAGE" not in base.args
    base_id = summary.results[0].image_id
    assert alpha.args["PARENT_IMAGE"] == base_id and base_id.startswith("sha256:")
    planned = {p.spec.id: p for p in make_plan(matrix, [ALPHA]).images}
    from torchstack.plan import input_hash

    assert alpha.args["TORCHSTACK_INPUT_HASH"] == input_hash(planned[ALPHA].context_hash, base_id)
    assert backend.refs[f"torchstack-it:{ALPHA}"] == summary.results[1].image_id
    data = json.loads((summary.run.path / "build.json").read_text())
    assert list(data["images"]) == [BASE, ALPHA, BETA] and data["docker_builds"] == 3


def test_build_stage_images_are_removed_after_tagging_unless_kept(matrix: Matrix) -> None:
    backend = FakeBackend(failing={BROKEN: (FAILED_LINES, INSTALL_ERROR)})
    summary = build(matrix, backend, "*-broken")
    [(base_steps, tagged), (broken_steps, _)] = backend.removed
    base_short = summary.results[0].image_id[7:19]
    assert base_steps[-1] == base_short and base_short in tagged  # the new image is safe
    assert broken_steps == ("f" * 12,)  # a failed build's leftovers go too
    kept = FakeBackend()
    Builder(matrix, kept, BuildInputs(), create_run(matrix.root), Recorder(),  # type: ignore[arg-type]
            keep_stages=True).build(make_plan(matrix, ["*-base"]))
    assert kept.removed == [] and kept.builds == 1


def test_an_unchanged_matrix_builds_nothing_and_repoints_tags(matrix: Matrix) -> None:
    backend = FakeBackend()
    first = build(matrix, backend)
    del backend.refs[f"torchstack-it:{BETA}"]
    second = build(matrix, backend)
    assert second.docker_builds == 0 and backend.builds == 3
    assert status(second) == {BASE: "cached", ALPHA: "cached", BETA: "cached"}
    assert [r.image_id for r in second.results] == [r.image_id for r in first.results]
    assert backend.refs[f"torchstack-it:{BETA}"] == first.results[2].image_id


def test_changing_one_layer_rebuilds_its_image_only(matrix: Matrix) -> None:
    backend = FakeBackend()
    build(matrix, backend)
    matrix = change_layer(matrix.root, "beta", "new")
    summary = build(matrix, backend)
    assert status(summary) == {BASE: "cached", ALPHA: "cached", BETA: "built"}
    assert summary.docker_builds == 1


def test_a_rebuilt_parent_rebuilds_its_children(matrix: Matrix) -> None:
    backend = FakeBackend()
    build(matrix, backend)
    summary = build(change_layer(matrix.root, "root", "new"), backend)
    assert status(summary) == {BASE: "built", ALPHA: "built", BETA: "built"}


def test_failure_skips_descendants_only_and_names_the_step(matrix: Matrix) -> None:
    backend = FakeBackend(failing={BROKEN: (FAILED_LINES, INSTALL_ERROR)})
    summary = build(matrix, backend, "*-orphan", "*-alpha", "*-beta")
    assert status(summary) == {BASE: "built", BROKEN: "failed", ORPHAN: "skipped",
                               ALPHA: "built", BETA: "built"}
    broken = summary.results[1]
    assert broken.failed_step == "step 9/16: RUN sh /tmp/layer/install.sh"
    assert broken.reason.startswith(INSTALL_ERROR)
    assert "packages came from https://pypi.org/simple" in broken.reason
    assert len(broken.log_tail) == 20 and broken.log_tail[-1].startswith("ERROR: No matching")
    assert not any(line.startswith((" ---> ", "Removing")) for line in broken.log_tail)
    assert summary.results[2].reason == f"parent {BROKEN} failed"
    assert f"torchstack-it:{BROKEN}" not in backend.refs
    log = (summary.run.path / broken.log).read_text()
    assert "pip line 0" in log and f"ERROR: {INSTALL_ERROR}" in log


def test_skip_reason() -> None:
    assert skip_reason(None) is None
    for parent_status, expected in (("built", None), ("cached", None),
                                    ("failed", "parent p failed"), ("skipped", "parent p skipped")):
        from torchstack.build import ImageResult

        parent = ImageResult("p", None, True, status=parent_status)
        assert skip_reason(parent) == expected


def test_parse_step() -> None:
    step = parse_step("Step 12/19 : COPY --from=builder /layer-delta/ /")
    assert step is not None and (step.n, step.total) == (12, 19)
    assert str(step) == "step 12/19: COPY --from=builder /layer-delta/ /"
    assert parse_step(" ---> Running in abc") is None
    assert parse_step("pip says Step 1/2 : x") is None


def test_missing_os_image_fails_the_root_with_a_bootstrap_tip(matrix: Matrix) -> None:
    backend = FakeBackend(refs={})
    summary = build(matrix, backend, "*-alpha")
    assert status(summary) == {BASE: "failed", ALPHA: "skipped"}
    assert "torchstack base bootstrap bookworm" in summary.results[0].reason
    assert "docker pull debian:bookworm-slim" in summary.results[0].reason
    assert backend.builds == 0


def test_stale_images_folder_is_a_config_error_before_any_build(matrix: Matrix) -> None:
    (matrix.images_dir / BETA / "install.sh").write_text("echo edited\n")
    backend = FakeBackend()
    with pytest.raises(ConfigError, match=r"images/ is stale.*install\.sh") as error:
        build(matrix, backend)
    assert "torchstack render" in str(error.value.tip)
    assert backend.builds == 0


@pytest.fixture
def repo_matrix(tmp_path: Path) -> Matrix:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "layers", root / "layers")
    shutil.copy2(REPO / "matrix.yaml", root / "matrix.yaml")
    return rerender(root)


def test_unreachable_torch_index_fails_fast_and_skips_children(repo_matrix: Matrix) -> None:
    probed: list[str] = []

    def probe(url: str, ca: object) -> str | None:
        probed.append(url)
        return "cannot reach it (Name or service not known)"

    backend = FakeBackend()
    summary = build(repo_matrix, backend, "torch2.9.1-cu126-*", probe=probe)
    assert status(summary) == {"torch2.9.1-cu126-py3.11-base": "failed",
                               "torch2.9.1-cu126-py3.11-vision": "skipped",
                               "torch2.9.1-cu126-py3.11-nlp": "skipped"}
    reason = summary.results[0].reason
    assert "https://download.pytorch.org/whl/cu126" in reason and "--index cu126=URL" in reason
    assert probed == ["https://download.pytorch.org/whl/cu126"] and backend.builds == 0


def test_pypi_images_are_not_probed_unless_overridden(repo_matrix: Matrix, matrix: Matrix) -> None:
    probed: list[str] = []

    def probe(url: str, ca: object) -> None:
        probed.append(url)

    build(repo_matrix, FakeBackend(), "torch2.9.1-cu128-py3.11-base", probe=probe)
    assert probed == []
    mirror = BuildInputs(pip_index="https://mirror.example/simple")
    build(matrix, FakeBackend(), inputs=mirror, probe=probe)
    assert probed == ["https://mirror.example/simple"]  # once per run, not per image


def test_interrupt_fails_the_image_in_flight_and_moves_no_tag(matrix: Matrix) -> None:
    backend = FakeBackend(interrupt_on=ALPHA)
    backend.refs[f"torchstack-it:{ALPHA}"] = "sha256:previous"
    run = create_run(matrix.root)
    builder = Builder(matrix, backend, BuildInputs(), run, Recorder())  # type: ignore[arg-type]
    with pytest.raises(Interrupted, match=f"while building {ALPHA}"):
        builder.build(make_plan(matrix, []))
    assert backend.refs[f"torchstack-it:{ALPHA}"] == "sha256:previous"
    images = json.loads((run.path / "build.json").read_text())["images"]
    assert {k: (v["status"], v["reason"]) for k, v in images.items()} == {
        BASE: ("built", None), ALPHA: ("failed", "interrupted"), BETA: ("skipped", "interrupted")}


def test_the_context_carries_the_ca_bundle_and_images_stays_untouched(
        matrix: Matrix, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\nfake\n")
    before = {p: p.read_bytes() for p in matrix.images_dir.rglob("*") if p.is_file()}
    backend = FakeBackend()
    build(matrix, backend, "*-base", inputs=BuildInputs(ca_bundle=ca))
    files = backend.built[0].files
    assert files["build-inputs/ca-bundle.crt"] == ca.read_bytes()
    assert set(files) == {"Dockerfile", "install.sh", "requirements.txt",
                          "torch-requirements.txt", "build-inputs/README.md",
                          "build-inputs/ca-bundle.crt"}
    after = {p: p.read_bytes() for p in matrix.images_dir.rglob("*") if p.is_file()}
    assert after == before


def test_credentials_never_reach_logs_or_results(matrix: Matrix) -> None:
    inputs = BuildInputs(pip_index="https://tok3n:s3cr3t@mirror.example/simple")
    lines = ["Step 9/16 : RUN sh /tmp/layer/install.sh",
             "Looking in indexes: https://tok3n:****@mirror.example/simple",
             "torchstack: installing from https://tok3n:s3cr3t@mirror.example/simple failed"]
    backend = FakeBackend(failing={BASE: (lines, "exit 1 for https://tok3n:s3cr3t@m")})
    summary = build(matrix, backend, "*-base", inputs=inputs, probe=lambda url, ca: None)
    text = (summary.run.path / "build.json").read_text()
    text += (summary.run.path / summary.results[0].log).read_text()
    assert "s3cr3t" not in text and "tok3n" not in text
    assert "https://***@mirror.example/simple" in summary.results[0].reason
    assert backend.built[0].args["PIP_INDEX_URL"] == inputs.pip_index  # the build gets it


def test_find_built_resolves_the_chain_without_building(matrix: Matrix) -> None:
    backend = FakeBackend()
    summary = build(matrix, backend)
    ids = {r.id: r.image_id for r in summary.results}
    specs = matrix.by_id()
    assert {i: find_built(backend, matrix, specs[i]) for i in ids} == ids  # type: ignore[arg-type]
    changed = change_layer(matrix.root, "root", "new")
    memo: dict[str, str | None] = {}
    assert find_built(backend, changed, changed.by_id()[ALPHA], memo) is None  # type: ignore[arg-type]
    assert memo == {BASE: None, ALPHA: None}
    assert backend.builds == 3


def test_an_image_built_from_ours_is_not_taken_for_ours() -> None:
    """A user's image FROM ours inherits the hash label, but not our tags: never reused."""
    matrix = load_matrix(REPO / "matrix.yaml")
    spec = matrix.by_id()["torch2.9.1-cu128-py3.11-vision"]
    backend = FakeBackend()
    backend.labels["sha256:" + "a" * 64] = "h" * 64  # ours, under our local tag
    backend.tag("sha256:" + "a" * 64, matrix.local_tag(spec.id))
    backend.labels["sha256:" + "b" * 64] = "h" * 64  # newer, derived, tagged by a user
    backend.tag("sha256:" + "b" * 64, "someone/derived:latest")
    assert own_image(backend, matrix, spec, "h" * 64) == "sha256:" + "a" * 64  # type: ignore[arg-type]
    # A candidate pulled on a GPU runner carries no local tag, only its candidate tag.
    backend.labels["sha256:" + "c" * 64] = "i" * 64
    backend.tag("sha256:" + "c" * 64, f"registry.example/ts:{spec.id}-{'i' * 12}")
    assert own_image(backend, matrix, spec, "i" * 64) == "sha256:" + "c" * 64  # type: ignore[arg-type]
    backend.tag("sha256:" + "c" * 64, "someone/else:1")
    del backend.refs[f"registry.example/ts:{spec.id}-{'i' * 12}"]
    assert own_image(backend, matrix, spec, "i" * 64) is None  # type: ignore[arg-type]

"""build.Builder with stand-ins for Docker and BuildKit: order, reuse by input hash, failure
isolation, refusal of unlocked images, secrets, interrupts."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.fixture_matrix import (
    ALPHA,
    BASE,
    BETA,
    BROKEN,
    FAILING,
    FAILING_MESSAGE,
    ORPHAN,
    change_layer,
    rerender,
    write_fixture_matrix,
)
from tests.paths import REPO
from tests.resolved import local_image
from tests.unit.fakes import OS_IMAGE_ID, FakeBackend, FakeBuildkit, Recorder
from torchstack.build.builder import (
    Builder,
    BuildSummary,
    ImageResult,
    parse_step,
    skip_reason,
)
from torchstack.config.inputs import BuildInputs
from torchstack.config.matrix import load_matrix
from torchstack.config.model import Matrix
from torchstack.errors import ConfigError, Interrupted
from torchstack.resolve.order import input_hash, make_plan
from torchstack.resolve.state import own_image
from torchstack.workspace.runs import create_run

PIN = "torchstack-it-pin:"
FRAGMENT_STEP = f'RUN echo "{FAILING_MESSAGE}" >&2 && exit 3'
# What BuildKit 0.8 prints when failing's fragment fails (from a real build's log), after
# enough output of earlier steps that the tail must be cut.
FAILED_LINES = [f"#{n} [internal] load metadata {n}" for n in range(1, 25)] + [
    f"#9 [stage-2 1/1] {FRAGMENT_STEP}",
    "#9 sha256:4be4b3c6b0f0",
    f"#9 0.412 {FAILING_MESSAGE}",
    f"#9 ERROR: executor failed running [/bin/sh -c {FRAGMENT_STEP[4:]}]: exit code: 3",
    "------", f" > [stage-2 1/1] {FRAGMENT_STEP}:", "------",
    f"executor failed running [/bin/sh -c {FRAGMENT_STEP[4:]}]: exit code: 3"]
INSTALL = ("RUN --mount=type=bind,source=groups/01-python-packages.txt,target=/run/torchstack/"
           "group.txt     --mount=type=secret,id=index-url,target=/run/torchstack/secrets/"
           "index-url     sh /run/torchstack/install-group.sh 946684800 01-python-packages"
           " https://pypi.org/simple")
EXPECTED = "sha256:" + "0" * 4 + "f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274"
COMPUTED = "sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274"
# uv's report of a tampered lock, as a real BuildKit build printed it.
HASH_MISMATCH = [
    f"#11 [stage-2 2/3] {INSTALL}", "#11 0.909 Using Python 3.11.2 environment at: /opt/venv",
    "#11 1.517 error: Failed to download `six==1.17.0`",
    "#11 1.517   cause: Hash mismatch for `six==1.17.0`", "#11 1.517 ",
    "#11 1.517          Expected:", f"#11 1.517            {EXPECTED}", "#11 1.517 ",
    "#11 1.517          Computed:", f"#11 1.517            {COMPUTED}",
    "#11 1.529 torchstack: installing layer group 01-python-packages failed; see uv's message"
    " above",
    "#11 ERROR: executor failed running [/bin/sh -c sh /run/torchstack/install-group.sh]: exit"
    " code: 1"]


@pytest.fixture
def matrix(tmp_path: Path) -> Matrix:
    return write_fixture_matrix(tmp_path / "m")


def build(matrix: Matrix, backend: FakeBackend, buildkit: FakeBuildkit | None = None,
          *globs: str, inputs: BuildInputs | None = None,
          probe: Callable[[str, Path | None], str | None] = lambda url, ca: None,
          ) -> BuildSummary:
    builder = Builder(matrix, backend, buildkit or FakeBuildkit(backend),
                      inputs or BuildInputs(), create_run(matrix.root), Recorder(), probe)
    return builder.build(make_plan(matrix, list(globs)))


def status(summary: BuildSummary) -> dict[str, str]:
    return {r.id: r.status for r in summary.results}


def pin_of(image_id: str) -> str:
    return PIN + image_id.removeprefix("sha256:")


def test_parents_first_from_exact_ids_with_the_contract_hash(matrix: Matrix) -> None:
    backend = FakeBackend()
    buildkit = FakeBuildkit(backend)
    summary = build(matrix, backend, buildkit)
    assert status(summary) == {BASE: "built", ALPHA: "built", BETA: "built"}
    assert [b.image for b in buildkit.built] == [BASE, ALPHA, BETA]
    base, alpha = buildkit.built[0], buildkit.built[1]
    # FROM takes a reference: a pin tag named after the exact ID, pointing at it while it runs.
    assert base.args["BASE_IMAGE"] == pin_of(OS_IMAGE_ID) and "PARENT_IMAGE" not in base.args
    assert base.refs[pin_of(OS_IMAGE_ID)] == OS_IMAGE_ID
    base_id = str(summary.results[0].image_id)
    assert alpha.args["PARENT_IMAGE"] == pin_of(base_id) and base_id.startswith("sha256:")
    assert alpha.refs[pin_of(base_id)] == base_id
    assert base.context == matrix.images_dir / BASE and alpha.context == matrix.images_dir / ALPHA
    planned = {p.spec.id: p for p in make_plan(matrix, [ALPHA]).images}
    assert alpha.args["TORCHSTACK_INPUT_HASH"] == input_hash(planned[ALPHA].context_hash, base_id)
    assert backend.refs[f"torchstack-it:{ALPHA}"] == summary.results[1].image_id
    assert not [ref for ref in backend.refs if ref.startswith(PIN)]  # every pin went again
    data = json.loads((summary.run.path / "build.json").read_text())
    assert list(data["images"]) == [BASE, ALPHA, BETA] and data["docker_builds"] == 3


def test_an_unchanged_matrix_builds_nothing_and_repoints_tags(matrix: Matrix) -> None:
    backend = FakeBackend()
    buildkit = FakeBuildkit(backend)
    first = build(matrix, backend, buildkit)
    del backend.refs[f"torchstack-it:{BETA}"]
    second = build(matrix, backend, buildkit)
    assert second.docker_builds == 0 and buildkit.builds == 3
    assert status(second) == {BASE: "cached", ALPHA: "cached", BETA: "cached"}
    assert [r.image_id for r in second.results] == [r.image_id for r in first.results]
    assert backend.refs[f"torchstack-it:{BETA}"] == first.results[2].image_id


def test_changing_one_layer_rebuilds_its_image_only(matrix: Matrix) -> None:
    backend = FakeBackend()
    buildkit = FakeBuildkit(backend)
    build(matrix, backend, buildkit)
    summary = build(change_layer(matrix.root, "beta", "new"), backend, buildkit)
    assert status(summary) == {BASE: "cached", ALPHA: "cached", BETA: "built"}
    assert summary.docker_builds == 1 and buildkit.built[-1].image == BETA


def test_a_rebuilt_parent_rebuilds_its_children(matrix: Matrix) -> None:
    backend = FakeBackend()
    buildkit = FakeBuildkit(backend)
    build(matrix, backend, buildkit)
    summary = build(change_layer(matrix.root, "root", "new"), backend, buildkit)
    assert status(summary) == {BASE: "built", ALPHA: "built", BETA: "built"}


def test_failures_skip_descendants_only_and_name_the_step(matrix: Matrix) -> None:
    backend = FakeBackend()
    buildkit = FakeBuildkit(backend, failing={FAILING: FAILED_LINES})
    summary = build(matrix, backend, buildkit, "*-orphan", "*-failing", "*-alpha", "*-beta")
    assert status(summary) == {BASE: "built", BROKEN: "failed", ORPHAN: "skipped",
                               FAILING: "failed", ALPHA: "built", BETA: "built"}
    results = {r.id: r for r in summary.results}
    # broken has no lock: refused before BuildKit, with what to run.
    assert [b.image for b in buildkit.built] == [BASE, FAILING, ALPHA, BETA]
    assert f"images/{BROKEN}/pylock.toml does not exist" in str(results[BROKEN].reason)
    assert f"torchstack lock {BROKEN}" in str(results[BROKEN].reason)
    assert results[ORPHAN].reason == f"parent {BROKEN} failed"
    failing = results[FAILING]
    assert failing.failed_step == f"step 1/1: {FRAGMENT_STEP}"
    assert "exit code: 3" in str(failing.reason)
    assert "packages came from" not in str(failing.reason)  # not an install step
    assert len(failing.log_tail) == 20 and failing.log_tail[-1] == FAILED_LINES[-1]
    assert f"#9 0.412 {FAILING_MESSAGE}" in failing.log_tail
    for image in (BROKEN, FAILING):
        assert f"torchstack-it:{image}" not in backend.refs
    log = (summary.run.path / str(failing.log)).read_text()
    assert "load metadata 1\n" in log and "ERROR: executor failed running" in log
    assert not [ref for ref in backend.refs if ref.startswith(PIN)]  # also after a failure


def test_a_hash_mismatch_names_the_package_both_hashes_and_the_indexes(matrix: Matrix) -> None:
    backend = FakeBackend()
    summary = build(matrix, backend, FakeBuildkit(backend, failing={BASE: HASH_MISMATCH}),
                    "*-alpha")
    assert status(summary) == {BASE: "failed", ALPHA: "skipped"}
    base = summary.results[0]
    assert base.failed_step == "step 2/3: install groups/01-python-packages.txt"
    reason = str(base.reason)
    assert "Hash mismatch for `six==1.17.0`" in reason
    assert f"Expected: {EXPECTED}" in reason and f"Computed: {COMPUTED}" in reason
    assert "installing layer group 01-python-packages failed" in reason
    assert reason.endswith("packages came from https://pypi.org/simple, torch wheels from"
                           " https://pypi.org/simple")


def test_skip_reason() -> None:
    assert skip_reason(None) is None
    for parent_status, expected in (("built", None), ("cached", None),
                                    ("failed", "parent p failed"), ("skipped", "parent p skipped")):
        parent = ImageResult("p", None, True, status=parent_status)
        assert skip_reason(parent) == expected


def test_parse_step() -> None:
    step = parse_step("#7 [os 3/5] RUN apt-get update  && apt-get install -y python3")
    assert step is not None and (step.n, step.total) == (3, 5)
    assert str(step) == "step 3/5: RUN apt-get update  && apt-get install -y python3"
    unnamed = parse_step("#12 [2/4] COPY stubs/etc/hosts /etc/")
    assert unnamed is not None and str(unnamed) == "step 2/4: COPY stubs/etc/hosts /etc/"
    install = parse_step(f"#11 [stage-2 2/3] {INSTALL}")  # the group, not the mount list
    assert install is not None and str(install) == "step 2/3: install groups/01-python-packages.txt"
    for other in ("#7 0.938 Using Python 3.11.2 environment at: /opt/venv",
                  "#8 exporting to image", "#4 [internal] load build definition from Dockerfile",
                  "uv says #1 [a 1/2] x", "Step 1/2 : FROM x"):
        assert parse_step(other) is None, other


def test_missing_os_image_fails_the_root_with_a_bootstrap_tip(matrix: Matrix) -> None:
    backend = FakeBackend(refs={})
    buildkit = FakeBuildkit(backend)
    summary = build(matrix, backend, buildkit, "*-alpha")
    assert status(summary) == {BASE: "failed", ALPHA: "skipped"}
    assert "torchstack base bootstrap bookworm" in str(summary.results[0].reason)
    assert "docker pull debian:bookworm-slim" in str(summary.results[0].reason)
    assert buildkit.builds == 0


def test_stale_images_folder_is_a_config_error_before_any_build(matrix: Matrix) -> None:
    (matrix.images_dir / BETA / "groups/01-beta.txt").write_text("packaging==25.0\n")
    backend = FakeBackend()
    buildkit = FakeBuildkit(backend)
    with pytest.raises(ConfigError, match=r"images/ is stale.*groups/01-beta\.txt") as error:
        build(matrix, backend, buildkit)
    assert "torchstack render" in str(error.value.tip)
    assert buildkit.builds == 0


def test_without_locks_nothing_reaches_buildkit(tmp_path: Path) -> None:
    matrix = write_fixture_matrix(tmp_path / "m", locks="none")
    backend = FakeBackend()
    buildkit = FakeBuildkit(backend)
    summary = build(matrix, backend, buildkit)
    assert status(summary) == {BASE: "failed", ALPHA: "skipped", BETA: "skipped"}
    assert "builds install only from a lock" in str(summary.results[0].reason)
    assert buildkit.builds == 0


@pytest.fixture
def repo_matrix(tmp_path: Path) -> Matrix:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "layers", root / "layers")
    shutil.copytree(REPO / "images", root / "images")  # the committed locks
    shutil.copy2(REPO / "matrix.yaml", root / "matrix.yaml")
    return rerender(root)


def test_an_unlocked_variant_fails_at_once_naming_its_index(repo_matrix: Matrix) -> None:
    probed: list[str] = []
    backend = FakeBackend()
    buildkit = FakeBuildkit(backend)
    summary = build(repo_matrix, backend, buildkit, "torch2.9.1-cu126-*",
                    probe=lambda url, ca: probed.append(url))
    assert status(summary) == {"torch2.9.1-cu126-py3.11-base": "failed",
                               "torch2.9.1-cu126-py3.11-vision": "skipped",
                               "torch2.9.1-cu126-py3.11-nlp": "skipped"}
    reason = str(summary.results[0].reason)
    assert "where https://download.pytorch.org/whl/cu126 is reachable" in reason
    assert "torchstack lock torch2.9.1-cu126-py3.11-base" in reason
    assert probed == [] and buildkit.builds == 0


def test_an_unreachable_mirror_fails_fast_and_skips_children(matrix: Matrix) -> None:
    probed: list[str] = []

    def probe(url: str, ca: object) -> str | None:
        probed.append(url)
        return "cannot reach it (Connection refused)"

    backend = FakeBackend()
    buildkit = FakeBuildkit(backend)
    mirror = BuildInputs(pip_index="http://127.0.0.1:9/simple")
    summary = build(matrix, backend, buildkit, "*-alpha", inputs=mirror, probe=probe)
    assert status(summary) == {BASE: "failed", ALPHA: "skipped"}
    reason = str(summary.results[0].reason)
    assert reason.startswith("the package index http://127.0.0.1:9/simple: cannot reach it")
    assert probed == ["http://127.0.0.1:9/simple"] and buildkit.builds == 0


def test_pypi_images_are_not_probed_unless_overridden(repo_matrix: Matrix, matrix: Matrix) -> None:
    probed: list[str] = []

    def probe(url: str, ca: object) -> None:
        probed.append(url)

    backend = FakeBackend()
    summary = build(repo_matrix, backend, FakeBuildkit(backend), "torch2.9.1-cu128-py3.11-base",
                    probe=probe)
    assert status(summary) == {"torch2.9.1-cu128-py3.11-base": "built"} and probed == []
    mirror = BuildInputs(pip_index="https://mirror.example/simple")
    backend = FakeBackend()
    build(matrix, backend, FakeBuildkit(backend), inputs=mirror, probe=probe)
    assert probed == ["https://mirror.example/simple"]  # once per run, not per image


def test_interrupt_fails_the_image_in_flight_and_moves_no_tag(matrix: Matrix) -> None:
    backend = FakeBackend()
    backend.refs[f"torchstack-it:{ALPHA}"] = "sha256:previous"
    run = create_run(matrix.root)
    builder = Builder(matrix, backend, FakeBuildkit(backend, interrupt_on=ALPHA),
                      BuildInputs(), run, Recorder())
    with pytest.raises(Interrupted, match=f"while building {ALPHA}"):
        builder.build(make_plan(matrix, []))
    assert backend.refs[f"torchstack-it:{ALPHA}"] == "sha256:previous"
    assert not [ref for ref in backend.refs if ref.startswith(PIN)]
    images = json.loads((run.path / "build.json").read_text())["images"]
    assert {k: (v["status"], v["reason"]) for k, v in images.items()} == {
        BASE: ("built", None), ALPHA: ("failed", "interrupted"), BETA: ("skipped", "interrupted")}


def test_the_ca_bundle_is_a_secret_from_its_file_and_images_stays_untouched(
        matrix: Matrix, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\nfake\n")
    before = {p: p.read_bytes() for p in matrix.images_dir.rglob("*") if p.is_file()}
    backend = FakeBackend()
    buildkit = FakeBuildkit(backend)
    build(matrix, backend, buildkit, "*-base", inputs=BuildInputs(ca_bundle=ca))
    [base] = buildkit.built
    assert base.secret_files == {"ca-bundle": ca} and base.secrets == {"ca-bundle": ca.read_bytes()}
    assert base.secret_env == {}  # stock indexes: no index secret at all
    assert set(base.files) == {"Dockerfile", "install-group.sh", "finish-layer.py",
                               "fetch-uv.py", "pylock.toml", "groups/01-python-packages.txt",
                               "stubs/etc/hosts", "stubs/etc/resolv.conf"}
    assert not any(ca.read_bytes() in data for data in base.files.values())
    assert set(base.args) == {"BASE_IMAGE", "TORCHSTACK_INPUT_HASH"}
    after = {p: p.read_bytes() for p in matrix.images_dir.rglob("*") if p.is_file()}
    assert after == before


def test_index_overrides_are_secrets_by_environment_and_proxies_are_build_args(
        matrix: Matrix) -> None:
    inputs = BuildInputs(pip_index="https://tok3n:s3cr3t@mirror.example/simple",
                         torch_indexes={"cu128": "https://u:pw@torch.example/whl/cu128"},
                         proxies={"HTTPS_PROXY": "http://proxy.example:3128"})
    backend = FakeBackend()
    buildkit = FakeBuildkit(backend)
    build(matrix, backend, buildkit, "*-base", inputs=inputs, probe=lambda url, ca: None)
    [base] = buildkit.built
    assert base.secrets == {"index-url": inputs.pip_index.encode(),  # type: ignore[union-attr]
                            "extra-index-url": b"https://u:pw@torch.example/whl/cu128"}
    assert base.secret_env == {"index-url": "TORCHSTACK_SECRET_INDEX_URL",
                               "extra-index-url": "TORCHSTACK_SECRET_EXTRA_INDEX_URL"}
    assert base.args["HTTPS_PROXY"] == "http://proxy.example:3128"
    assert not [v for v in base.args.values() if "s3cr3t" in v or "pw@" in v]


def test_credentials_never_reach_logs_or_results(matrix: Matrix) -> None:
    inputs = BuildInputs(pip_index="https://tok3n:s3cr3t@mirror.example/simple")
    lines = [f"#11 [stage-2 2/3] {INSTALL}",
             "#11 1.2 error: Failed to fetch: `https://tok3n:s3cr3t@mirror.example/simple/six/`",
             "#11 1.3 torchstack: installing layer group 01-python-packages failed; see uv's"
             " message above"]
    backend = FakeBackend()
    buildkit = FakeBuildkit(backend, failing={BASE: lines})
    summary = build(matrix, backend, buildkit, "*-base", inputs=inputs,
                    probe=lambda url, ca: None)
    text = (summary.run.path / "build.json").read_text()
    text += (summary.run.path / str(summary.results[0].log)).read_text()
    assert "s3cr3t" not in text and "tok3n" not in text
    assert "https://***@mirror.example/simple" in str(summary.results[0].reason)


def test_resolve_finds_the_built_chain_without_building(matrix: Matrix) -> None:
    backend = FakeBackend()
    buildkit = FakeBuildkit(backend)
    summary = build(matrix, backend, buildkit)
    ids = {r.id: r.image_id for r in summary.results}
    assert {i: local_image(backend, matrix, i) for i in ids} == ids
    changed = change_layer(matrix.root, "root", "new")
    # The root's layer changed: neither it nor the child built on it is found.
    assert local_image(backend, changed, BASE) is None
    assert local_image(backend, changed, ALPHA) is None
    assert buildkit.builds == 3


def test_an_image_built_from_ours_is_not_taken_for_ours() -> None:
    """A user's image FROM ours inherits the hash label, but not our tags: never reused."""
    matrix = load_matrix(REPO / "matrix.yaml")
    spec = matrix.by_id()["torch2.9.1-cu128-py3.11-vision"]
    backend = FakeBackend()
    backend.labels["sha256:" + "a" * 64] = "h" * 64  # ours, under our local tag
    backend.tag("sha256:" + "a" * 64, matrix.local_tag(spec.id))
    backend.labels["sha256:" + "b" * 64] = "h" * 64  # newer, derived, tagged by a user
    backend.tag("sha256:" + "b" * 64, "someone/derived:latest")
    assert own_image(backend, matrix, spec, "h" * 64) == "sha256:" + "a" * 64
    # A candidate pulled on a GPU runner carries no local tag, only its candidate tag.
    backend.labels["sha256:" + "c" * 64] = "i" * 64
    backend.tag("sha256:" + "c" * 64, f"registry.example/ts:{spec.id}-{'i' * 12}")
    assert own_image(backend, matrix, spec, "i" * 64) == "sha256:" + "c" * 64
    backend.tag("sha256:" + "c" * 64, "someone/else:1")
    del backend.refs[f"registry.example/ts:{spec.id}-{'i' * 12}"]
    assert own_image(backend, matrix, spec, "i" * 64) is None

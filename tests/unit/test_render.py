"""Rendering: golden files for a root, a vision, an nlp and a legacy image; properties every
rendered Dockerfile must have; `render --check` and orphan removal.

Regenerate the golden files after an intended change, then review the diff:
    UPDATE_GOLDEN=1 python3 -m pytest tests/unit/test_render.py
"""

from __future__ import annotations

import os
import shlex
import shutil
from importlib import resources
from pathlib import Path

import pytest

from torchstack.cli import main
from torchstack.compat import load_compat
from torchstack.matrix import load_matrix
from torchstack.model import ImageSpec, Matrix
from torchstack.render import dockerfile, render_image

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
GOLDEN_IDS = [
    "torch2.9.1-cu128-py3.11-base",  # root, wheels from PyPI
    "torch2.9.1-cu126-py3.11-vision",  # extension, wheels from the PyTorch index
    "torch2.9.1-cu128-py3.11-nlp",  # extension with env
    "torch2.7.1-cu118-py3.11-base",  # legacy
]
# install.sh is the packaged template, the same for every image: compared to it, not a golden.
SHARED = "install.sh"


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix(REPO / "matrix.yaml")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((keyword.upper(), args.strip()))
    assert not pending, "a continuation line runs off the end"
    return result


def pairs(args: str) -> dict[str, str]:
    """KEY="value" KEY2=value -> dict, for ENV and LABEL."""
    return dict(item.split("=", 1) for item in shlex.split(args))


def stages(text: str) -> list[list[tuple[str, str]]]:
    """Instructions split at each FROM; stage 0 holds the global ARGs."""
    split: list[list[tuple[str, str]]] = [[]]
    for keyword, args in instructions(text):
        if keyword == "FROM":
            split.append([])
        split[-1].append((keyword, args))
    return split


def effective_env(image: ImageSpec, matrix: Matrix) -> dict[str, str]:
    """What the image's final stage sees: its ancestors' ENV, then its own."""
    env: dict[str, str] = {}
    if image.parent_id:
        env = effective_env(matrix.by_id()[image.parent_id], matrix)
    for keyword, args in stages(dockerfile(image, matrix))[-1]:
        if keyword == "ENV":
            env.update(pairs(args))
    return env


@pytest.mark.parametrize("image_id", GOLDEN_IDS)
def test_golden(image_id: str, matrix: Matrix) -> None:
    rendered = render_image(matrix.by_id()[image_id], matrix)
    folder = GOLDEN / image_id
    if os.environ.get("UPDATE_GOLDEN") == "1":
        shutil.rmtree(folder, ignore_errors=True)
        for relative, text in rendered.items():
            if relative != SHARED:
                (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                (folder / relative).write_text(text, encoding="utf-8")
    stored = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert stored == set(rendered) - {SHARED}, "run with UPDATE_GOLDEN=1 to regenerate"
    for relative in sorted(stored):
        golden = (folder / relative).read_text(encoding="utf-8")
        assert rendered[relative] == golden, (
            f"{image_id}/{relative} differs from tests/unit/golden; if the change is intended,"
            " rerun with UPDATE_GOLDEN=1 and review the diff")
    template = resources.files("torchstack").joinpath("templates/install.sh").read_text()
    assert rendered[SHARED] == template


def test_golden_covers_each_kind(matrix: Matrix) -> None:
    chosen = [matrix.by_id()[i] for i in GOLDEN_IDS]
    assert any(i.parent_id is None and not i.legacy for i in chosen)
    assert {i.flavor for i in chosen} >= {"base", "vision", "nlp"}
    assert any(i.legacy for i in chosen)
    assert {i.index_kind for i in chosen} == {"pypi", "pytorch"}


def test_rendering_is_deterministic(matrix: Matrix) -> None:
    again = load_matrix(REPO / "matrix.yaml")
    for image in matrix.images:
        first = render_image(image, matrix)
        assert render_image(image, matrix) == first
        assert render_image(again.by_id()[image.id], again) == first


def test_every_image_runs_on_the_gpu_with_the_driver_it_needs(matrix: Matrix) -> None:
    compat = load_compat()
    for image in matrix.images:
        env = effective_env(image, matrix)
        assert env["NVIDIA_VISIBLE_DEVICES"] == "all", image.id
        assert env["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility", image.id
        # The runtime then refuses a driver older than the toolkit's minimum.
        assert env["NVIDIA_REQUIRE_CUDA"] == f"cuda>={image.cuda}", image.id
        assert image.driver_min == compat.driver(image.cuda).driver_min
        assert env["PATH"].startswith("/opt/venv/bin:")


def test_root_images_set_the_gpu_environment_themselves(matrix: Matrix) -> None:
    for image in (i for i in matrix.images if i.parent_id is None):
        own: dict[str, str] = {}
        for keyword, args in stages(dockerfile(image, matrix))[-1]:
            if keyword == "ENV":
                own.update(pairs(args))
        assert {"NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES",
                "NVIDIA_REQUIRE_CUDA"} <= set(own), image.id


def test_labels(matrix: Matrix) -> None:
    for image in matrix.images:
        labels: dict[str, str] = {}
        for keyword, args in stages(dockerfile(image, matrix))[-1]:
            if keyword == "LABEL":
                labels.update(pairs(args))
        parent = matrix.local_tag(image.parent_id) if image.parent_id else image.base_image
        assert labels["org.opencontainers.image.title"] == image.id
        assert labels["org.opencontainers.image.version"] == image.release_tag
        assert labels["org.opencontainers.image.base.name"] == parent
        assert labels["org.opencontainers.image.description"]
        assert labels["org.opencontainers.image.vendor"] == "torchstack"
        assert labels["io.torchstack.image-id"] == image.id
        assert labels["io.torchstack.flavor"] == image.flavor
        assert labels["io.torchstack.layers"] == ",".join(image.layers)
        assert labels["io.torchstack.torch"] == f"{image.torch}+{image.cuda_tag}"
        assert labels["io.torchstack.cuda"] == image.cuda
        assert labels["io.torchstack.cudnn"] == (image.cudnn or "unknown")
        assert labels["io.torchstack.python"] == image.python
        assert labels["io.torchstack.legacy"] == str(image.legacy).lower()
        assert labels["io.torchstack.input-hash"] == "$TORCHSTACK_INPUT_HASH"


def test_final_user_is_not_root(matrix: Matrix) -> None:
    for image in matrix.images:
        final = stages(dockerfile(image, matrix))[-1]
        users = [args for keyword, args in final if keyword == "USER"]
        assert users, f"{image.id}: no USER in the final stage"
        assert users[-1].split(":")[0] not in ("0", "root"), image.id
        # Only metadata follows it: nothing else runs or changes files.
        last = max(n for n, (keyword, _) in enumerate(final) if keyword == "USER")
        assert {k for k, _ in final[last:]} <= {"USER", "WORKDIR", "CMD", "ENTRYPOINT"}, image.id


def test_build_inputs_stay_in_the_build_stage(matrix: Matrix) -> None:
    for image in matrix.images:
        split = stages(dockerfile(image, matrix))
        assert len(split) >= 3, f"{image.id}: not multi-stage"
        earlier = [i for stage in split[:-1] for i in stage]
        final = split[-1]
        for keyword, args in final:
            assert not (keyword == "ARG" and args.startswith(("PIP_INDEX_URL", "TORCH_INDEX_URL")))
            assert not (keyword == "COPY" and "build-inputs/" in args), image.id
            assert not (keyword == "RUN" and "install.sh" in args), image.id
        assert ("ARG", f"PIP_INDEX_URL={image.pip_index}") in earlier
        assert ("ARG", f"TORCH_INDEX_URL={image.torch_index}") in earlier
        assert any(k == "COPY" and a.startswith("build-inputs/") for k, a in earlier)
        assert ("COPY", "--from=builder /layer-delta/ /") in final


def test_parent_and_base_arguments(matrix: Matrix) -> None:
    for image in matrix.images:
        split = stages(dockerfile(image, matrix))
        global_args = [a for k, a in split[0] if k == "ARG"]
        froms = [stage[0][1] for stage in split[1:]]
        if image.parent_id is None:
            assert global_args == [f"BASE_IMAGE={image.base_image}"]
            assert froms[0] == "${BASE_IMAGE} AS runtime"
        else:
            assert global_args == [f"PARENT_IMAGE={matrix.local_tag(image.parent_id)}"]
            assert froms == ["${PARENT_IMAGE} AS builder", "${PARENT_IMAGE}"]


def test_requirements_pin_the_matched_torch_family(matrix: Matrix) -> None:
    compat = load_compat()
    for image in matrix.images:
        files = render_image(image, matrix)
        local = "" if image.index_kind == "pypi" else f"+{image.cuda_tag}"
        for line in files["torch-requirements.txt"].splitlines():
            name, version = line.split("==")
            assert version.endswith(local)
            expected = image.torch if name == "torch" else compat.paired_version(image.torch, name)
            assert version == expected + local
        assert files["requirements.txt"].splitlines() == list(image.requirements)
        assert all("==" in line for line in files["requirements.txt"].splitlines())
    vision = matrix.by_id()["torch2.9.1-cu126-py3.11-vision"]
    assert render_image(vision, matrix)["torch-requirements.txt"] == "torchvision==0.24.1+cu126\n"


# --- render and render --check on a copy of the repo matrix --------------------------------

@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copy(REPO / "matrix.yaml", tmp_path / "matrix.yaml")
    shutil.copytree(REPO / "layers", tmp_path / "layers")
    return tmp_path


def run(root: Path, *args: str) -> int:
    return main(["--matrix", str(root / "matrix.yaml"), "render", *args])


def test_render_then_check_passes(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(copy) == 0
    matrix = load_matrix(copy / "matrix.yaml")
    assert sorted(p.name for p in (copy / "images").iterdir()) == sorted(matrix.by_id())
    capsys.readouterr()
    assert run(copy, "--check") == 0
    assert "images/ is up to date" in capsys.readouterr().out
    assert run(copy) == 0  # a second render changes nothing
    assert "0 files changed, 0 removed" in capsys.readouterr().out


def test_check_lists_a_changed_file(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(copy) == 0
    changed = copy / "images/torch2.9.1-cu128-py3.11-vision/Dockerfile"
    changed.write_text(changed.read_text() + "RUN echo hand-edited\n")
    capsys.readouterr()
    assert run(copy, "--check") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "images/ is stale (1 files)" in err
    assert "differs: images/torch2.9.1-cu128-py3.11-vision/Dockerfile" in err
    assert "tip: run `torchstack render`" in err
    assert changed.read_text().endswith("hand-edited\n")  # --check writes nothing


def test_check_lists_missing_and_extra_files(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(copy) == 0
    (copy / "images/torch2.9.1-cu126-py3.11-base/requirements.txt").unlink()
    (copy / "images/torch2.9.1-cu126-py3.11-base/notes.txt").write_text("mine\n")
    # A CA bundle dropped in for a plain `docker build` is not stale.
    (copy / "images/torch2.9.1-cu126-py3.11-base/build-inputs/ca-bundle.crt").write_text("x\n")
    capsys.readouterr()
    assert run(copy, "--check") == 2
    err = capsys.readouterr().err
    assert "missing: images/torch2.9.1-cu126-py3.11-base/requirements.txt" in err
    assert "extra:   images/torch2.9.1-cu126-py3.11-base/notes.txt" in err
    assert "ca-bundle.crt" not in err


def test_render_removes_orphans_it_rendered(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(copy) == 0
    orphan = copy / "images/torch2.8.0-cu128-py3.11-base"
    shutil.copytree(copy / "images/torch2.9.1-cu128-py3.11-base", orphan)
    foreign = copy / "images/handmade"
    foreign.mkdir()
    (foreign / "Dockerfile").write_text("FROM scratch\n")
    capsys.readouterr()
    assert run(copy, "--check") == 2
    err = capsys.readouterr().err
    assert "extra:   images/torch2.8.0-cu128-py3.11-base/Dockerfile" in err
    assert run(copy) == 0
    assert "removed images/torch2.8.0-cu128-py3.11-base" in capsys.readouterr().out
    assert not orphan.exists()
    assert (foreign / "Dockerfile").exists()  # not rendered by torchstack: left alone


def test_render_follows_a_layer_change(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(copy) == 0
    layer = copy / "layers/vision/layer.yaml"
    layer.write_text(layer.read_text().replace("pillow==11.3.0", "pillow==11.2.1"))
    capsys.readouterr()
    assert run(copy, "--check") == 2
    err = capsys.readouterr().err
    assert err.count("differs:") == 3  # requirements.txt of the three vision images
    assert "differs: images/torch2.9.1-cu126-py3.11-vision/requirements.txt" in err


def test_committed_images_are_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--matrix", str(REPO / "matrix.yaml"), "render", "--check"])
    assert code == 0, capsys.readouterr().err

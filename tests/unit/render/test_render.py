"""Rendering: golden files for a root, a vision, an nlp and a legacy image; properties every
rendered Dockerfile must have; `render --check` and orphan removal.

Regenerate the golden files after an intended change, then review the diff:
    UPDATE_GOLDEN=1 python3 -m pytest tests/unit/test_render.py
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from importlib import resources
from pathlib import Path

import pytest

from tests.paths import REPO
from torchstack.cli import main
from torchstack.config.compat import load_compat
from torchstack.config.matrix import load_matrix
from torchstack.config.model import ImageSpec, Matrix
from torchstack.lock.pylock import read_lock
from torchstack.render.dockerfile import (
    SECRET_IDS,
    TEMPLATES,
    UV_VERSION,
    UV_WHEEL_SHA256,
    render_image,
)
from torchstack.render.groups import own_dists

GOLDEN = REPO / "tests" / "unit" / "golden"
GOLDEN_IDS = [
    "torch2.9.1-cu128-py3.11-base",  # root, wheels from PyPI
    "torch2.9.1-cu126-py3.11-vision",  # extension, wheels from the PyTorch index
    "torch2.9.1-cu128-py3.11-nlp",  # extension with env
    "torch2.7.1-cu118-py3.11-base",  # legacy
]
# The packaged templates and the lock are the same in every context: compared to their
# sources, not to goldens.
SHARED = {*TEMPLATES, "pylock.toml"}
HASH_PIN = re.compile(r"^[a-z0-9-]+==[\w.+!]+ --hash=sha256:[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix(REPO / "matrix.yaml")


def dockerfile(image: ImageSpec, matrix: Matrix) -> str:
    return render_image(image, matrix)["Dockerfile"]


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
            if relative not in SHARED:
                (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                (folder / relative).write_text(text, encoding="utf-8")
    stored = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert stored == set(rendered) - SHARED, "run with UPDATE_GOLDEN=1 to regenerate"
    for relative in sorted(stored):
        golden = (folder / relative).read_text(encoding="utf-8")
        assert rendered[relative] == golden, (
            f"{image_id}/{relative} differs from tests/unit/golden; if the change is intended,"
            " rerun with UPDATE_GOLDEN=1 and review the diff")
    templates = resources.files("torchstack.render").joinpath("templates")
    for name in TEMPLATES:
        assert rendered[name] == templates.joinpath(name).read_text()


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


def test_install_steps_get_inputs_as_secrets_and_uv_as_a_mount(matrix: Matrix) -> None:
    for image in matrix.images:
        split = stages(dockerfile(image, matrix))
        final = split[-1]
        runs = [args for keyword, args in final if keyword == "RUN"]
        installs = [a for a in runs if "install-group.sh" in a]
        assert all(keyword not in ("ARG", "COPY", "ADD") or "index" not in args.lower()
                   for keyword, args in final), image.id
        assert not any(k in ("COPY", "ADD") and "uv" in a.split() for k, a in final), image.id
        for args in installs:
            for secret in SECRET_IDS:
                assert f"--mount=type=secret,id={secret}," in args, (image.id, secret)
            assert "--mount=type=bind,from=uv,source=/uv" in args
            assert "--mount=type=cache,id=torchstack-uv," in args
        uv_stage = next(stage for stage in split[1:] if stage[0][1].endswith(" AS uv"))
        fetch = " ".join(a for k, a in uv_stage if k == "RUN")
        assert f"fetch-uv.py {UV_VERSION} {UV_WHEEL_SHA256} " in fetch
        if read_lock(matrix, image) is None:  # refused, never installed without a lock
            assert not installs and any("has no lock yet" in a and "exit 1" in a for a in runs)
        else:
            assert installs, image.id


def test_stages(matrix: Matrix) -> None:
    for image in matrix.images:
        split = stages(dockerfile(image, matrix))
        global_args = [a for k, a in split[0] if k == "ARG"]
        froms = [stage[0][1] for stage in split[1:]]
        if image.parent_id is None:
            assert global_args == [f"BASE_IMAGE={image.base_image}"]
            assert froms == ["${BASE_IMAGE} AS os", "os AS uv", "os"]
        else:
            assert global_args == [f"PARENT_IMAGE={matrix.local_tag(image.parent_id)}"]
            assert froms == ["${PARENT_IMAGE} AS parent", "parent AS uv", "parent"]


def test_groups_install_exactly_what_the_image_adds_to_its_parent(matrix: Matrix) -> None:
    compat = load_compat()
    locked = [i for i in matrix.images if read_lock(matrix, i) is not None]
    assert {i.id for i in locked} >= {"torch2.9.1-cu128-py3.11-base",
                                      "torch2.9.1-cu128-py3.11-vision"}
    for image in locked:
        files = render_image(image, matrix)
        lock = read_lock(matrix, image)
        assert lock is not None
        parent = matrix.by_id()[image.parent_id] if image.parent_id else None
        parent_lock = read_lock(matrix, parent) if parent else None
        lines = [line for name, text in sorted(files.items()) if name.startswith("groups/")
                 for line in text.splitlines()]
        assert all(HASH_PIN.match(line) for line in lines), image.id
        installed = {line.split(" ")[0] for line in lines}
        inherited = {f"{d.name}=={d.version}" for d in (parent_lock.dists if parent_lock else ())}
        assert installed == {f"{d.name}=={d.version}" for d in lock.dists} - inherited
        assert installed.isdisjoint(inherited)
        assert len(installed) == len(own_dists(lock.dists, parent_lock.dists
                                               if parent_lock else None))
    base = render_image(matrix.by_id()["torch2.9.1-cu128-py3.11-base"], matrix)
    assert base["groups/07-torch.txt"].startswith("torch==2.9.1 --hash=sha256:")
    vision = render_image(matrix.by_id()["torch2.9.1-cu128-py3.11-vision"], matrix)
    paired = compat.paired_version("2.9.1", "torchvision")
    assert f"torchvision=={paired} --hash" in vision["groups/01-vision.txt"]


# --- render and render --check on a copy of the repo matrix --------------------------------

@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copy(REPO / "matrix.yaml", tmp_path / "matrix.yaml")
    shutil.copytree(REPO / "layers", tmp_path / "layers")
    for lock in REPO.glob("images/*/pylock.toml"):  # locks are inputs, like layers/
        target = tmp_path / lock.relative_to(REPO)
        target.parent.mkdir(parents=True)
        shutil.copy(lock, target)
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
    (copy / "images/torch2.9.1-cu128-py3.11-base/groups/07-torch.txt").unlink()
    (copy / "images/torch2.9.1-cu126-py3.11-base/notes.txt").write_text("mine\n")
    capsys.readouterr()
    assert run(copy, "--check") == 2
    err = capsys.readouterr().err
    assert "missing: images/torch2.9.1-cu128-py3.11-base/groups/07-torch.txt" in err
    assert "extra:   images/torch2.9.1-cu126-py3.11-base/notes.txt" in err


def test_render_removes_orphans_it_rendered(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(copy) == 0
    orphan = copy / "images/torch2.8.0-cu128-py3.11-base"
    # An unlocked image's folder: one holding a lock is kept (test_hostile_writer.py).
    shutil.copytree(copy / "images/torch2.9.1-cu126-py3.11-base", orphan)
    assert not (orphan / "pylock.toml").exists()
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


def test_a_pin_change_fails_the_check_until_lock_runs(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(copy) == 0
    vision = "torch2.9.1-cu128-py3.11-vision"
    layer = copy / "layers/vision/layer.yaml"
    layer.write_text(layer.read_text().replace("pillow==11.3.0", "pillow==11.2.1"))
    capsys.readouterr()
    assert run(copy, "--check") == 2
    err = capsys.readouterr().err
    assert f"images/{vision}/pylock.toml: stale; run torchstack lock {vision}" in err
    # The lock stage resolves again (PyPI), then render writes the new groups: clean.
    assert main(["--matrix", str(copy / "matrix.yaml"), "lock", vision]) == 0
    assert run(copy) == 0
    assert "pillow==11.2.1 --hash=sha256:" in (copy / f"images/{vision}/groups/01-vision.txt"
                                               ).read_text()
    capsys.readouterr()
    assert run(copy, "--check") == 0, capsys.readouterr().err


def test_committed_images_are_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--matrix", str(REPO / "matrix.yaml"), "render", "--check"])
    assert code == 0, capsys.readouterr().err

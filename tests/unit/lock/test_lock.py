"""The lock file: reading the committed locks, writing them byte for byte, malformed files,
staleness after a pin / matrix / parent change, pairing and parent-superset refusals.

No network: locks are resolved in tests/integration/test_lock_uv.py. Every test works on a
temp copy of matrix.yaml, layers/ and the committed images/*/pylock.toml.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.paths import copy_matrix_and_locks
from torchstack.cli import main
from torchstack.config.matrix import load_matrix
from torchstack.config.model import Matrix
from torchstack.errors import ConfigError
from torchstack.lock.pylock import (
    check_locks,
    lock_inputs,
    lock_path,
    lock_status,
    lock_text,
    parse_lock,
    read_lock,
    validate_lock,
)
from torchstack.lock.uv import UvWheel, _best_wheel, _preferences

BASE = "torch2.9.1-cu128-py3.11-base"
VISION = "torch2.9.1-cu128-py3.11-vision"
NLP = "torch2.9.1-cu128-py3.11-nlp"
# torch 2.9.1's cp311 manylinux_2_28 wheel on PyPI (the file's own JSON metadata on PyPI).
TORCH_SHA256 = "d033ff0ac3f5400df862a51bdde9bad83561f3739ea0046e68f5401ebfa67c1b"
TORCH_SIZE = 899821446


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """matrix.yaml, layers/ and the committed locks, nothing rendered."""
    copy_matrix_and_locks(tmp_path)
    return tmp_path


def load(root: Path) -> Matrix:
    return load_matrix(root / "matrix.yaml")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# --- the committed locks ---------------------------------------------------------------------

def test_every_default_image_has_a_lock_with_a_sha256_per_wheel(tree: Path) -> None:
    matrix = load(tree)
    defaults = [s for s in matrix.images if s.default]
    assert {s.id for s in defaults} == {BASE, VISION, NLP}
    for spec in defaults:
        lock = read_lock(matrix, spec)
        assert lock is not None
        assert lock.dists and all(re.fullmatch(r"[0-9a-f]{64}", d.sha256) for d in lock.dists)
        assert all(d.filename.endswith(".whl") and d.size > 0 for d in lock.dists)
        assert [d.name for d in lock.dists] == sorted(d.name for d in lock.dists)
        assert "sdist" not in lock_path(matrix, spec).read_text()
        assert lock_status(matrix, spec) == "fresh"


def test_the_base_lock_holds_torch_pip_and_the_pins(tree: Path) -> None:
    matrix = load(tree)
    lock = read_lock(matrix, matrix.by_id()[BASE])
    assert lock is not None
    dists = lock.by_name()
    torch = dists["torch"]
    assert (torch.version, torch.sha256, torch.size) == ("2.9.1", TORCH_SHA256, TORCH_SIZE)
    assert torch.filename == "torch-2.9.1-cp311-cp311-manylinux_2_28_x86_64.whl"
    assert dists["pip"].version == "26.3" and dists["numpy"].version == "2.2.6"
    # what torch 2.9.1 itself requires on x86_64 Linux, transitively
    assert {"triton", "sympy", "networkx", "nvidia-nccl-cu12", "nvidia-cudnn-cu12"} <= set(dists)
    assert lock.index == "https://pypi.org/simple" and lock.parent_sha256 is None
    assert {"numpy==2.2.6", "pip==26.3", "torch==2.9.1"} <= set(lock.pins)
    assert list(lock.pins) == sorted(lock.pins)


def test_nlp_locks_torchcodec_and_torchaudio_paired_with_torch(tree: Path) -> None:
    matrix = load(tree)
    lock = read_lock(matrix, matrix.by_id()[NLP])
    assert lock is not None
    dists = lock.by_name()
    assert (dists["torchaudio"].version, dists["torchcodec"].version) == ("2.9.1", "0.9.1")


def test_child_locks_are_supersets_of_their_parents(tree: Path) -> None:
    matrix = load(tree)
    base = read_lock(matrix, matrix.by_id()[BASE])
    assert base is not None
    for child_id in (VISION, NLP):
        child = read_lock(matrix, matrix.by_id()[child_id])
        assert child is not None
        assert set(base.dists) <= set(child.dists)  # identical name, version, hash, url
        assert child.parent_sha256 == _sha256(lock_path(matrix, matrix.by_id()[BASE]))


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_writing_a_read_lock_gives_the_same_bytes(tree: Path) -> None:
    matrix = load(tree)
    for image_id in (BASE, VISION, NLP):
        spec = matrix.by_id()[image_id]
        lock = read_lock(matrix, spec)
        assert lock is not None
        assert lock_text(lock) == lock_path(matrix, spec).read_text(encoding="utf-8")


def test_unlocked_images_are_listed_with_their_index(tree: Path) -> None:
    stale, unlocked = check_locks(load(tree))
    assert stale == []
    assert "unlocked: torch2.9.1-cu126-py3.11-base (index https://download.pytorch.org/whl/cu126)" \
        in unlocked
    assert len(unlocked) == 8  # cu126 x3, cu130 x3, two legacy
    assert not any("cu128" in line for line in unlocked)


# --- staleness -------------------------------------------------------------------------------

def stale_line(image_id: str) -> str:
    return f"images/{image_id}/pylock.toml: stale; run torchstack lock {image_id}"


def test_a_changed_pin_makes_only_that_layers_lock_stale(tree: Path) -> None:
    edit(tree / "layers/vision/layer.yaml", "pillow==11.3.0", "pillow==11.2.1")
    stale, _ = check_locks(load(tree))
    assert stale == [stale_line(VISION)]


def test_a_changed_root_pin_makes_the_root_lock_stale(tree: Path) -> None:
    edit(tree / "layers/torch/layer.yaml", "pip==26.3", "pip==26.2")
    stale, _ = check_locks(load(tree))
    # The children's parent lock has not changed (yet): only the base is stale.
    assert stale == [stale_line(BASE)]


def test_a_changed_parent_lock_makes_the_children_stale(tree: Path) -> None:
    base_lock = tree / "images" / BASE / "pylock.toml"
    base_lock.write_text(base_lock.read_text() + "\n", encoding="utf-8")
    stale, _ = check_locks(load(tree))
    assert stale == [stale_line(VISION), stale_line(NLP)]


def test_a_changed_index_in_the_matrix_makes_every_lock_of_it_stale(tree: Path) -> None:
    edit(tree / "matrix.yaml", 'pypi: "https://pypi.org/simple"',
         'pypi: "https://mirror.example/simple"')
    stale, _ = check_locks(load(tree))
    assert stale == [stale_line(BASE), stale_line(VISION), stale_line(NLP)]


def test_reordered_pins_are_not_a_change(tree: Path) -> None:
    text = (tree / "layers/vision/layer.yaml").read_text()
    edit(tree / "layers/vision/layer.yaml",
         "  - pillow==11.3.0\n  - opencv-python-headless==4.12.0.88\n",
         "  - opencv-python-headless==4.12.0.88\n  - pillow==11.3.0\n")
    assert (tree / "layers/vision/layer.yaml").read_text() != text
    assert check_locks(load(tree))[0] == []


def test_render_check_fails_with_the_stale_line(tree: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    edit(tree / "layers/nlp/layer.yaml", "transformers==4.57.1", "transformers==4.57.0")
    assert main(["--matrix", str(tree / "matrix.yaml"), "render", "--check"]) == 2
    err = capsys.readouterr().err
    assert f"  {stale_line(NLP)}\n" in err
    assert "torchstack lock" in err.split("tip:", 1)[1]


def test_inputs_follow_the_matrix(tree: Path) -> None:
    matrix = load(tree)
    inputs = lock_inputs(matrix, matrix.by_id()[VISION])
    assert inputs.python == "3.11" and inputs.platform == "x86_64-manylinux_2_28"
    assert inputs.pins == ("opencv-python-headless==4.12.0.88", "pillow==11.3.0",
                           "torchvision==0.24.1")
    assert inputs.parent_sha256 == _sha256(tree / "images" / BASE / "pylock.toml")
    cu126 = lock_inputs(matrix, matrix.by_id()["torch2.9.1-cu126-py3.11-vision"])
    assert cu126.index == "https://download.pytorch.org/whl/cu126"
    assert cu126.extra_index == "https://pypi.org/simple"
    assert cu126.pins[-1] == "torchvision==0.24.1+cu126"
    assert cu126.parent_sha256 is None  # the cu126 base has no lock


# --- refusals --------------------------------------------------------------------------------

def test_a_torchaudio_not_paired_with_torch_is_refused(tree: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    nlp = tree / "images" / NLP / "pylock.toml"
    edit(nlp, 'name = "torchaudio"\nversion = "2.9.1"', 'name = "torchaudio"\nversion = "2.9.0"')
    for _ in range(2):  # the wheel's name and url name the version too (the strict model)
        edit(nlp, "torchaudio-2.9.1-", "torchaudio-2.9.0-")
    matrix = load(tree)
    lock = read_lock(matrix, matrix.by_id()[NLP])
    assert lock is not None
    with pytest.raises(ConfigError) as caught:
        validate_lock(matrix, matrix.by_id()[NLP], lock)
    message = caught.value.message
    assert message.startswith(f"images/{NLP}/pylock.toml: torchaudio 2.9.0 ")
    assert "torch 2.9.1" in message and "torchaudio 2.9.1" in message
    assert caught.value.exit_code == 2
    # render --check (and so lint) refuses it too
    assert main(["--matrix", str(tree / "matrix.yaml"), "render", "--check"]) == 2
    assert "torchaudio 2.9.0" in capsys.readouterr().err


def test_a_torchcodec_not_paired_with_torch_is_refused(tree: Path) -> None:
    nlp = tree / "images" / NLP / "pylock.toml"
    edit(nlp, 'name = "torchcodec"\nversion = "0.9.1"', 'name = "torchcodec"\nversion = "0.17.0"')
    for _ in range(2):
        edit(nlp, "torchcodec-0.9.1-", "torchcodec-0.17.0-")
    with pytest.raises(ConfigError, match=r"torchcodec 0\.17\.0 .* torchcodec 0\.9\.1"):
        check_locks(load(tree))


def test_a_torchvision_not_paired_with_torch_is_refused(tree: Path) -> None:
    vision = tree / "images" / VISION / "pylock.toml"
    edit(vision, 'name = "torchvision"\nversion = "0.24.1"',
         'name = "torchvision"\nversion = "0.23.0"')
    for _ in range(2):  # the wheel's name and url name the version too (the strict model)
        edit(vision, "torchvision-0.24.1-", "torchvision-0.23.0-")
    with pytest.raises(ConfigError, match=r"pylock.toml: torchvision 0\.23\.0 .* 0\.24\.1"):
        check_locks(load(tree))


def test_a_child_that_changes_a_parent_package_is_refused(tree: Path) -> None:
    vision = tree / "images" / VISION / "pylock.toml"
    edit(vision, 'name = "numpy"\nversion = "2.2.6"', 'name = "numpy"\nversion = "2.2.5"')
    for _ in range(2):  # the wheel's name and url name the version too (the strict model)
        edit(vision, "numpy-2.2.6-", "numpy-2.2.5-")
    with pytest.raises(ConfigError, match=r"keep its parent's packages.*numpy 2\.2\.6 \(parent\)"
                                          r" vs 2\.2\.5"):
        check_locks(load(tree))


@pytest.mark.parametrize(("old", "new", "expected"), [
    ('lock-version = "1.0"', 'lock-version = "2.0"', r":\d+: lock-version: expected \"1.0\""),
    ('size = 16821570, hashes = { sha256 = "ba10f84',
     'size = 16821570, hashes = { md5 = "ba10f84', r"packages\[\d+\] \(numpy\): the wheel has no"
                                                   r" sha256"),
    ('name = "numpy"\nversion = "2.2.6"\n',
     'name = "numpy"\nversion = "2.2.6"\nsdist = { url = "https://x/numpy-2.2.6.tar.gz" }\n',
     r"\(numpy\): only wheels are locked"),
    ('image = "torch2.9.1-cu128-py3.11-base"', 'image = "other"', r"names image 'other'"),
    ('[tool.torchstack]', '[tool.torchstack', r"not valid TOML: .*line \d+"),
])
def test_a_malformed_lock_names_file_line_and_key(tree: Path, old: str, new: str,
                                                  expected: str) -> None:
    path = tree / "images" / BASE / "pylock.toml"
    edit(path, old, new)
    with pytest.raises(ConfigError) as caught:
        read_lock(load(tree), load(tree).by_id()[BASE])
    assert caught.value.message.startswith(f"images/{BASE}/pylock.toml")
    assert re.search(expected, caught.value.message), caught.value.message
    assert caught.value.tip == f"run `torchstack lock {BASE}` to write it again"


def test_the_line_of_a_bad_package_is_its_own(tree: Path) -> None:
    path = tree / "images" / BASE / "pylock.toml"
    edit(path, 'hashes = { sha256 = "ba10f84', 'hashes = { sha1 = "ba10f84')
    lines = path.read_text().splitlines()
    numpy_header = next(i for i, line in enumerate(lines, start=1)
                        if line == 'name = "numpy"') - 1
    with pytest.raises(ConfigError, match=rf"pylock.toml:{numpy_header}: packages"):
        parse_lock(path.read_text(), f"images/{BASE}/pylock.toml", BASE)


# --- resolver helpers ------------------------------------------------------------------------

def _wheel(name: str) -> UvWheel:
    return {"url": f"https://files.example/{name}", "size": 1, "hashes": {"sha256": "0" * 64}}


def test_the_target_keeps_its_best_wheel() -> None:
    # What uv listed for pillow 11.3.0 and charset-normalizer 3.5.3 with --python-platform.
    pillow = ["pillow-11.3.0-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
              "pillow-11.3.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"]
    best = _best_wheel([_wheel(n) for n in pillow], "3.11")
    assert best is not None and str(best["url"]).endswith(pillow[1])
    charset = ["charset_normalizer-3.5.3-cp311-cp311-manylinux1_x86_64.manylinux_2_28_x86_64"
               ".manylinux_2_5_x86_64.whl",
               "charset_normalizer-3.5.3-cp37-abi3-manylinux1_x86_64.manylinux_2_28_x86_64"
               ".manylinux_2_5_x86_64.whl",
               "charset_normalizer-3.5.3-py3-none-any.whl"]
    best = _best_wheel([_wheel(n) for n in reversed(charset)], "3.11")
    assert best is not None and str(best["url"]).endswith(charset[0])


def test_no_wheel_for_the_target_is_none() -> None:
    wheels = ["x-1.0-cp312-cp312-manylinux_2_28_x86_64.whl",
              "x-1.0-cp311-cp311-manylinux_2_34_x86_64.whl",
              "x-1.0-cp311-cp311-macosx_11_0_arm64.whl"]
    assert _best_wheel([_wheel(n) for n in wheels], "3.11") is None


def test_preferences_carry_versions_only() -> None:
    text = _preferences({"numpy": "2.2.6", "filelock": "3.20.0"})
    assert "sha256" not in text and "url" not in text
    assert text.index('"filelock"') < text.index('"numpy"')

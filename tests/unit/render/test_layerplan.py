"""The layer plan: which locked wheels share a layer, in which order (render/groups.py)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace

from tests.paths import REPO
from torchstack.render.dockerfile import UV_VERSION
from torchstack.render.groups import NVIDIA_GROUPS, own_dists, plan_groups

MiB = 1 << 20


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    sha256: str = "0" * 64
    size: int = MiB


# The torch 2.9.1 cu128 base, as the lock lists it (sizes: the wheels', MiB, rounded).
BASE = [Wheel(n, v, size=s * MiB) for n, v, s in [
    ("filelock", "3.20.0", 1), ("nvidia-cublas-cu12", "12.8.4.1", 567),
    ("nvidia-cuda-nvrtc-cu12", "12.8.93", 84), ("nvidia-cudnn-cu12", "9.10.2.21", 674),
    ("nvidia-cufft-cu12", "11.3.3.83", 184), ("nvidia-curand-cu12", "10.3.9.90", 60),
    ("nvidia-cusolver-cu12", "11.7.3.90", 255), ("nvidia-cusparse-cu12", "12.5.8.93", 275),
    ("nvidia-cusparselt-cu12", "0.7.1", 273), ("nvidia-ml-py", "13.580.82", 1),
    ("nvidia-nccl-cu12", "2.27.5", 307), ("nvidia-nvjitlink-cu12", "12.8.93", 37),
    ("nvidia-nvshmem-cu12", "3.3.20", 119), ("numpy", "2.2.6", 16), ("pip", "26.3", 2),
    ("torch", "2.9.1", 858), ("triton", "3.5.1", 163), ("sympy", "1.14.0", 6),
]]


def names(groups: tuple) -> list[tuple[str, list[str]]]:  # type: ignore[type-arg]
    return [(g.name, [d.name for d in g.dists]) for g in groups]


def test_root_order_is_least_changing_first() -> None:
    groups = plan_groups(BASE, root=True, layer="torch")
    assert [g.name for g in groups] == ["nvidia-cudnn", "nvidia-cublas", "nvidia-nccl",
                                        "nvidia-solvers", "nvidia-other", "triton", "torch",
                                        "python-packages"]
    assert [g.position for g in groups] == list(range(1, 9))
    by_name = dict(names(groups))
    assert by_name["torch"] == ["torch"] and by_name["triton"] == ["triton"]
    # nvidia-ml-py is a small Python package (pynvml), not an NVIDIA library wheel.
    assert by_name["python-packages"] == ["filelock", "numpy", "nvidia-ml-py", "pip", "sympy"]
    assert by_name["nvidia-other"] == ["nvidia-cuda-nvrtc-cu12"]
    assert sum(len(g.dists) for g in groups) == len(BASE)


def test_no_nvidia_group_is_much_over_a_gigabyte_of_wheels() -> None:
    for group in plan_groups(BASE, root=True, layer="torch"):
        if group.name.startswith("nvidia"):
            assert group.wheel_bytes < 900 * MiB, group.name  # ~1.2 GB installed


def test_a_torch_bump_changes_only_the_torch_and_triton_slices() -> None:
    before = plan_groups(BASE, root=True, layer="torch")
    bumped = [replace(w, version="2.9.2", sha256="1" * 64) if w.name == "torch" else
              replace(w, version="3.5.2") if w.name == "triton" else w for w in BASE]
    after = plan_groups(bumped, root=True, layer="torch")
    changed = [a.name for a, b in zip(before, after, strict=True)
               if a.requirements() != b.requirements()]
    assert changed == ["triton", "torch"]


def test_an_nccl_bump_changes_only_its_group_and_a_new_family_goes_last() -> None:
    before = {g.name: g.requirements() for g in plan_groups(BASE, root=True, layer="torch")}
    bumped = [replace(w, version="2.28.1") if w.name == "nvidia-nccl-cu12" else w for w in BASE]
    bumped.append(Wheel("nvidia-newlib-cu12", "1.0"))
    after = {g.name: g.requirements() for g in plan_groups(bumped, root=True, layer="torch")}
    assert [n for n in before if before[n] != after[n]] == ["nvidia-nccl", "nvidia-other"]
    assert "nvidia-newlib-cu12==1.0" in after["nvidia-other"]


def test_cuda13_wheels_group_by_family() -> None:
    cu13 = [Wheel("nvidia-cudnn-cu13", "9.13.0.50"), Wheel("nvidia-nccl-cu13", "2.27.7")]
    assert names(plan_groups(cu13, root=True, layer="torch")) == [
        ("nvidia-cudnn", ["nvidia-cudnn-cu13"]), ("nvidia-nccl", ["nvidia-nccl-cu13"])]
    assert {fam for _, members in NVIDIA_GROUPS for fam in members}.isdisjoint({"nvidia-ml-py"})


def test_a_child_adds_one_group_of_what_its_parent_lacks() -> None:
    vision = [*BASE, Wheel("torchvision", "0.24.1"), Wheel("pillow", "11.3.0")]
    own = own_dists(vision, BASE)
    assert [d.name for d in own] == ["torchvision", "pillow"]
    groups = plan_groups(own, root=False, layer="vision")
    assert names(groups) == [("vision", ["pillow", "torchvision"])]
    assert groups[0].file == "groups/01-vision.txt"
    assert groups[0].requirements() == (f"pillow==11.3.0 --hash=sha256:{'0' * 64}\n"
                                        f"torchvision==0.24.1 --hash=sha256:{'0' * 64}\n")


def test_the_host_uv_is_the_one_builds_use() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert f"uv=={UV_VERSION}" in project["dependencies"]

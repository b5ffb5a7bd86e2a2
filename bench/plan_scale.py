"""How long load, expand and render take for a matrix of 1,000 images. Prints figures only.

    python3 bench/plan_scale.py [--repeat 3] [--profile]

The matrix is generated in a temporary folder: 5 torch releases x 2 CUDA variants x 10 OS
bases x 10 flavors (a root layer and 9 layers on it), all of them valid combinations.
Goal: the whole of load + expand + render well under 1 s, so `plan` and `render --check` stay
instant in CI and in an editor hook.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from torchstack.config.located import load_yaml  # noqa: E402
from torchstack.config.matrix import load_matrix  # noqa: E402
from torchstack.render.dockerfile import render_image  # noqa: E402
from torchstack.resolve.order import make_plan  # noqa: E402

TORCH = ["2.8.0", "2.9.0", "2.9.1", "2.10.0", "2.11.0"]  # each ships 12.6 and 12.8
CUDA = ["12.6", "12.8"]
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]  # inside every release's range
OS_BASES = 10
LEAVES = 9  # flavors on top of the root layer


def write_matrix(root: Path) -> int:
    """Write matrix.yaml and layers/ under root; returns the number of images they make."""
    bases = "\n".join(
        f"  os{n}: {{image: 'debian:bookworm-slim', python: '{PYTHONS[n % len(PYTHONS)]}'}}"
        for n in range(OS_BASES))
    flavors = "\n".join(["  base: torch", *(f"  f{n}: l{n}" for n in range(LEAVES))])
    (root / "matrix.yaml").write_text(f"""\
schema_version: 1
id_template: "torch{{torch}}-{{cuda_tag}}-{{os}}-{{flavor}}"
os_bases:
{bases}
flavors:
{flavors}
axes:
  torch: {TORCH}
  cuda: {CUDA}
  os: {[f"os{n}" for n in range(OS_BASES)]}
default_group: ["torch2.9.1-cu128-os0-*"]
registry: {{local: torchstack, push: "127.0.0.1:5000/torchstack"}}
tags:
  release: "{{torch}}-cuda{{cuda}}-{{os}}-{{flavor}}"
  candidate: "{{id}}-{{hash12}}"
  aliases:
    - {{tag: latest, default: true, flavor: base}}
checks:
  thresholds: {{shm_min_bytes: 1073741824}}
""")
    (root / "layers/torch").mkdir(parents=True)
    (root / "layers/torch/layer.yaml").write_text(
        "parent: null\ntorch_packages: [torch]\npackages: [numpy==2.2.6]\n"
        "checks: [versions, cuda, driver]\n")
    (root / "layers/torch/Dockerfile.fragment").write_text(
        "RUN useradd --uid 1000 --create-home ml\n")
    for n in range(LEAVES):
        (root / f"layers/l{n}").mkdir()
        (root / f"layers/l{n}/layer.yaml").write_text(
            f"parent: torch\ntorch_packages: [torchvision]\npackages: [pillow==11.3.0]\n"
            f"env: {{LAYER: 'l{n}'}}\nchecks: [vision]\n")
    return len(TORCH) * len(CUDA) * OS_BASES * (1 + LEAVES)


def timed(label: str, figures: dict[str, list[float]], work: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = work()
    figures.setdefault(label, []).append(time.perf_counter() - start)
    return result


def once(path: Path, figures: dict[str, list[float]]) -> int:
    timed("parse matrix.yaml", figures, lambda: load_yaml(path, path.name))
    matrix = timed("load + expand", figures, lambda: load_matrix(path))
    timed("render (in memory)", figures,
          lambda: [render_image(image, matrix) for image in matrix.images])
    timed("plan --all (render + hash)", figures, lambda: make_plan(matrix, [], everything=True))
    return len(matrix.images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is reported")
    parser.add_argument("--profile", action="store_true", help="print the top 20 functions")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        expected = write_matrix(root)
        figures: dict[str, list[float]] = {}
        count = 0
        for _ in range(args.repeat):
            count = once(root / "matrix.yaml", figures)
        print(f"{count} images (expected {expected}); best of {args.repeat} runs, seconds:")
        for label, seconds in figures.items():
            print(f"  {label:<28} {min(seconds):8.3f}")
        core = sum(min(figures[k]) for k in ("load + expand", "render (in memory)"))
        print(f"  {'load + expand + render':<28} {core:8.3f}   (goal: < 1 s)")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(once, root / "matrix.yaml", {})
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(20)


if __name__ == "__main__":
    main()

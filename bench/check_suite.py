"""Benchmark: seconds for the whole CPU-mode check suite per image, container start included
(goal: under 20 s). Prints each check's own seconds too. Never asserts on time.

Runs `python -m checks --gpu auto` in each built image of the selection (default: the default
group of matrix.yaml), exactly as `torchstack check` does. Needs the images built.

    PYTHONPATH=src:. python3 bench/check_suite.py [GLOB...] [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from torchstack import api
from torchstack.backend.docker import DockerBackend
from torchstack.check.container import run_suite

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("globs", nargs="*")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    matrix = api.load(REPO / "matrix.yaml")
    backend = DockerBackend.connect()
    with tempfile.TemporaryDirectory() as work:
        for state in api.resolve(matrix, args.globs, backend=backend).requested:
            spec, docker_id = state.spec, state.local_image_id
            if docker_id is None:
                sys.exit(f"{spec.id} is not built; run `torchstack build {spec.id}` first")
            seconds, last = [], None
            for _ in range(args.repeat):
                last = run_suite(backend, matrix, spec, docker_id, "bench", "auto", Path(work))
                seconds.append(last.duration_s)
            assert last is not None
            per_check = ", ".join(f"{c['id']} {c['duration_s']:.1f}s"
                                  for c in (last.report or {}).get("checks", []))
            print(f"{spec.id}: median {statistics.median(seconds):.1f}s over {args.repeat} runs"
                  f" (min {min(seconds):.1f}s, max {max(seconds):.1f}s), result {last.status}"
                  f" [{per_check}]")


if __name__ == "__main__":
    main()

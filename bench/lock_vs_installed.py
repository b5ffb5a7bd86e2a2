"""Benchmark: what each built image really contains against its lock (issue 11's goal:
identical name and version sets, 0 extra, 0 missing). Reads `pip list` inside each image.

    PYTHONPATH=src:. python3 bench/lock_vs_installed.py [GLOB...]
"""

from __future__ import annotations

import sys
from pathlib import Path

from torchstack.build import find_built
from torchstack.docker_backend import DockerBackend
from torchstack.lock import read_lock
from torchstack.manifests import inventory, lock_differences
from torchstack.matrix import load_matrix

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    matrix = load_matrix(ROOT / "matrix.yaml")
    backend = DockerBackend.connect()
    memo: dict[str, str | None] = {}
    print(f"{'image':<34} {'locked':>6} {'installed':>9}  differences")
    try:
        for spec in matrix.select(sys.argv[1:]):
            lock = read_lock(matrix, spec)
            docker_id = find_built(backend, matrix, spec, memo)
            if lock is None or docker_id is None:
                print(f"{spec.id:<34} {'-':>6} {'-':>9}  "
                      f"{'unlocked' if lock is None else 'not built'}")
                continue
            installed = inventory(backend, docker_id)["python"]
            differences = lock_differences(lock, installed)
            print(f"{spec.id:<34} {len(lock.dists):>6} {len(installed):>9}  "
                  f"{'; '.join(differences) or 'none'}")
    finally:
        backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

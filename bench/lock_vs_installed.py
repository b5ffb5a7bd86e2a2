"""Benchmark: what each built image really contains against its lock (issue 11's goal:
identical name and version sets, 0 extra, 0 missing). Reads `pip list` inside each image.

    PYTHONPATH=src:. python3 bench/lock_vs_installed.py [GLOB...]
"""

from __future__ import annotations

import sys
from pathlib import Path

from torchstack import api
from torchstack.backend.docker import DockerBackend
from torchstack.lock.pylock import read_lock
from torchstack.release.manifests import inventory, lock_differences

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    matrix = api.load(ROOT / "matrix.yaml")
    backend = DockerBackend.connect()
    print(f"{'image':<34} {'locked':>6} {'installed':>9}  differences")
    try:
        for state in api.resolve(matrix, sys.argv[1:], backend=backend).requested:
            spec, docker_id = state.spec, state.local_image_id
            lock = read_lock(matrix, spec)
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

"""How long `torchstack lock` takes for the default matrix with a warm resolver cache.

    python3 bench/lock_matrix.py [--repeat 3]

Works on a temporary copy of matrix.yaml, layers/ and the committed locks (images/ is never
written). One warm-up run fills uv's cache; then each run locks the default group (three
images, parents first) as `torchstack lock` does: probing the index once, then one `uv pip
compile` per image. Two figures: keeping the locked versions (the everyday re-lock) and
--upgrade (a fresh resolution). Needs PyPI. Goal: under 5 s with a warm cache.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from torchstack.config.matrix import load_matrix  # noqa: E402
from torchstack.lock.uv import LockRequest, find_uv, lock_images  # noqa: E402


def copy_tree(target: Path) -> Path:
    shutil.copy2(ROOT / "matrix.yaml", target / "matrix.yaml")
    shutil.copytree(ROOT / "layers", target / "layers")
    for lock in (ROOT / "images").glob("*/pylock.toml"):
        (target / "images" / lock.parent.name).mkdir(parents=True)
        shutil.copy2(lock, target / "images" / lock.parent.name / lock.name)
    return target / "matrix.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    uv = find_uv()
    with tempfile.TemporaryDirectory() as tmp:
        matrix = load_matrix(copy_tree(Path(tmp)))
        images = matrix.select([])
        print(f"uv {uv.version}; default group: {', '.join(i.id for i in images)}")
        for label, request in (("keep locked versions", LockRequest(environ=os.environ)),
                               ("--upgrade", LockRequest(environ=os.environ, upgrade=True))):
            lock_images(matrix, images, request, uv)  # warm-up: uv's cache, the index probe
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                outcomes = lock_images(matrix, images, request, uv)
                times.append(time.perf_counter() - start)
                failed = [o for o in outcomes if o.error]
                if failed:
                    raise SystemExit(f"lock failed: {failed[0].error}")
            per_image = ", ".join(f"{o.image_id.rsplit('-', 1)[1]} {o.seconds:.2f} s"
                                  f" ({o.dists} dists)" for o in outcomes)
            print(f"{label:22s} median {statistics.median(times):.2f} s"
                  f" (min {min(times):.2f}, max {max(times):.2f}, {args.repeat} runs);"
                  f" last run: {per_image}")


if __name__ == "__main__":
    main()

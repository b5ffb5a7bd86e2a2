"""Benchmark: a no-op rebuild of the fixture matrix (goal: 0 Docker builds, a second or less).

Builds the small fixture matrix of tests/integration (a root layer with `six`, two extensions)
once with a fresh salt, then again unchanged, and prints the seconds and Docker builds of each.
Never asserts on time. Needs a running Docker Engine and debian:bookworm-slim.

    PYTHONPATH=src:. python3 bench/build_noop.py [--keep]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.integration.dockerutil import images_in_logs, remove_test_images
from tests.integration.fixture_matrix import LOCAL_REPOSITORY, write_fixture_matrix
from torchstack.backend.docker import DockerBackend
from torchstack.cli import main


def timed_build(root: Path) -> tuple[float, int, dict[str, str]]:
    started = time.perf_counter()
    code = main(["--matrix", str(root / "matrix.yaml"), "build", "--no-progress"])
    elapsed = time.perf_counter() - started
    if code != 0:
        sys.exit(f"build failed ({code}); see {root}/.torchstack/runs/latest")
    build = json.loads((root / ".torchstack/runs/latest/build.json").read_text())
    return elapsed, build["docker_builds"], {k: v["status"] for k, v in build["images"].items()}


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the built fixture images")
    args = parser.parse_args()
    backend = DockerBackend.connect()
    with tempfile.TemporaryDirectory(prefix="torchstack-bench-") as tmp:
        root = Path(tmp) / "matrix"
        write_fixture_matrix(root, salt=f"bench-{uuid.uuid4().hex[:8]}")
        try:
            cold, cold_builds, _ = timed_build(root)
            noop, noop_builds, states = timed_build(root)
        finally:
            if not args.keep:
                remove_test_images(backend.api, LOCAL_REPOSITORY, images_in_logs([root]))
    print()
    print("benchmark: no-op rebuild of the fixture matrix (3 images)")
    print(f"  first build:   {cold:7.2f} s  {cold_builds} Docker builds")
    print(f"  no-op rebuild: {noop:7.2f} s  {noop_builds} Docker builds (goal: 0)")
    print(f"  states:        {', '.join(f'{k}={v}' for k, v in states.items())}")


if __name__ == "__main__":
    main_()

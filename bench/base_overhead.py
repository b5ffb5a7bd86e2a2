"""Benchmark: torch base image size over the bytes of its installed Python packages.

Runs `du` on the image's site-packages inside a container and compares it with the image size
(and the OS base under it): overhead % = (image size - site-packages) / site-packages.
The official pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime cannot be pulled on a host without
registry access; pass --compare IMAGE to measure it the same way where it is available locally.

    PYTHONPATH=src:. python3 bench/base_overhead.py [--image torchstack:<id>] [--compare IMAGE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from torchstack import api
from torchstack.backend.docker import DockerBackend

BASE = "torch2.9.1-cu128-py3.11-base"
OFFICIAL = "pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime"
# Bytes of every site-packages folder (a venv's or conda's) of the image's `python`.
SITE_BYTES = ("python -c \"import os, site, subprocess; dirs = [d for d in site.getsitepackages()"
              " if os.path.isdir(d)]; print(sum(int(subprocess.run(['du', '-sb', d],"
              " capture_output=True, text=True).stdout.split()[0]) for d in dirs))\"")
GB = 1e9


def measure(backend: DockerBackend, image: str) -> tuple[int, int]:
    inspected = backend.inspect(image)
    if inspected is None:
        raise LookupError(image)
    run = backend.run_container(image, ["sh", "-c", SITE_BYTES], mounts={}, env={},
                                shm_size="64m", gpus=False, timeout_s=300)
    if run.exit_code != 0:
        sys.exit(f"measuring {image} failed: {run.stderr.strip()}")
    return int(inspected["Size"]), int(run.stdout.split()[0])


def report(name: str, size: int, packages: int) -> None:
    overhead = (size - packages) / packages
    print(f"  {name}")
    print(f"    image size:        {size / GB:6.2f} GB")
    print(f"    site-packages:     {packages / GB:6.2f} GB")
    print(f"    everything else:   {(size - packages) / GB:6.2f} GB -> overhead {overhead:.1%}")


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", type=Path, default=Path("matrix.yaml"))
    parser.add_argument("--image", help=f"image to measure (default: the built {BASE})")
    parser.add_argument("--compare", default=OFFICIAL, help="a second image, if present locally")
    args = parser.parse_args()
    backend = DockerBackend.connect()
    matrix = api.load(args.matrix)
    spec = matrix.by_id()[BASE]
    image = args.image or api.resolve(matrix, [BASE], backend=backend).by_id()[BASE].local_image_id
    if image is None:
        sys.exit(f"{BASE} is not built for the current matrix; run `torchstack build {BASE}`")
    size, packages = measure(backend, image)
    print("benchmark: torch base image overhead over its Python packages")
    report(f"{BASE} ({image[7:19] if image.startswith('sha256:') else image})", size, packages)
    os_size = int((backend.inspect(spec.base_image) or {}).get("Size", 0))
    print(f"    of which OS base:  {os_size / GB:6.2f} GB ({spec.base_image})")
    try:
        report(args.compare, *measure(backend, args.compare))
    except LookupError:
        print(f"  {args.compare}: not available locally (no registry can be reached from this"
              " host), so not measured. Where it can be pulled: `docker pull` it and rerun with"
              f" --compare {args.compare}; it is measured the same way (image size vs its conda"
              " site-packages).")


if __name__ == "__main__":
    main_()

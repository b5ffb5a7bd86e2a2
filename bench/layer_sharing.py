"""Benchmark: how much the default group's images share (real torch images, built already).

For base, vision and nlp (the default group of matrix.yaml), compares the sum of the image
sizes with the bytes of their distinct layers: an extension is built FROM its parent's exact
image, so the torch layers (GBs) are stored once. Layers are told apart by the history entry
that made them (the classic builder gives each step an image ID), sizes are the daemon's.

    PYTHONPATH=src:. python3 bench/layer_sharing.py [--matrix matrix.yaml]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from torchstack import api
from torchstack.backend.docker import DockerBackend

GB = 1e9


def layer_entries(api: Any, image: str) -> dict[str, int]:
    """History entry key -> size, for every step of the image (oldest first)."""
    entries: dict[str, int] = {}
    for entry in reversed(api.history(image)):
        key = entry["Id"] if entry["Id"] != "<missing>" else (
            f"{entry['Created']}|{entry['CreatedBy']}|{entry['Size']}")
        entries[key] = int(entry["Size"])
    return entries


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", type=Path, default=Path("matrix.yaml"))
    args = parser.parse_args()
    matrix = api.load(args.matrix)
    backend = DockerBackend.connect()
    rows: list[tuple[str, str, int, list[str], dict[str, int]]] = []
    for state in api.resolve(matrix, backend=backend).requested:
        spec, docker_id = state.spec, state.local_image_id
        if docker_id is None:
            sys.exit(f"{spec.id} is not built for the current matrix; run"
                     f" `torchstack build {' '.join(matrix.default_group)}` first")
        inspected = backend.inspect(docker_id) or {}
        rows.append((spec.id, docker_id, int(inspected["Size"]),
                     list(inspected["RootFS"]["Layers"]), layer_entries(backend.api, docker_id)))
    total = sum(size for _, _, size, _, _ in rows)
    unique_entries: dict[str, int] = {}
    for *_, entries in rows:
        unique_entries.update(entries)
    unique = sum(unique_entries.values())
    layers_total = sum(len(layers) for _, _, _, layers, _ in rows)
    layers_unique = len({layer for _, _, _, layers, _ in rows for layer in layers})
    print("benchmark: layer sharing in the default group")
    for image_id, docker_id, size, layers, _ in rows:
        print(f"  {image_id:34} {docker_id[7:19]}  {size / GB:6.2f} GB  {len(layers):2} layers")
    print(f"  sum of image sizes:      {total / GB:7.2f} GB ({layers_total} layers)")
    print(f"  distinct layers, bytes:  {unique / GB:7.2f} GB ({layers_unique} layers)")
    print(f"  stored once instead of {len(rows)} times: {(total - unique) / GB:.2f} GB saved,"
          f" {unique / total:.1%} of the naive total")


if __name__ == "__main__":
    main_()

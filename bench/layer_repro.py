"""Benchmark: are the base's Python package layers reproducible? Two builds, no build cache.

Builds the torch 2.9.1 cu128 base twice through torchstack's BuildKit path from temporary
copies of images/<base>/, each with a fresh uv cache mount id and --no-cache, and compares
every layer's diff ID (`docker inspect` RootFS.Layers), beside the step that made it (`docker
history`). Goal: every Python package layer identical; the OS/apt layers are not expected to
be. When a package layer differs, its files in both images are compared where they lie (overlay2
layer directories; `docker save` would first copy each 7 GB image to dockerd's tmp): which
entries exist, and their mode, owner, mtime, size and content, so the report says exactly
what differs.

Prints figures and never passes or fails on them. Removes both images and prunes the two
builds' own cache records afterwards (see buildkit_build.py).

    PYTHONPATH=src:. python3 bench/layer_repro.py [--matrix matrix.yaml] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.buildkit_build import (
    BASE,
    INSTALL,
    base_spec,
    buildkit_build,
    cleanup_cold,
    copy_context,
)
from torchstack.backend.buildkit import find_cli
from torchstack.backend.docker import DockerBackend
from torchstack.config.matrix import load_matrix

# History entries that never make a layer (BuildKit writes "ENV ...", the classic builder
# "/bin/sh -c #(nop)  ENV ..."). WORKDIR makes one under BuildKit (empty when the directory
# exists), none under the classic builder: both pairings are tried.
METADATA = ("ENV", "LABEL", "ARG", "USER", "CMD", "ENTRYPOINT", "EXPOSE", "VOLUME", "SHELL",
            "STOPSIGNAL", "HEALTHCHECK", "ONBUILD", "MAINTAINER")
SHOW_DIFFS = 25  # member differences printed per layer


@dataclass(frozen=True)
class Layer:
    diff_id: str
    created_by: str
    size: int


def layers_of(api: Any, image_id: str) -> list[Layer]:
    """The image's layers (oldest first), each with the history entry that made it."""
    diff_ids = list(api.inspect_image(image_id)["RootFS"]["Layers"])
    history = list(reversed(api.history(image_id)))

    def instruction(entry: dict[str, Any]) -> str:
        text = " ".join(str(entry["CreatedBy"]).split())
        return text.split("#(nop) ", 1)[1] if "#(nop) " in text else text

    for workdir_is_layer in (True, False):
        empty = METADATA if workdir_is_layer else (*METADATA, "WORKDIR")
        steps = [h for h in history if int(h["Size"]) > 0
                 or not instruction(h).startswith(tuple(f"{m} " for m in empty))]
        if len(steps) == len(diff_ids):
            return [Layer(d, str(h["CreatedBy"]), int(h["Size"]))
                    for d, h in zip(diff_ids, steps, strict=True)]
    return [Layer(d, "?", 0) for d in diff_ids]  # pairing unknown: the layers alone


def step_name(created_by: str) -> str:
    text = " ".join(created_by.split())
    if INSTALL in text:
        return "install " + text.split(INSTALL, 1)[1].split()[0]
    for marker in ("/bin/sh -c ", "RUN "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text[:60]


def is_package_layer(created_by: str) -> bool:
    return INSTALL in created_by or "uv venv" in created_by


# What differs inside a layer ---------------------------------------------------------------
# `docker save` is no way to read two 7 GB images here: dockerd 20.10 writes the whole export
# to /var/lib/docker/tmp before streaming it. With the overlay2 driver each layer's files lie
# in a directory of their own (layerdb: chain ID -> cache-id -> overlay2/<id>/diff), read in
# place; every entry's type and mode, owner, mtime, size, link target and content hash.

Entry = tuple[int, int, int, int, int, str]


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The layer chain IDs (image/spec: ChainID(n) = sha256(ChainID(n-1) + " " + DiffID(n)))."""
    chains = [diff_ids[0]]
    for diff_id in diff_ids[1:]:
        chains.append("sha256:" + hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest())
    return chains


def layer_files(api: Any, image_id: str, index: int) -> dict[str, Entry] | None:
    """path -> (mode, uid, gid, mtime ns, size, link target or content sha256), or None when
    the Engine's layers cannot be read in place (another storage driver, or not root)."""
    info = api.info()
    if info.get("Driver") != "overlay2":
        return None
    root = Path(info["DockerRootDir"])
    chain = chain_ids(list(api.inspect_image(image_id)["RootFS"]["Layers"]))[index]
    try:
        cache_id = (root / "image/overlay2/layerdb/sha256" / chain.split(":")[1] / "cache-id"
                    ).read_text().strip()
        diff = root / "overlay2" / cache_id / "diff"
        found: dict[str, Entry] = {}
        for path in [diff, *sorted(diff.rglob("*"))]:
            st = path.lstat()
            what = (str(path.readlink()) if path.is_symlink() else
                    hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else "")
            found["/" + str(path.relative_to(diff)).lstrip(".")] = (
                st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_size, what)
    except OSError:
        return None
    return found


def describe_difference(first: dict[str, Entry], second: dict[str, Entry]) -> list[str]:
    fields = ("mode", "uid", "gid", "mtime_ns", "size", "content")
    lines = [f"only in build 1: {n}" for n in sorted(first.keys() - second.keys())]
    lines += [f"only in build 2: {n}" for n in sorted(second.keys() - first.keys())]
    for name in sorted(first.keys() & second.keys()):
        changed = [f"{f} {x!r} -> {y!r}" for f, x, y in zip(fields, first[name], second[name],
                                                           strict=True) if x != y]
        if changed:
            lines.append(f"{name}: {'; '.join(changed)}")
    return lines


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", type=Path, default=Path("matrix.yaml"))
    parser.add_argument("--image", default=BASE)
    args = parser.parse_args()
    matrix = load_matrix(args.matrix)
    spec = base_spec(matrix, args.image)
    cli = find_cli(os.environ)
    backend = DockerBackend.connect()
    api = backend.api
    print(f"benchmark: layer reproducibility of {spec.id}, two builds with no build cache"
          " (--no-cache, fresh uv cache mounts); shared Engine, times are noisy")
    scratch = Path(tempfile.mkdtemp(prefix="bench-repro-"))
    try:
        with cleanup_cold(backend, cli) as built:
            images = []
            for n in (1, 2):
                context = copy_context(matrix, spec, scratch / f"b{n}", f"bench-{uuid.uuid4()}")
                result = buildkit_build(cli, context, spec, scratch / f"b{n}.log", cold=True)
                built.append(result)
                images.append(result.image_id)
                print(f"  build {n}: {result.image_id[7:19]} in {result.seconds:.0f} s")
            first, second = (layers_of(api, i) for i in images)
            report(api, images, first, second)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def report(api: Any, images: list[str], first: list[Layer], second: list[Layer]) -> None:
    print(f"  {'#':>2}  {'build 1 diff ID':19}  {'build 2 diff ID':19}  {'':9}  {'MB':>6}  step")
    differing: list[tuple[int, Layer]] = []  # (index, build 1's layer)
    for n, (a, b) in enumerate(zip(first, second, strict=False), start=1):
        same = a.diff_id == b.diff_id
        kind = "package" if is_package_layer(a.created_by) else "os"
        print(f"  {n:2}  {a.diff_id[7:26]}  {b.diff_id[7:26]}  {'same' if same else 'DIFFERS':9}"
              f"  {a.size / 1e6:6.0f}  [{kind}] {step_name(a.created_by)}")
        if not same and kind == "package":
            differing.append((n - 1, a))
    if len(first) != len(second):
        print(f"  layer counts differ: {len(first)} vs {len(second)}")
    packages = [a for a in first if is_package_layer(a.created_by)]
    print(f"  package layers identical: {len(packages) - len(differing)}/{len(packages)}"
          " (goal: all)")
    if not differing:
        return
    for n, a in differing:
        one, two = (layer_files(api, image, n) for image in images)
        if one is None or two is None:
            print(f"  {step_name(a.created_by)}: its files cannot be read in place (needs root"
                  " and the overlay2 driver); compare `docker save` of both images instead")
            continue
        lines = describe_difference(one, two)
        print(f"  {step_name(a.created_by)}: {len(lines)} of {len(one)} entries differ:")
        for line in lines[:SHOW_DIFFS]:
            print(f"      {line}")


if __name__ == "__main__":
    main_()

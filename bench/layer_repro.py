"""Benchmark: are the base's Python package layers reproducible? Two builds, no build cache.

Builds the torch 2.9.1 cu128 base twice through torchstack's BuildKit path from temporary
copies of images/<base>/, each with a fresh uv cache mount id and --no-cache, and compares
every layer's diff ID (`docker inspect` RootFS.Layers), beside the step that made it (`docker
history`). Goal: every Python package layer identical; the OS/apt layers are not expected to
be. When layers differ, both images are streamed through `docker save` (nothing written to
disk) and the differing layers' tar members are compared: names, headers (mode, owner, mtime,
type, link, PAX records) and content hashes, so the report says exactly what differs.

Prints figures and never passes or fails on them. Removes both images and prunes the two
builds' own cache records afterwards (see buildkit_build.py).

    PYTHONPATH=src:. python3 bench/layer_repro.py [--matrix matrix.yaml] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench.buildkit_build import (
    BASE,
    INSTALL,
    base_spec,
    buildkit_build,
    cleanup_cold,
    copy_context,
)
from torchstack.buildkit import find_cli
from torchstack.docker_backend import DockerBackend
from torchstack.matrix import load_matrix

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


# Streaming docker save ---------------------------------------------------------------------

class HashingReader:
    """A read-only stream that hashes what passes through it (a layer tar's diff ID)."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source, self.digest = source, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.digest.update(data)
        return data

    def drain(self) -> str:
        while self.read(1 << 20):
            pass
        return "sha256:" + self.digest.hexdigest()


Member = tuple[str, int, int, int, float, bytes, str, tuple[tuple[str, str], ...], str]


def members(layer: IO[bytes]) -> dict[str, Member]:
    """name -> (type, mode, uid, gid, mtime, link, content sha256, PAX records)."""
    found: dict[str, Member] = {}
    with tarfile.open(fileobj=layer, mode="r|") as tar:
        for info in tar:
            content = ""
            if info.isreg():
                handle = tar.extractfile(info)
                content = hashlib.sha256(handle.read() if handle else b"").hexdigest()[:16]
            pax = tuple(sorted((k, str(v)) for k, v in info.pax_headers.items()))
            found[info.name] = (info.name, info.mode, info.uid, info.gid, info.mtime,
                                info.type, info.linkname, pax, content)
    return found


class StreamAdapter:
    """A file-like object over docker-py's chunk iterator (docker save streams chunks)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.buffer = chunks, b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buffer += chunk
        if size < 0:
            data, self.buffer = self.buffer, b""
        else:
            data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def saved_members(api: Any, image_id: str, wanted: set[str]) -> dict[str, dict[str, Member]]:
    """diff ID -> tar members, for the wanted layers of one image, streamed from docker save."""
    found: dict[str, dict[str, Member]] = {}
    stream = StreamAdapter(iter(api.get_image(image_id, chunk_size=1 << 20)))
    with tarfile.open(fileobj=stream, mode="r|") as outer:  # type: ignore[call-overload]
        for info in outer:
            if not info.name.endswith("layer.tar") or not info.isreg():
                continue
            handle = outer.extractfile(info)
            if handle is None:
                continue
            reader = HashingReader(handle)
            listing = members(reader)  # type: ignore[arg-type]
            diff_id = reader.drain()
            if diff_id in wanted:
                found[diff_id] = listing
    return found


def describe_difference(first: dict[str, Member], second: dict[str, Member]) -> list[str]:
    fields = ("name", "mode", "uid", "gid", "mtime", "type", "link", "pax", "content")
    lines = [f"only in build 1: {n}" for n in sorted(first.keys() - second.keys())]
    lines += [f"only in build 2: {n}" for n in sorted(second.keys() - first.keys())]
    for name in sorted(first.keys() & second.keys()):
        a, b = first[name], second[name]
        changed = [f"{f} {x!r} -> {y!r}" for f, x, y in zip(fields, a, b, strict=True) if x != y]
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
    differing: list[tuple[Layer, Layer]] = []
    for n, (a, b) in enumerate(zip(first, second, strict=False), start=1):
        same = a.diff_id == b.diff_id
        kind = "package" if is_package_layer(a.created_by) else "os"
        print(f"  {n:2}  {a.diff_id[7:26]}  {b.diff_id[7:26]}  {'same' if same else 'DIFFERS':9}"
              f"  {a.size / 1e6:6.0f}  [{kind}] {step_name(a.created_by)}")
        if not same and kind == "package":
            differing.append((a, b))
    if len(first) != len(second):
        print(f"  layer counts differ: {len(first)} vs {len(second)}")
    packages = [a for a in first if is_package_layer(a.created_by)]
    print(f"  package layers identical: {len(packages) - len(differing)}/{len(packages)}"
          " (goal: all)")
    if not differing:
        return
    print("  streaming both images through docker save to compare the differing layers...")
    one = saved_members(api, images[0], {a.diff_id for a, _ in differing})
    two = saved_members(api, images[1], {b.diff_id for _, b in differing})
    for a, b in differing:
        lines = describe_difference(one.get(a.diff_id, {}), two.get(b.diff_id, {}))
        print(f"  {step_name(a.created_by)}: {len(lines)} member differences")
        for line in lines[:SHOW_DIFFS]:
            print(f"      {line}")


if __name__ == "__main__":
    main_()

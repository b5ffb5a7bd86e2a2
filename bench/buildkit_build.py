"""Benchmark: BuildKit builds of the torch 2.9.1 cu128 base, cold and warm, and their disk use.

(a) Cold: the committed context images/<base>/ built through torchstack's BuildKit path
    (buildkit.find_cli + BuildkitCli, the CA bundle as a secret) from a temporary copy whose
    uv cache mount has a fresh id, with --no-cache; beside it, in the same run, the classic
    builder (DOCKER_BUILDKIT=0) installing the same layer groups of the same lock with
    `pip install --require-hashes --no-deps` into /opt/venv on the same OS packages.
(b) Warm: with the project's uv cache mount (id torchstack-uv) and BuildKit's cache, rebuilds
    after a change to one group's install step: a small hash-pinned package added to the last
    group (python-packages), and separately to the torch group.
(c) Peak disk of the cold BuildKit build: `df` of /var/lib/docker sampled every second (the
    Engine is shared, so other builds add noise), and BuildKit's own accounting of what the
    build added (its cache records, the cache mount included).

Prints figures and never passes or fails on them. Everything it builds is removed afterwards,
including the cold build's cache mount and cache records (pruned one by one, by record ID, and
only those that this run created); the project's torchstack-uv cache is never touched.

    PYTHONPATH=src:. python3 bench/buildkit_build.py [--matrix matrix.yaml] [--skip-classic]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from torchstack.backend.buildkit import BuildkitCli, BuildRequest, Secret, find_cli
from torchstack.backend.docker import DockerBackend
from torchstack.config.matrix import load_matrix
from torchstack.config.model import ImageSpec, Matrix
from torchstack.lock.pylock import read_lock
from torchstack.render.dockerfile import EPOCH, layer_groups

BASE = "torch2.9.1-cu128-py3.11-base"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PROJECT_CACHE = "id=torchstack-uv"
INSTALL = f"install-group.sh {EPOCH} "  # an install step's command, before its group
DOCKER_ROOT = "/var/lib/docker"
# One small, pure-Python, hash-pinned wheel: the "change to one layer's install step".
EXTRA_LINE = ("six==1.17.0"
              " --hash=sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274\n")
# What the issue measured before BuildKit (classic builder, shared/facts/torch-cuda.md).
CLASSIC_BEFORE_S = 4 * 60 + 51
# GitHub-hosted standard Linux runners: "14 GB of SSD space" (GitHub's runner reference).
RUNNER_FREE_GB = 14
GB = 1e9


class ColdCli(BuildkitCli):
    """torchstack's BuildKit CLI with --no-cache: every step runs again."""

    def command(self, request: BuildRequest, iidfile: Path, metadata: Path) -> list[str]:
        args = super().command(request, iidfile, metadata)
        return [*args[:-1], "--no-cache", args[-1]]


@dataclass(frozen=True)
class Built:
    image_id: str
    seconds: float
    log: Path
    window: tuple[float, float]  # wall-clock start and end, to tell its cache records


def base_spec(matrix: Matrix, image: str = BASE) -> ImageSpec:
    spec = matrix.by_id().get(image)
    if spec is None:
        sys.exit(f"{image} is not in {matrix.root / 'matrix.yaml'}")
    return spec


def copy_context(matrix: Matrix, spec: ImageSpec, dest: Path, cache_id: str | None) -> Path:
    """A copy of the committed context; with a cache id, its uv cache mount is a fresh one."""
    context = dest / spec.id
    shutil.copytree(matrix.images_dir / spec.id, context)
    if cache_id is not None:
        dockerfile = context / "Dockerfile"
        text = dockerfile.read_text()
        if PROJECT_CACHE not in text:
            sys.exit(f"{dockerfile}: no `{PROJECT_CACHE}` cache mount to replace")
        dockerfile.write_text(text.replace(PROJECT_CACHE, f"id={cache_id}"))
    return context


def buildkit_build(cli: BuildkitCli, context: Path, spec: ImageSpec, log: Path, *,
                   cold: bool, args: dict[str, str] | None = None) -> Built:
    """One build through torchstack's BuildKit path; exits with the log's tail on failure."""
    runner = ColdCli(cli.path, cli.mode, cli.docker_host) if cold else cli
    request = BuildRequest(context, {"BASE_IMAGE": spec.base_image, **(args or {})},
                           (Secret("ca-bundle", src=CA_BUNDLE),))
    started, wall = time.monotonic(), time.time()
    with log.open("w") as out:

        def write(line: str) -> None:
            out.write(line + "\n")

        result = runner.build(request, write)
    seconds = time.monotonic() - started
    if result.image_id is None:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        sys.exit(f"BuildKit build of {context} failed: {result.error}\n{tail}")
    return Built(result.image_id, seconds, log, (wall, time.time()))


# The classic-builder comparison -------------------------------------------------------------

def fetch_wheel(url: str, sha256: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=120) as answer:
        data = answer.read()
    if hashlib.sha256(data).hexdigest() != sha256:
        sys.exit(f"{url}: sha256 differs from the lock")
    dest.write_bytes(data)


def classic_context(matrix: Matrix, spec: ImageSpec, dest: Path) -> Path:
    """The same OS packages, then pip installing each layer group of the lock, one RUN each."""
    lock = read_lock(matrix, spec)
    groups = layer_groups(spec, lock, None)
    if lock is None or not groups:
        sys.exit(f"{spec.id} has no lock; run `torchstack lock {spec.id}`")
    context = dest / "classic"
    (context / "groups").mkdir(parents=True)
    pip = lock.by_name()["pip"]
    fetch_wheel(pip.url, pip.sha256, context / pip.filename)
    shutil.copy(CA_BUNDLE, context / "ca-bundle.crt")  # this throwaway build only
    fragment = (matrix.root / "layers" / spec.layer / "Dockerfile.fragment").read_text()
    wheel = f"/tmp/bench/{pip.filename}"
    lines = [f"FROM {spec.base_image}", fragment.rstrip(),
             f"COPY ca-bundle.crt {pip.filename} /tmp/bench/",
             f"RUN python3 -m venv --without-pip /opt/venv && /opt/venv/bin/python {wheel}/pip"
             f" install --no-index --no-deps --no-cache-dir {wheel}",
             "COPY groups/ /tmp/bench/groups/",
             "ENV PIP_CERT=/tmp/bench/ca-bundle.crt PIP_NO_CACHE_DIR=1"
             " PIP_DISABLE_PIP_VERSION_CHECK=1"]
    for group in groups:
        (context / group.file).write_text(group.requirements())
        lines.append(f"RUN /opt/venv/bin/pip install --require-hashes --no-deps -r"
                     f" /tmp/bench/{group.file}")
    (context / "Dockerfile").write_text("\n".join(lines) + "\n")
    return context


def classic_build(cli: BuildkitCli, context: Path, tag: str, log: Path) -> float:
    env = {**os.environ, "DOCKER_HOST": cli.docker_host, "DOCKER_BUILDKIT": "0"}
    started = time.monotonic()
    with log.open("w") as out:
        code = subprocess.run([cli.path, "build", "--no-cache", "--rm", "--force-rm", "-t", tag,
                               str(context)], stdout=out, stderr=subprocess.STDOUT, env=env,
                              check=False).returncode
    seconds = time.monotonic() - started
    if code != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        sys.exit(f"classic build failed (status {code}):\n{tail}")
    return seconds


# Disk and BuildKit's cache records -----------------------------------------------------------

class DiskSampler:
    """Peak of `df` used bytes on the Engine's disk, sampled every second in a thread."""

    def __init__(self, path: str = DOCKER_ROOT, every_s: float = 1.0) -> None:
        self.path, self.every_s = path, every_s
        self.start = self.peak = shutil.disk_usage(path).used
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, shutil.disk_usage(self.path).used)

    def __enter__(self) -> DiskSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.end = shutil.disk_usage(self.path).used


def records(api: Any) -> dict[str, dict[str, Any]]:
    return {r["ID"]: r for r in api.df().get("BuildCache") or []}


@dataclass(frozen=True)
class ColdRecords:
    """The cache records cold builds made. A --no-cache build starts a new chain right on the
    OS base image's record (a warm build hangs its records under existing ones) and, with a
    fresh cache id, a new cache mount: both created while it ran. `ambiguous` says another
    cold build ran at the same time; then nothing is pruned."""

    ids: tuple[str, ...]  # children first
    layer_bytes: int
    mount_bytes: int
    ambiguous: str | None


def created_at(record: dict[str, Any]) -> float:
    stamp = datetime.strptime(record["CreatedAt"][:19], "%Y-%m-%dT%H:%M:%S")
    return stamp.replace(tzinfo=UTC).timestamp()


def cold_records(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]],
                 windows: list[tuple[float, float]]) -> ColdRecords:
    new = {i: r for i, r in after.items() if i not in before}

    def during(record: dict[str, Any]) -> bool:
        return any(start - 2 <= created_at(record) <= end + 1 for start, end in windows)

    def on_os_base(record: dict[str, Any]) -> bool:
        """A step run right on a one-layer image (the OS base), not on a parent image that
        another build imported (those chains hang under the base record too)."""
        parent = after.get(record.get("Parent") or "") or before.get(record.get("Parent") or "")
        return (parent is not None and not parent.get("Parent")
                and parent["Description"].startswith("from ")
                and not record["Description"].startswith("from "))

    roots = [i for i, r in new.items() if r["Type"] == "regular" and on_os_base(r) and during(r)]
    mounts = [i for i, r in new.items() if r["Type"] == "exec.cachemount" and during(r)]
    children: dict[str, list[str]] = {}
    for record_id, record in new.items():
        children.setdefault(record.get("Parent") or "", []).append(record_id)
    chain: list[str] = []

    def walk(record_id: str) -> None:
        for child in children.get(record_id, []):
            walk(child)
        chain.append(record_id)  # after its children: a record cannot go while one holds it

    for root in roots:
        walk(root)
    ambiguous = None
    if len(roots) != len(windows) or len(mounts) != len(windows):
        ambiguous = (f"{len(roots)} new chains on the OS base and {len(mounts)} new cache mounts"
                     f" appeared while {len(windows)} cold builds ran: another cold build ran")
    return ColdRecords(tuple(chain + mounts), sum(new[i]["Size"] for i in chain),
                       sum(new[i]["Size"] for i in mounts), ambiguous)


def prune_records(cli: BuildkitCli, ids: tuple[str, ...]) -> int:
    """Prune exactly these cache records: dockerd turns `--filter id=X` into BuildKit's
    `id~=X`, and a 25-character record ID matches only itself. Returns bytes reclaimed."""
    env = {**os.environ, "DOCKER_HOST": cli.docker_host}
    reclaimed = 0
    for record_id in ids:
        if len(record_id) < 20 or not record_id.isalnum():
            continue  # never a short or odd filter that could match other records
        done = subprocess.run([cli.path, "builder", "prune", "--force", "--filter",
                               f"id={record_id}"], capture_output=True, text=True, env=env,
                              check=False)
        for line in done.stdout.splitlines():
            if line.startswith("Total reclaimed space:"):
                reclaimed += parse_size(line.split(":", 1)[1].strip())
    return reclaimed


def parse_size(text: str) -> int:
    units = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * units[unit])
    return 0


@contextlib.contextmanager
def cleanup_cold(backend: DockerBackend, cli: BuildkitCli,
                 report: Callable[[ColdRecords], None] | None = None) -> Iterator[list[Built]]:
    """Yields a list to put cold builds in; afterwards removes their images (by ID, only
    those built here) and prunes their own cache records."""
    before = records(backend.api)
    built: list[Built] = []
    try:
        yield built
    finally:
        for done in built:
            with contextlib.suppress(Exception):
                backend.api.remove_image(done.image_id, force=False)
        found = cold_records(before, records(backend.api), [b.window for b in built])
        if report is not None:
            report(found)
        if found.ambiguous:
            print(f"  cache records left in place: {found.ambiguous}")
        else:
            freed = prune_records(cli, found.ids)
            print(f"  pruned this run's {len(found.ids)} cache records (cache mount included):"
                  f" {freed / GB:.2f} GB reclaimed")


# The benchmark ----------------------------------------------------------------------------

def warm_rebuild(cli: BuildkitCli, matrix: Matrix, spec: ImageSpec, scratch: Path,
                 group_suffix: str, backend: DockerBackend) -> float:
    where = scratch / f"warm-{group_suffix}"
    context = copy_context(matrix, spec, where, None)
    group = next((p for p in sorted((context / "groups").iterdir())
                  if p.stem.endswith(group_suffix)), None)
    if group is None:
        sys.exit(f"{context}/groups has no group named *{group_suffix}")
    group.write_text(group.read_text() + EXTRA_LINE)
    built = buildkit_build(cli, context, spec, where / "build.log", cold=False)
    ran, cached = install_steps(built.log)
    rebuilt = [g for g in ran if g not in cached]
    print(f"  rebuild after a change to {group.name}: {built.seconds:6.1f} s"
          f" (groups from cache: {len(cached)}, rebuilt: {', '.join(rebuilt) or 'none'})")
    backend.api.remove_image(built.image_id, force=False)
    return built.seconds


def install_steps(log: Path) -> tuple[list[str], set[str]]:
    """The install groups a build's plain log shows (`#N [stage i/n] RUN ... GROUP ...`) and
    those BuildKit answered from its cache (`#N CACHED`)."""
    names: dict[str, str] = {}
    cached: set[str] = set()
    for line in log.read_text().splitlines():
        head, _, rest = line.partition(" ")
        if rest.startswith("[") and INSTALL in rest:
            names[head] = rest.split(INSTALL, 1)[1].split()[0]
        elif rest == "CACHED" and head in names:
            cached.add(names[head])
    return list(dict.fromkeys(names.values())), cached


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", type=Path, default=Path("matrix.yaml"))
    parser.add_argument("--image", default=BASE)
    parser.add_argument("--skip-classic", action="store_true")
    args = parser.parse_args()
    matrix = load_matrix(args.matrix)
    spec = base_spec(matrix, args.image)
    cli = find_cli(os.environ)
    backend = DockerBackend.connect()
    print(f"benchmark: BuildKit build of {spec.id} ({cli.describe()}); the Engine and its 2"
          " cores are shared, so times are noisy")
    scratch = Path(tempfile.mkdtemp(prefix="bench-buildkit-"))
    tag = f"torchstack-bench:classic-{uuid.uuid4().hex[:8]}"
    try:
        def show(found: ColdRecords) -> None:
            print(f"  BuildKit's records of the cold build: layers {found.layer_bytes / GB:.2f}"
                  f" GB + uv cache mount {found.mount_bytes / GB:.2f} GB")

        with cleanup_cold(backend, cli, report=show) as built:
            context = copy_context(matrix, spec, scratch / "cold", f"bench-{uuid.uuid4()}")
            with DiskSampler() as disk:
                cold = buildkit_build(cli, context, spec, scratch / "cold.log", cold=True)
            built.append(cold)
            size = backend.image_size(cold.image_id)
            layers = len((backend.inspect(cold.image_id) or {})["RootFS"]["Layers"])
            print(f"  (a) cold, BuildKit + uv:          {cold.seconds:6.1f} s"
                  f"  ({size / GB:.2f} GB, {layers} layers)")
            peak = disk.peak - disk.start
        if not args.skip_classic:
            classic = classic_context(matrix, spec, scratch)
            seconds = classic_build(cli, classic, tag, scratch / "classic.log")
            size = backend.image_size(tag)
            print(f"  (a) cold, classic builder + pip:  {seconds:6.1f} s  ({size / GB:.2f} GB)")
            print(f"      ratio BuildKit/classic: {cold.seconds / seconds:.2f}x (goal <= 0.4x);"
                  f" against the 4 min 51 s measured before: "
                  f"{cold.seconds / CLASSIC_BEFORE_S:.2f}x")
            backend.remove_image(tag)
        print("  (b) warm rebuilds (project cache mount torchstack-uv, BuildKit cache), goal"
              " < 60 s:")
        warm_rebuild(cli, matrix, spec, scratch, "python-packages", backend)
        warm_rebuild(cli, matrix, spec, scratch, "torch", backend)
        print(f"  (c) peak disk of the cold build (df of {DOCKER_ROOT}, every 1 s, others'"
              f" writes included): {peak / GB:.2f} GB")
        print(f"      a GitHub-hosted runner has ~{RUNNER_FREE_GB} GB free: it must free at"
              f" least {max(0.0, peak / GB - RUNNER_FREE_GB):.1f} GB more (plus room for the"
              " saved or pushed image) before a cold base build")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        with contextlib.suppress(Exception):
            backend.remove_image(tag)


if __name__ == "__main__":
    main_()

"""Benchmark: how long a fresh Kubernetes-like node takes to pull the base, gzip vs zstd.

A node here is a PRIVATE containerd (the Debian `containerd` binary; version printed): its own
root, state, socket and config file under a temporary folder, with 127.0.0.1:5000 as a
plain-HTTP registry host (hosts.toml). The Engine's containerd and socket are never used. Each
pull is timed in two parts with `ctr`: `content fetch` (download and verify the blobs) and then
`images pull` (the content is there: resolve and unpack into the overlayfs snapshotter).

1. Publish: the image is pushed as gzip (`docker push`, what promote --compression gzip does)
   and as zstd (torchstack's own zstd writer: skopeo from the Engine, level 3), into a
   repository of this run's own; push times and registry bytes are printed.
2. Cold: an empty node (fresh root each run) pulls one form; gzip and zstd runs alternate, the
   order flipping each round; the median of --runs (>= 3) rounds.
3. Upgrade (unless --cold-only): a bench-local matrix (the project's matrix.yaml and layers/,
   axes torch 2.9.0 and 2.9.1, cuda 12.8, flavor base, local repository torchstack-bench, the
   committed 2.9.1 lock) is locked and built; both bases are published in both forms; one node
   per form pulls 2.9.0, then, --runs times, alternating forms, pulls 2.9.1 (timed) and removes
   it again (`ctr images rm --sync`: its own layers and snapshots go, 2.9.0's stay).

Disk: the script prints what it needs and stops when less is free: about 2.3x the image's
uncompressed size per node alive at once (content + snapshots; two nodes in the upgrade), plus
the registry's copies (gzip + zstd of each image; the registry frees blobs only when its
garbage collector runs, which needs it stopped: not done here, the manifests are deleted).
Prints a table; never passes or fails on time. Not part of `.ci/run` or `nox -s bench`.
Cleans up: nodes stopped and their folders removed, this run's local tags and registry
manifests deleted, the fixture's images removed.

    PYTHONPATH=src:. python3 bench/node_pull.py [--image torchstack:torch2.9.1-cu128-py3.11-base]
        [--runs 3] [--cold-only]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.buildkit_build import CA_BUNDLE, GB
from bench.layer_upgrade import LOCAL, NEW, OLD, make_fixture, run
from torchstack.backend.docker import DockerBackend
from torchstack.backend.recompress import find_zstd_publisher
from torchstack.backend.registry import base_url, fetch_manifest, split_reference

REGISTRY = "127.0.0.1:5000"
FORMS = ("gzip", "zstd")
CONTAINERD = "containerd"
CTR = "ctr"
NAMESPACE = "bench"
CONFIG = """version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""
"""
HOSTS = """server = "http://{registry}"

[host."http://{registry}"]
  capabilities = ["pull", "resolve"]
"""


@dataclass(frozen=True)
class Pull:
    fetch_s: float
    unpack_s: float
    fetched_bytes: int  # bytes the content store gained

    @property
    def total_s(self) -> float:
        return self.fetch_s + self.unpack_s


class Node:
    """A private containerd: own root, state, socket, config; stopped and removed on exit."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "containerd.sock"
        self.hosts = folder / "certs.d"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Node:
        (self.folder / "root").mkdir(parents=True)
        (self.folder / "state").mkdir()
        host_dir = self.hosts / REGISTRY
        host_dir.mkdir(parents=True)
        (host_dir / "hosts.toml").write_text(HOSTS.format(registry=REGISTRY))
        config = self.folder / "config.toml"
        config.write_text(CONFIG.format(root=self.folder / "root", state=self.folder / "state",
                                        socket=self.socket))
        log = (self.folder / "containerd.log").open("wb")
        self.process = subprocess.Popen([CONTAINERD, "--config", str(config)], stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        for _ in range(100):
            if self.socket.exists() and self.ctr(["version"], check=False) == 0:
                return self
            time.sleep(0.1)
        sys.exit(f"the private containerd did not start; see {self.folder}/containerd.log")

    def ctr(self, args: list[str], check: bool = True) -> int:
        done = subprocess.run([CTR, "--address", str(self.socket), "--namespace", NAMESPACE,
                               *args], capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            sys.exit(f"ctr {' '.join(args)} failed: {done.stderr.strip()[-800:]}")
        return done.returncode

    def content_bytes(self) -> int:
        blobs = self.folder / "root" / "io.containerd.content.v1.content" / "blobs"
        return sum(p.stat().st_size for p in blobs.rglob("*") if p.is_file())

    def pull(self, ref: str) -> Pull:
        before = self.content_bytes()
        remote = ["--plain-http", "--hosts-dir", str(self.hosts)]
        started = time.monotonic()
        self.ctr(["content", "fetch", *remote, ref])
        fetched = time.monotonic()
        self.ctr(["images", "pull", *remote, ref])
        return Pull(fetched - started, time.monotonic() - fetched, self.content_bytes() - before)

    def remove(self, ref: str) -> None:
        self.ctr(["images", "rm", "--sync", ref])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # Snapshots are plain folders (overlayfs mounts only while a container runs).
        subprocess.run(["umount", "-R", str(self.folder / "root")], capture_output=True,
                       check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def node(scratch: Path) -> Iterator[Node]:
    started = Node(scratch / f"node-{uuid.uuid4().hex[:8]}")
    try:
        yield started.start()
    finally:
        started.stop()


# Publishing -----------------------------------------------------------------------------------

def publish(backend: DockerBackend, image_id: str, repository: str, tag: str,
            pushed: list[str]) -> dict[str, float]:
    """Push `image_id` as tag-gzip and tag-zstd; seconds per form."""
    seconds = {}
    zstd = find_zstd_publisher(gzip_first=False)  # skopeo from the Engine, as documented
    for form in FORMS:
        ref = f"{REGISTRY}/{repository}:{tag}-{form}"
        pushed.append(ref)
        started = time.monotonic()
        if form == "gzip":
            backend.tag(image_id, ref)
            backend.push(ref)
            backend.remove_image(ref)  # the tag only: the image has others
        else:
            zstd.publish(image_id, ref, None)
        seconds[form] = time.monotonic() - started
    return seconds


def delete_manifest(ref: str) -> None:
    """Delete a tag's manifest (Docker or OCI) from the registry, by digest."""
    host, repository, _ = split_reference(ref)
    digest = fetch_manifest(ref).digest
    request = urllib.request.Request(f"{base_url(host)}/v2/{repository}/manifests/{digest}",
                                     method="DELETE")
    with contextlib.suppress(OSError), urllib.request.urlopen(request, timeout=60):
        pass


def compressed_bytes(ref: str) -> int:
    return sum(layer.size for layer in fetch_manifest(ref).layers)


def unpacked_bytes(backend: DockerBackend, image_id: str) -> int:
    return backend.image_size(image_id)


# Disk -----------------------------------------------------------------------------------------

def need_disk(image_bytes: int, nodes: int, images: int, scratch: Path) -> None:
    need = nodes * 2.3 * image_bytes + images * 1.1 * image_bytes
    free = shutil.disk_usage(scratch).free
    print(f"  disk: needs about {need / GB:.0f} GB free ({nodes} node(s) alive at once, the"
          f" registry's gzip and zstd copies of {images} image(s)); {free / GB:.0f} GB free")
    if free < need:
        sys.exit("not enough free disk; free some or run with --cold-only")


# The benchmark --------------------------------------------------------------------------------

def median(values: list[float]) -> float:
    return statistics.median(values)


def cold(scratch: Path, refs: dict[str, str], runs: int) -> dict[str, list[Pull]]:
    pulls: dict[str, list[Pull]] = {form: [] for form in FORMS}
    for round_ in range(runs):
        for form in FORMS if round_ % 2 == 0 else tuple(reversed(FORMS)):
            with node(scratch) as fresh:
                pull = fresh.pull(refs[form])
            pulls[form].append(pull)
            print(f"    cold {form} round {round_ + 1}: fetch {pull.fetch_s:.0f} s + unpack"
                  f" {pull.unpack_s:.0f} s = {pull.total_s:.0f} s,"
                  f" {pull.fetched_bytes / GB:.2f} GB", flush=True)
    return pulls


def upgrade(scratch: Path, old: dict[str, str], new: dict[str, str],
            runs: int) -> dict[str, list[Pull]]:
    pulls: dict[str, list[Pull]] = {form: [] for form in FORMS}
    with node(scratch) as gzip_node, node(scratch) as zstd_node:
        nodes = {"gzip": gzip_node, "zstd": zstd_node}
        for form in FORMS:
            held = nodes[form].pull(old[form])
            print(f"    {form} node holds 2.9.0 ({held.total_s:.0f} s to pull it)", flush=True)
        for round_ in range(runs):
            for form in FORMS if round_ % 2 == 0 else tuple(reversed(FORMS)):
                pull = nodes[form].pull(new[form])
                nodes[form].remove(new[form])
                pulls[form].append(pull)
                print(f"    upgrade {form} round {round_ + 1}: fetch {pull.fetch_s:.1f} s +"
                      f" unpack {pull.unpack_s:.1f} s, {pull.fetched_bytes / GB:.2f} GB",
                      flush=True)
    return pulls


def table(title: str, pulls: dict[str, list[Pull]], registry: dict[str, int]) -> None:
    print(f"\n{title} (median of {len(pulls['gzip'])} runs each, interleaved)")
    print("| form | compressed in registry | fetched | fetch | unpack | fetch + unpack |")
    print("|---|---|---|---|---|---|")
    for form in FORMS:
        rows = pulls[form]
        print(f"| {form} | {registry[form] / GB:.2f} GB"
              f" | {median([p.fetched_bytes for p in rows]) / GB:.2f} GB"
              f" | {median([p.fetch_s for p in rows]):.1f} s"
              f" | {median([p.unpack_s for p in rows]):.1f} s"
              f" | {median([p.total_s for p in rows]):.1f} s |")
    ratio = median([p.total_s for p in pulls["zstd"]]) / median([p.total_s for p in pulls["gzip"]])
    print(f"zstd / gzip, fetch + unpack: {ratio:.2f}x (goal <= 0.5x)", flush=True)


def versions() -> str:
    out = subprocess.run([CONTAINERD, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=f"torchstack:{NEW}")
    parser.add_argument("--matrix", type=Path, default=Path("matrix.yaml"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold-only", action="store_true")
    args = parser.parse_args()
    if args.runs < 3:
        sys.exit("--runs must be at least 3 (a median of fewer says little)")
    for tool in (CONTAINERD, CTR):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (Debian: apt-get install containerd)")
    backend = DockerBackend.connect()
    image_id = backend.image_id(args.image)
    if image_id is None:
        sys.exit(f"no local image {args.image}: build it (`torchstack build`) first")
    repository = f"t-zstd-bench-{uuid.uuid4().hex[:8]}"
    scratch = Path(tempfile.mkdtemp(prefix="bench-node-pull-", dir="/var/tmp"))
    pushed: list[str] = []
    fixture_images: list[str] = []
    size = unpacked_bytes(backend, image_id)
    print(f"benchmark: node pull of {args.image} ({size / GB:.2f} GB unpacked), gzip vs zstd,"
          f" into a private {versions()}; 2 shared cores: times are noisy")
    try:
        need_disk(size, 1 if args.cold_only else 2, 1 if args.cold_only else 3, scratch)
        seconds = publish(backend, image_id, repository, "cold", pushed)
        refs = {form: f"{REGISTRY}/{repository}:cold-{form}" for form in FORMS}
        registry = {form: compressed_bytes(refs[form]) for form in FORMS}
        print("  published: " + ", ".join(f"{form} {registry[form] / GB:.2f} GB in"
                                          f" {seconds[form]:.0f} s" for form in FORMS),
              flush=True)
        table("cold pull into an empty node", cold(scratch, refs, args.runs), registry)
        if args.cold_only:
            return
        fixture = scratch / "fixture"
        fixture.mkdir()
        matrix = make_fixture(args.matrix.resolve().parent, fixture, repository)
        cmd = [sys.executable, "-m", "torchstack", "--matrix", str(matrix)]
        print(f"\n  lock the bench-local matrix: {run([*cmd, 'lock'], scratch / 'lock.log'):.0f} s")
        run([*cmd, "render"], scratch / "render.log")
        fixture_images += [f"{LOCAL}:{OLD}", f"{LOCAL}:{NEW}"]
        built = run([*cmd, "build", "--ca-bundle", str(CA_BUNDLE), "--no-progress"],
                    scratch / "build.log")
        print(f"  build 2.9.0 and 2.9.1 bases: {built:.0f} s", flush=True)
        old_id, new_id = (backend.image_id(ref) for ref in fixture_images)
        if old_id is None or new_id is None:
            sys.exit(f"the fixture build tagged no {fixture_images}; see {scratch}/build.log")
        for tag, image in (("old", old_id), ("new", new_id)):
            seconds = publish(backend, image, repository, tag, pushed)
            print(f"  published {tag}: " + ", ".join(f"{f} {s:.0f} s" for f, s in seconds.items()),
                  flush=True)
        old = {form: f"{REGISTRY}/{repository}:old-{form}" for form in FORMS}
        new = {form: f"{REGISTRY}/{repository}:new-{form}" for form in FORMS}
        registry = {form: compressed_bytes(new[form]) for form in FORMS}
        table("upgrade: 2.9.1 base onto a node holding the 2.9.0 base",
              upgrade(scratch, old, new, args.runs), registry)
    finally:
        for ref in pushed:
            with contextlib.suppress(Exception):
                delete_manifest(ref)
        for ref in fixture_images:
            with contextlib.suppress(Exception):
                backend.remove_image(ref)
        shutil.rmtree(scratch, ignore_errors=True)
        print(f"cleaned up: nodes, {scratch}, {len(pushed)} registry manifests"
              f" ({REGISTRY}/{repository}), {len(fixture_images)} fixture images")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main_()

"""Benchmark: what a torch patch upgrade costs a registry and a node, and push/pull of the base.

1. A fixture matrix in a temporary directory (matrix.yaml + layers/ of the project, axes torch
   2.9.0 and 2.9.1, cuda 12.8, flavor base; local repository torchstack-bench, so the
   project's tags are never touched; the 2.9.1 lock copied from images/, so it keeps its
   versions) goes through `torchstack lock`, `render` and `build`: the 2.9.0 and 2.9.1 bases.
2. Bytes of the layers the two share (same diff ID), from `docker inspect` and `docker
   history`.
3. Both pushed into the local registry (127.0.0.1:5000, a repository of this run's own): the
   registry's bytes for both (unique blobs of the two manifests, config included) against one.
4. A second dockerd (own data-root, exec-root, pidfile, socket, config file, and a bridge of
   its own: `--bridge none` would delete the first Engine's docker0, which the shared Engine's
   builds need) pulls 2.9.0, then 2.9.1: the bytes it downloads are the compressed layers of
   2.9.1 whose diff IDs it lacked, read from the manifests (and counted in the pull's events).
5. Push into an empty registry (a second docker-registry on a free loopback port, in a temp
   dir) and pull into the empty second Engine of the base as built (layered) and of a single-
   layer copy of the same files (`docker export` of a container of it, `docker import`ed).

Disk: the run needs about 30 GB free (second Engine, empty registry, squashed copy, the 2.9.0
layers). Prints figures and never passes or fails on them. Removes the images, the fixture,
the second dockerd and registry with their directories, and this run's manifests in
127.0.0.1:5000 (the registry frees blobs only when its garbage collector runs, which needs it
stopped: not done).

    PYTHONPATH=src:. python3 bench/layer_upgrade.py [--matrix matrix.yaml]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import yaml

from bench.buildkit_build import CA_BUNDLE, GB
from bench.layer_repro import layers_of, step_name
from torchstack.backend.docker import DockerBackend
from torchstack.backend.registry import base_url, split_reference

OLD, NEW = "torch2.9.0-cu128-py3.11-base", "torch2.9.1-cu128-py3.11-base"
AXES = {"torch": ["2.9.0", "2.9.1"], "cuda": ["12.8"], "os": ["bookworm"], "flavor": ["base"]}
LOCAL = "torchstack-bench"
REGISTRY = "127.0.0.1:5000"
BRIDGE = "tsbench0"
BRIDGE_CIDR = "10.213.213.1/24"
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
SERVICES = Path("scripts/start-services.sh")


def run(args: list[str], log: Path | None = None, **kwargs: Any) -> float:
    """Run a command; exits with its output's tail when it fails. Returns its seconds."""
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)
    if log is not None:
        log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}):\n"
                 + "\n".join((done.stdout + done.stderr).splitlines()[-15:]))
    return time.monotonic() - started


# 1. The fixture ------------------------------------------------------------------------------

def make_fixture(project: Path, dest: Path, repository: str) -> Path:
    doc = yaml.safe_load((project / "matrix.yaml").read_text())
    doc["axes"] = AXES
    doc.pop("include", None)
    doc["tags"].pop("aliases", None)  # "2.9-cuda12.8-base" would name both torch versions
    doc["default_group"] = ["torch2.9.*-cu128-*"]
    doc["registry"] = {"local": LOCAL, "push": f"{REGISTRY}/{repository}"}
    (dest / "matrix.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    shutil.copytree(project / "layers", dest / "layers")
    kept = dest / "images" / NEW
    kept.mkdir(parents=True)
    shutil.copy(project / "images" / NEW / "pylock.toml", kept / "pylock.toml")
    return dest / "matrix.yaml"


# 3. Registry manifests -----------------------------------------------------------------------

@dataclass(frozen=True)
class Manifest:
    config: tuple[str, int]
    layers: tuple[tuple[str, int], ...]  # (compressed digest, bytes), oldest first
    diff_ids: tuple[str, ...]  # the config's rootfs, same order

    @property
    def blobs(self) -> dict[str, int]:
        return dict([self.config, *self.layers])

    @property
    def layer_bytes(self) -> int:
        return sum(size for _, size in self.layers)


def get(url: str, accept: str | None = None) -> tuple[bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return answer.read(), dict(answer.headers)


def manifest(ref: str) -> Manifest:
    host, repository, tag = split_reference(ref)
    body, _ = get(f"{base_url(host)}/v2/{repository}/manifests/{tag}", MANIFEST)
    doc = json.loads(body)
    config = (doc["config"]["digest"], int(doc["config"]["size"]))
    raw, _ = get(f"{base_url(host)}/v2/{repository}/blobs/{config[0]}")
    diff_ids = tuple(json.loads(raw)["rootfs"]["diff_ids"])
    return Manifest(config, tuple((x["digest"], int(x["size"])) for x in doc["layers"]), diff_ids)


def delete_manifest(ref: str) -> None:
    host, repository, tag = split_reference(ref)
    _, headers = get(f"{base_url(host)}/v2/{repository}/manifests/{tag}", MANIFEST)
    digest = headers.get("Docker-Content-Digest") or headers.get("docker-content-digest")
    request = urllib.request.Request(f"{base_url(host)}/v2/{repository}/manifests/{digest}",
                                     method="DELETE")
    with contextlib.suppress(OSError), urllib.request.urlopen(request, timeout=60):
        pass


# 4. A second Engine and an empty registry ---------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def second_dockerd(scratch: Path) -> Iterator[Any]:
    """A dockerd of its own on a bridge of its own; stopped and removed afterwards."""
    root = scratch / "dockerd"
    root.mkdir()
    (root / "daemon.json").write_text("{}")
    sock = root / "docker.sock"
    run(["ip", "link", "add", "name", BRIDGE, "type", "bridge"])
    process = None
    try:
        run(["ip", "addr", "add", BRIDGE_CIDR, "dev", BRIDGE])
        run(["ip", "link", "set", BRIDGE, "up"])
        log = (root / "dockerd.log").open("w")
        process = subprocess.Popen(
            ["dockerd", "--config-file", str(root / "daemon.json"), "--data-root",
             str(root / "data"), "--exec-root", str(root / "exec"), "--pidfile",
             str(root / "dockerd.pid"), "--host", f"unix://{sock}", "--bridge", BRIDGE,
             "--iptables=false", "--ip-masq=false", "--ip-forward=false",
             "--userland-proxy=false", "--log-level", "warn"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        client = None
        for _ in range(60):
            with contextlib.suppress(docker.errors.DockerException):
                client = docker.APIClient(base_url=f"unix://{sock}", timeout=900)
                break
            time.sleep(1)
        if client is None:
            sys.exit(f"the second dockerd did not start; see {root / 'dockerd.log'}")
        yield client
    finally:
        if process is not None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        subprocess.run(["ip", "link", "delete", BRIDGE], check=False, capture_output=True)
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(root))]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)


@contextlib.contextmanager
def empty_registry(scratch: Path) -> Iterator[str]:
    port = free_port()
    root = scratch / "registry"
    root.mkdir()
    config = root / "config.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                      f"    rootdirectory: {root / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\n")
    process = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        for _ in range(30):
            with contextlib.suppress(OSError):
                get(f"http://127.0.0.1:{port}/v2/")
                break
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def pull(client: Any, ref: str) -> tuple[float, int]:
    """Pull into an Engine; (seconds, layers it already had per its events)."""
    repository, _, tag = ref.rpartition(":")
    started = time.monotonic()
    had = 0
    for event in client.pull(repository, tag=tag, stream=True, decode=True):
        if "error" in event:
            sys.exit(f"pull {ref}: {event['error']}")
        had += event.get("status") == "Already exists"
    return time.monotonic() - started, had


def push(backend: DockerBackend, image: str, ref: str) -> float:
    backend.tag(image, ref)
    started = time.monotonic()
    backend.push(ref)
    return time.monotonic() - started


def engine_ok(backend: DockerBackend) -> str:
    """The first Engine answers and still has its bridge."""
    bridge = subprocess.run(["ip", "link", "show", "docker0"], capture_output=True,
                            check=False).returncode == 0
    try:
        backend.api.ping()
    except Exception as exc:
        return f"the first Engine does not answer ({exc})"
    if not bridge:
        return ("docker0 is gone: restart the first Engine (scripts/start-services.sh after"
                " stopping dockerd) and tell the lead")
    return "the first Engine answers and docker0 is there"


# The benchmark ----------------------------------------------------------------------------

def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", type=Path, default=Path("matrix.yaml"))
    args = parser.parse_args()
    project = args.matrix.resolve().parent
    backend = DockerBackend.connect()
    repository = f"torchstack-bench-{uuid.uuid4().hex[:8]}"
    scratch = Path(tempfile.mkdtemp(prefix="bench-upg-", dir="/tmp"))
    refs: list[str] = []
    local_images: list[str] = []
    print("benchmark: torch 2.9.0 -> 2.9.1 upgrade cost, and push/pull of the base (shared"
          " Engine and 2 cores: times are noisy)")
    try:
        matrix = make_fixture(project, scratch, repository)
        cmd = [sys.executable, "-m", "torchstack", "--matrix", str(matrix)]
        seconds = run([*cmd, "lock"], scratch / "lock.log")
        print(f"  torchstack lock (fixture {AXES['torch']}): {seconds:.1f} s")
        run([*cmd, "render"], scratch / "render.log")
        seconds = run([*cmd, "build", "--ca-bundle", str(CA_BUNDLE), "--no-progress"],
                      scratch / "build.log")
        local_images += [f"{LOCAL}:{OLD}", f"{LOCAL}:{NEW}"]
        print(f"  torchstack build of both bases (BuildKit and uv caches warm): {seconds:.0f} s")
        old_id, new_id = (backend.image_id(ref) for ref in local_images)
        if old_id is None or new_id is None:
            sys.exit(f"the fixture build tagged no {local_images}; see {scratch / 'build.log'}")
        shared_layers(backend, old_id, new_id)
        old_ref, new_ref = (f"{REGISTRY}/{repository}:{t}" for t in ("2.9.0", "2.9.1"))
        refs += [old_ref, new_ref]
        print(f"  push {old_ref}: {push(backend, old_id, old_ref):.0f} s;"
              f" then 2.9.1: {push(backend, new_id, new_ref):.0f} s")
        old_m, new_m = manifest(old_ref), manifest(new_ref)
        both = {**old_m.blobs, **new_m.blobs}
        ratio = sum(both.values()) / sum(new_m.blobs.values())
        print(f"  registry bytes: 2.9.1 alone {sum(new_m.blobs.values()) / GB:.2f} GB, both"
              f" {sum(both.values()) / GB:.2f} GB = {ratio:.2f}x one (goal <= 1.5x)")
        with second_dockerd(scratch) as engine:
            seconds, _ = pull(engine, old_ref)
            print(f"  second Engine: pull 2.9.0 (empty Engine) {seconds:.0f} s")
            held = set(engine.inspect_image(old_ref)["RootFS"]["Layers"])
            seconds, had = pull(engine, new_ref)
            lacked = [size for (_, size), diff in zip(new_m.layers, new_m.diff_ids, strict=True)
                      if diff not in held]
            print(f"  pull 2.9.1 onto it: {seconds:.0f} s, {len(lacked)} of {len(new_m.layers)}"
                  f" layers downloaded ({had} 'Already exists'): {sum(lacked) / GB:.2f} of"
                  f" {new_m.layer_bytes / GB:.2f} GB compressed ="
                  f" {sum(lacked) / new_m.layer_bytes:.1%} (goal <= 40%)")
            for ref in (old_ref, new_ref):
                engine.remove_image(ref)
            push_pull_layouts(backend, engine, new_id, scratch, local_images)
        print(f"  after stopping the second dockerd: {engine_ok(backend)}")
    finally:
        for ref in refs:
            with contextlib.suppress(Exception):
                delete_manifest(ref)
        for ref in [*refs, *local_images]:
            backend.remove_image(ref)
        shutil.rmtree(scratch, ignore_errors=True)


def shared_layers(backend: DockerBackend, old_id: str, new_id: str) -> None:
    old, new = layers_of(backend.api, old_id), layers_of(backend.api, new_id)
    old_ids = {layer.diff_id for layer in old}
    shared = [layer for layer in new if layer.diff_id in old_ids]
    total = sum(layer.size for layer in new)
    print(f"  layers of 2.9.1 ({len(new)}), and whether 2.9.0 has the same diff ID:")
    for layer in new:
        print(f"    {layer.size / 1e6:7.0f} MB  {'shared' if layer.diff_id in old_ids else 'new':6}"
              f"  {step_name(layer.created_by)}")
    print(f"  shared: {len(shared)} layers, {sum(x.size for x in shared) / GB:.2f} of"
          f" {total / GB:.2f} GB uncompressed ({sum(x.size for x in shared) / total:.1%})")


def push_pull_layouts(backend: DockerBackend, engine: Any, image: str, scratch: Path,
                      local_images: list[str]) -> None:
    """The base as built and as one squashed layer: push into an empty registry, pull into
    an empty Engine."""
    inspected = backend.inspect(image) or {}
    config = inspected.get("Config") or {}
    squashed = f"{LOCAL}:squashed-{uuid.uuid4().hex[:8]}"
    local_images.append(squashed)
    env = config.get("Env")
    changes = [f"ENV {e}" for e in env] if isinstance(env, list) else []
    changes += [f"USER {config['User']}"] if config.get("User") else []
    changes += [f"WORKDIR {config['WorkingDir']}"] if config.get("WorkingDir") else []
    changes += [f"CMD {json.dumps(config['Cmd'])}"] if config.get("Cmd") else []
    container = backend.api.create_container(image, command=["true"])["Id"]
    started = time.monotonic()
    try:
        export = subprocess.Popen(["/usr/bin/docker", "export", container],
                                  stdout=subprocess.PIPE)
        imported = subprocess.run(["/usr/bin/docker", "import",
                                   *[x for c in changes for x in ("--change", c)], "-", squashed],
                                  stdin=export.stdout, capture_output=True, text=True,
                                  check=False)
        export.wait()
    finally:
        backend.api.remove_container(container, force=True)
    if imported.returncode != 0 or export.returncode != 0:
        sys.exit(f"docker export | docker import failed: {imported.stderr.strip()}")
    print(f"  single-layer copy (docker export | docker import): {time.monotonic() - started:.0f}"
          " s")
    with empty_registry(scratch) as host:
        rows = []
        for name, source in (("layered", image), ("single layer", squashed)):
            ref = f"{host}/bench:{name.replace(' ', '-')}"
            local_images.append(ref)
            pushed = push(backend, source, ref)
            remote = manifest(ref)
            if source == squashed:  # 7.5 GB the pull below needs on a small disk
                backend.remove_image(ref)
                backend.remove_image(squashed)
            pulled, _ = pull(engine, ref)
            engine.remove_image(ref)
            rows.append((name, len(remote.layers), remote.layer_bytes, pushed, pulled))
    print("  empty registry / empty Engine:   layers  compressed   push s   pull s")
    for name, count, size, pushed, pulled in rows:
        print(f"    {name:30} {count:6}  {size / GB:7.2f} GB  {pushed:7.0f}  {pulled:7.0f}")


if __name__ == "__main__":
    main_()

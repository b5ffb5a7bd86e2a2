"""Promotion's verdicts: what reaches a registry and what is said about it (issue 22, item 9:
behaviours 10, 11 and 12).

The registry is a real HTTP server on loopback speaking the part of the Registry API v2 that
promotion reads back (GET a manifest by tag), so `fetch_manifest` and the identity check run for
real; the Docker Engine is a stand-in (`Engine`) whose `push` uploads a manifest naming the
tagged image's config to that server, and can be told to be refused for some tags. Each test's
docstring names the one-line bug it catches.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, cast

import pytest

from tests.httpserver import serving
from tests.paths import copy_matrix_and_locks
from torchstack.backend.docker import ContainerRun, DockerBackend
from torchstack.backend.identity import ImageInspect
from torchstack.checks import SUITE_VERSION
from torchstack.config.matrix import load_matrix
from torchstack.config.model import Matrix
from torchstack.errors import EngineError
from torchstack.lock.pylock import read_lock
from torchstack.names import HASH_LABEL
from torchstack.release.journal import Journal, Promoter
from torchstack.release.stage import promote_images
from torchstack.resolve.order import input_hash
from torchstack.resolve.records import CheckRecord, RecordStore
from torchstack.resolve.state import Resolution, resolve
from torchstack.resolve.tags import TagDecision
from torchstack.workspace.json_types import JSONObject
from torchstack.workspace.runs import RunDir


def digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class FakeImage:
    """An image as a registry holds it: one gzip layer and a config naming its diff ID. On the
    classic store its Engine ID is the config's digest, so `id` is that."""

    name: str

    @property
    def layer(self) -> bytes:
        return f"the one layer of {self.name}".encode()

    @property
    def gzip_layer(self) -> bytes:
        return gzip.compress(self.layer, mtime=0)

    @property
    def config(self) -> bytes:
        return json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                           "rootfs": {"type": "layers",
                                      "diff_ids": [digest_of(self.layer)]}}).encode()

    @property
    def id(self) -> str:
        return digest_of(self.config)

    def manifest(self) -> bytes:
        return json.dumps({
            "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "digest": self.id, "size": len(self.config)},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "digest": digest_of(self.gzip_layer), "size": len(self.gzip_layer)}],
        }).encode()

    def inspect(self) -> ImageInspect:
        """What `docker image inspect` says of it."""
        return {"Id": self.id, "Architecture": "amd64", "Os": "linux", "Config": {},
                "RootFS": {"Type": "layers", "Layers": [digest_of(self.layer)]}}


DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
CHECKED, BEFORE, FOREIGN = FakeImage("checked"), FakeImage("old"), FakeImage("other")
IMAGES = {image.id: image for image in (CHECKED, BEFORE, FOREIGN)}
IMAGE = CHECKED.id  # the checked image
OLD = BEFORE.id  # what the release tag named before
OTHER = FOREIGN.id  # someone else's image


def manifest_of(image_id: str) -> bytes:
    return IMAGES[image_id].manifest()


@dataclass
class Registry:
    """Tags -> manifest bytes, and blobs by digest, as a registry holds them; `pinned` tags
    always answer these bytes (another pusher's image, or an immutable tag that kept its old
    content)."""

    port: int = 0
    manifests: dict[str, bytes] = field(default_factory=dict)
    pinned: dict[str, bytes] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)

    def ref(self, tag: str) -> str:
        return f"127.0.0.1:{self.port}/ts:{tag}"

    def holds(self, tag: str) -> str | None:
        """The config digest (image ID) a tag serves, or None."""
        body = self.pinned.get(tag) or self.manifests.get(tag)
        return None if body is None else str(json.loads(body)["config"]["digest"])

    def upload(self, image: FakeImage) -> bytes:
        """Its blobs stored, as `docker push` does before the manifest; the manifest back."""
        for blob in (image.config, image.gzip_layer):
            self.blobs[digest_of(blob)] = blob
        return image.manifest()


def handler(registry: Registry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_GET(self) -> None:
            manifests, blobs = "/v2/ts/manifests/", "/v2/ts/blobs/"
            body: bytes | None = None
            if self.path.startswith(manifests):
                tag = self.path[len(manifests):]
                body = registry.pinned.get(tag) or registry.manifests.get(tag)
                content_type = DOCKER_MANIFEST
            elif self.path.startswith(blobs):
                body = registry.blobs.get(self.path[len(blobs):])
                content_type = "application/octet-stream"
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                return
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Docker-Content-Digest", digest_of(body))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    monkeypatch.delenv("TORCHSTACK_REGISTRY_USER", raising=False)
    monkeypatch.setattr("torchstack.release.journal.BACKOFF_S", 0.0)
    state = Registry()
    with serving(handler(state)) as server:
        state.port = server.server_port
        yield state


@dataclass
class Engine:
    """The Docker Engine promotion drives: local tags, and pushes into `registry`."""

    registry: Registry
    tags: dict[str, str] = field(default_factory=dict)  # ref -> image ID
    refused: set[str] = field(default_factory=set)  # tags the registry refuses to take
    labels: dict[str, str] = field(default_factory=dict)  # image ID -> input hash
    installed: list[dict[str, str]] = field(default_factory=list)  # what pip lists inside
    tagged: list[str] = field(default_factory=list)  # every tag() call, in order
    # Tags someone re-points at another image just before our push reads them.
    moved: dict[str, str] = field(default_factory=dict)

    def image_id(self, ref: str) -> str | None:
        if ref.startswith("sha256:"):
            return ref if ref in (IMAGE, OLD, *self.labels) else None
        return self.tags.get(ref)

    def inspect(self, ref: str) -> ImageInspect | None:
        image = self.image_id(ref)
        return IMAGES[image].inspect() if image else None

    def images_with_label(self, key: str, value: str) -> list[tuple[str, list[str]]]:
        if key != HASH_LABEL:
            return []
        return [(image, [r for r, target in self.tags.items() if target == image])
                for image, label in self.labels.items() if label == value]

    def tag(self, image: str, ref: str) -> None:
        self.tagged.append(ref)
        self.tags[ref] = image

    def remove_image(self, ref: str) -> None:
        self.tags.pop(ref, None)

    def push(self, ref: str) -> str:
        tag = ref.rsplit(":", 1)[1]
        if tag in self.refused:
            raise EngineError(f"docker push {ref} failed: denied: tag {tag} is immutable")
        self.tags.update({r: image for r, image in self.moved.items() if r == ref})
        body = self.registry.upload(IMAGES[self.tags[ref]])
        self.registry.manifests[tag] = body
        return digest_of(body)

    def run_container(self, image: str, command: list[str], *, mounts: dict[str, str],
                      env: dict[str, str], shm_size: str, gpus: bool,
                      timeout_s: float) -> ContainerRun:
        """The inventory script promote runs: pip's list, the marker line, dpkg's list."""
        return ContainerRun(0, json.dumps(self.installed) + "\n--dpkg--\nbash\t5.2.15-2\tamd64\n",
                            "", False)


def promoter(engine: Engine, journal: Journal) -> Promoter:
    return Promoter(engine, journal, push=True, on_event=lambda _: None)


# --- 10. a registry that refuses only some release tags --------------------------------------

def test_a_registry_refusing_some_release_tags_leaves_everything_ready_to_resume(
        registry: Registry, tmp_path: Path) -> None:
    """Bugs caught: _finish() forgetting the move when any tag got through (`not all(...)` for
    `not any(...)`), or putting back only the tags that had a previous image (dropping the
    `remove_image` branch): either way the next promote has nothing left to finish, and this
    host serves a release tag the registry never took."""
    engine = Engine(registry, tags={registry.ref("1.0"): OLD}, refused={"latest"})
    journal = Journal(tmp_path / "journal.json")
    decision = TagDecision("img", registry.ref("img-abc"),
                           (registry.ref("1.0"), registry.ref("latest")), "passed gpu checks")
    results = promoter(engine, journal).promote(decision, IMAGE)
    assert [(r.ref.rsplit(":", 1)[1], r.error is None) for r in results] == [
        ("img-abc", True), ("1.0", True), ("latest", False)]
    # The move is still owed, and this host is back on the previous release, as users are.
    (entry,) = journal.pending()
    assert (entry["image"], entry["docker_id"]) == ("img", IMAGE)
    assert entry["refs"] == [registry.ref("1.0"), registry.ref("latest")]
    assert entry["previous"] == {registry.ref("1.0"): OLD, registry.ref("latest"): None}
    assert engine.tags == {registry.ref("img-abc"): IMAGE, registry.ref("1.0"): OLD}

    engine.refused.clear()  # the registry takes the tag now: the next promote finishes
    resumed = promoter(engine, journal).resume()
    assert [r.error for r in resumed] == [None, None]
    assert not journal.path.exists()
    assert engine.tags == {registry.ref(t): IMAGE for t in ("img-abc", "1.0", "latest")}
    assert (registry.holds("1.0"), registry.holds("latest")) == (IMAGE, IMAGE)


# --- 11. a registry tag holding another image ------------------------------------------------

@pytest.mark.parametrize("how", ["another pusher", "local tag moved before the push"])
def test_a_registry_tag_holding_another_image_is_never_reported_as_pushed(
        registry: Registry, tmp_path: Path, how: str) -> None:
    """Bugs caught: _publish() trusting `docker push` (dropping the `not same` identity check,
    or `and` for `or`), so a tag that serves someone else's image is "pushed"; and a failed
    identity check still reported with pushed=True and the other image's digest, which the
    run's manifest then lists as this image's."""
    other = manifest_of(OTHER)
    engine = Engine(registry, tags={registry.ref("1.0"): OLD})
    if how == "another pusher":  # the registry serves another image than the one pushed
        registry.pinned["1.0"] = other
    else:  # the push uploads what the tag names by then, and reports that digest
        engine.moved[registry.ref("1.0")] = OTHER
    journal = Journal(tmp_path / "journal.json")
    decision = TagDecision("img", registry.ref("img-abc"), (registry.ref("1.0"),), "passed")
    candidate, release = promoter(engine, journal).promote(decision, IMAGE)
    assert (candidate.pushed, candidate.error) == (True, None)
    assert candidate.digest == digest_of(manifest_of(IMAGE))
    assert release.error is not None and OTHER[:19] in release.error
    assert not release.pushed and release.digest != digest_of(other)
    # Not finished: the local tag is back on the previous image and the journal keeps the move.
    assert engine.tags[registry.ref("1.0")] == OLD
    assert [e["image"] for e in journal.pending()] == ["img"]


# --- 12. installed packages that differ from the lock stop promotion ------------------------

BASE = "torch2.9.1-cu128-py3.11-base"
FACTS: JSONObject = {"torch": "2.9.1+cu128", "cuda": "12.8", "cudnn": 91002, "nccl": "2.27.5",
         "python": "3.11.9", "torchvision": None, "torchaudio": None, "torchcodec": None}


@pytest.fixture
def project(tmp_path: Path) -> Matrix:
    """matrix.yaml, layers/ and the committed locks in tmp_path (the journal goes there)."""
    return load_matrix(copy_matrix_and_locks(tmp_path))


def locked(matrix: Matrix) -> list[dict[str, str]]:
    """What pip lists in an image built from BASE's lock: its packages at their versions."""
    lock = read_lock(matrix, matrix.by_id()[BASE])
    assert lock is not None and len(lock.dists) > 10
    return [{"name": d.name, "version": d.version} for d in lock.dists]


def promote_base(matrix: Matrix, registry: Registry,
                 installed: list[dict[str, str]]) -> tuple[Any, Engine]:
    """`torchstack promote BASE` (no push) of a built image with a passing gpu record."""
    wanted = input_hash(Resolution(matrix).context_hash(matrix.by_id()[BASE]), OLD)
    engine = Engine(registry, tags={"debian:bookworm-slim": OLD, matrix.local_tag(BASE): IMAGE},
                    labels={IMAGE: wanted}, installed=installed)
    store = RecordStore(matrix.root / "records")
    store.add(CheckRecord(image_id=BASE, docker_id=IMAGE, input_hash=wanted,
                          suite_version=SUITE_VERSION, level="gpu", passed=True, facts=FACTS,
                          summary={}, report="run-0/report.json", checked_at=1.0))
    resolved = resolve(matrix, [BASE], backend=engine, store=store,
                       repository=f"127.0.0.1:{registry.port}/ts")
    assert resolved.states[0].decision.releases  # it passed: only the lock can stop it
    run = RunDir(matrix.root / "runs" / "run-1")
    run.path.mkdir(parents=True)
    outcome = promote_images(resolved, cast(DockerBackend, engine), run, push=False)
    return outcome, engine


def test_an_image_matching_its_lock_is_promoted(project: Matrix, registry: Registry) -> None:
    """The control for the test below: the same image, installed as locked, gets its tags."""
    outcome, engine = promote_base(project, registry, locked(project))
    (image,) = outcome.images
    assert image.refused is None and image.lock_problem is None
    assert outcome.error() is None
    assert {r.ref for r in image.results} <= set(engine.tags) and len(image.results) > 1


Packages = list[dict[str, str]]


def at(name: str, version: str) -> Callable[[Packages], Packages]:
    """The list with one package at another version."""
    return lambda packages: [{**p, "version": version} if p["name"] == name else p
                             for p in packages]


def without(name: str) -> Callable[[Packages], Packages]:
    return lambda packages: [p for p in packages if p["name"] != name]


def plus(name: str, version: str) -> Callable[[Packages], Packages]:
    return lambda packages: [*packages, {"name": name, "version": version}]


DIFFERENCES: dict[str, tuple[Callable[[Packages], Packages], str]] = {
    "another version": (at("numpy", "2.3.0"), "numpy 2.3.0 is installed, the lock has 2.2.6"),
    "torch of another CUDA build": (at("torch", "2.9.1+cu126"),
                                    "torch 2.9.1+cu126 is installed, the lock has 2.9.1"),
    "one not locked": (plus("Evil_Pkg", "1.0"), "evil-pkg 1.0 is installed but not locked"),
    "one missing": (without("numpy"), "numpy 2.2.6 is locked but not installed"),
}


@pytest.mark.parametrize("case", DIFFERENCES.keys())
def test_installed_packages_that_differ_from_the_lock_stop_promotion(
        project: Matrix, registry: Registry, case: str) -> None:
    """Bugs caught: _promote_one() going on with the bare inventory when the cross-check
    raises, lock_differences() dropping a kind of difference (`return extra + missing`), or
    _same_version() comparing public versions (a +cu126 torch equal to the lock's torch)."""
    change, says = DIFFERENCES[case]
    outcome, engine = promote_base(project, registry, change(locked(project)))
    (image,) = outcome.images
    assert image.refused == "installed packages differ from its lock"
    assert image.lock_problem is not None and says in image.lock_problem
    assert image.results == () and engine.tagged == []  # not even the candidate tag
    error = outcome.error()
    assert error is not None and error.exit_code == 6 and BASE in error.message
    assert not (outcome.run.path / "manifests").exists()

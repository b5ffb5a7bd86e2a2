"""Helpers for promotion tests: what a registry holds, asked without torchstack's own client.

Two independent witnesses of a pushed tag: the Registry HTTP API (urllib, here) and skopeo.
Check records are written the way `torchstack check` writes them (RecordStore.add), to stand in
for a GPU runner's `nox -s gpu_smoke` on this GPU-less machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tests.integration.dockerutil import last_build, run_cli
from tests.integration.fixture_matrix import ALPHA, change_layer, rerender
from tests.resolved import local_state
from torchstack.backend.docker import DockerBackend
from torchstack.check.container import suite_version
from torchstack.config.compat import cudnn_as_int
from torchstack.config.matrix import load_matrix
from torchstack.config.model import CheckLevel, ImageSpec
from torchstack.resolve.records import CheckRecord, RecordStore

REGISTRY = os.environ.get("TORCHSTACK_TEST_REGISTRY", "127.0.0.1:5000")
ACCEPT = ("application/vnd.docker.distribution.manifest.v2+json,"
          " application/vnd.oci.image.manifest.v1+json")
TEST_REPOSITORY = re.compile(r"^127\.0\.0\.1:\d+/torchstack-it-[0-9a-f]{12}[:@]")
ALIASES = """\
  aliases:
    - tag: "{torch_minor}-cuda{cuda}-{flavor}"
    - {tag: "v{torch_minor}", default: true, flavor: base}
    - {tag: latest, default: true, flavor: base}
"""


def registry_problem(host: str = REGISTRY) -> str | None:
    """None when the registry answers `GET /v2/`, else why not."""
    try:
        with urllib.request.urlopen(f"http://{host}/v2/", timeout=5) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except (urllib.error.URLError, OSError) as exc:
        return str(exc)


def http_manifest(ref: str) -> tuple[int, dict[str, Any] | None, str]:
    """(HTTP status, manifest, Docker-Content-Digest) of `host/repo:tag` from the Registry API."""
    name, _, tag = ref.rpartition(":")
    host, _, repository = name.partition("/")
    request = urllib.request.Request(f"http://{host}/v2/{repository}/manifests/{tag}",
                                     headers={"Accept": ACCEPT})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
            return response.status, json.loads(body), response.headers["Docker-Content-Digest"]
    except urllib.error.HTTPError as exc:
        return exc.code, None, ""


def http_config_digest(ref: str) -> str | None:
    """The config digest (= the Docker image ID) the registry serves for a tag; None on 404."""
    status, manifest, _ = http_manifest(ref)
    if status == 404:
        return None
    assert status == 200 and manifest is not None, f"{ref}: HTTP {status}"
    return str(manifest["config"]["digest"])


def skopeo_inspect(ref: str) -> tuple[str, str]:
    """(manifest digest, config digest) of a tag, as skopeo reads it."""
    assert shutil.which("skopeo"), "skopeo is not installed (scripts/start-services.sh)"
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                         capture_output=True, check=True, timeout=120).stdout
    return "sha256:" + hashlib.sha256(raw).hexdigest(), str(json.loads(raw)["config"]["digest"])


def local_id(api: Any, ref: str) -> str | None:
    try:
        return str(api.inspect_image(ref)["Id"])
    except Exception:  # docker.errors.ImageNotFound
        return None


def pull_by_digest(api: Any, repository: str, digest: str) -> str:
    """`docker pull repo@sha256:...`; returns the image ID the pulled manifest names."""
    api.pull(f"{repository}@{digest}")
    return str(api.inspect_image(f"{repository}@{digest}")["Id"])


def untag_repository(api: Any, repository: str, *, keep_last: bool = True) -> None:
    """Remove the `repository:*` tags and `repository@digest` references.

    With keep_last, a reference that is an image's last tag stays (removing it would delete
    the image, which other tests may still resolve by its candidate tag); the session's end
    removes those (`sweep_test_repositories`).
    """
    for image in api.images(name=repository):
        tags = image.get("RepoTags") or []
        ours = [r for r in [*tags, *(image.get("RepoDigests") or [])]
                if r.startswith((repository + ":", repository + "@"))]
        if keep_last and not [t for t in tags if t not in ours]:
            continue
        for ref in ours:
            with contextlib.suppress(Exception):
                api.remove_image(ref)


def sweep_test_repositories(api: Any) -> None:
    """Remove every reference into a `torchstack-it-<hex>` test repository, on any host."""
    for image in api.images():
        for ref in [*(image.get("RepoTags") or []), *(image.get("RepoDigests") or [])]:
            if TEST_REPOSITORY.match(ref):
                with contextlib.suppress(Exception):
                    api.remove_image(ref)


def built(api: Any, root: Path, image_id: str) -> tuple[str, str]:
    """(Docker image ID, input hash) the matrix in `root` resolves an image to, as check and
    promote resolve it (the shared `torchstack-it:<id>` tag may have moved to another copy)."""
    matrix = load_matrix(root / "matrix.yaml")
    state = local_state(DockerBackend(api), matrix, image_id)
    assert state.local_image_id and state.input_hash, f"{image_id} is not built for {root}"
    return state.local_image_id, state.input_hash


def rebuild_alpha(root: Path, capsys: Any) -> str:
    """Change the alpha layer (a new value each time) and build the new image."""
    spec = root / "layers/alpha/layer.yaml"
    if "TORCHSTACK_IT_CHANGE" in spec.read_text():
        spec.write_text(re.sub(r"TORCHSTACK_IT_CHANGE: '\w+'",
                               f"TORCHSTACK_IT_CHANGE: '{uuid.uuid4().hex[:8]}'", spec.read_text()))
        rerender(root)
    else:
        change_layer(root, "alpha", uuid.uuid4().hex[:8])
    code, output = run_cli(capsys, root, "build", ALPHA, "--no-progress")
    assert code == 0, output
    assert last_build(root)["images"][ALPHA]["status"] == "built"
    return str(last_build(root)["images"][ALPHA]["image_id"])


def expected_facts(spec: ImageSpec) -> dict[str, Any]:
    """Facts as the suite reports them for an image that is exactly what the matrix asks for."""
    return {"torch": spec.expected_torch_version, "cuda": spec.cuda,
            "cudnn": cudnn_as_int(spec.cudnn) if spec.cudnn else None, "nccl": spec.nccl,
            "python": f"{spec.python}.2", "torchvision": spec.torchvision,
            "torchaudio": spec.torchaudio, "driver": "570.133.20",
            "gpus": [{"name": "NVIDIA H100 80GB HBM3", "capability": "9.0"}]}


def write_record(root: Path, image_id: str, docker_id: str, input_hash: str, level: CheckLevel,
                 facts: dict[str, Any] | None = None, passed: bool = True) -> None:
    """A check record as `torchstack check --gpu required|auto` stores it."""
    spec = load_matrix(root / "matrix.yaml").by_id()[image_id]
    RecordStore(root / ".torchstack" / "records").add(CheckRecord(
        image_id=image_id, docker_id=docker_id, input_hash=input_hash,
        suite_version=suite_version(), level=level, passed=passed,
        facts=facts if facts is not None else expected_facts(spec),
        summary={"pass": 8, "skip": 0, "fail": 0 if passed else 1, "error": 0},
        report="simulated/report.json"))


def configure(root: Path, *, require: CheckLevel | None = None, aliases: bool = False,
              more_aliases: tuple[str, ...] = (),
              checks: dict[str, list[str]] | None = None) -> None:
    """Edit a fixture matrix copy without changing any input hash (neither the promotion
    policy, nor aliases, nor a layer's checks are rendered into images/). `aliases` adds the
    repository matrix's aliases; `more_aliases`, templates for every image."""
    path = root / "matrix.yaml"
    text = path.read_text(encoding="utf-8")
    if require is not None:
        text = re.sub(r"(?m)^promotion:.*(\n[ \t]+.*)*", f"promotion: {{require: {require}}}",
                      text)
    if aliases or more_aliases:
        lines = "".join(f'    - tag: "{alias}"\n' for alias in more_aliases)
        text = text.replace('  candidate: "{id}-{hash12}"\n', '  candidate: "{id}-{hash12}"\n'
                            + (ALIASES if aliases else "  aliases:\n") + lines)
    path.write_text(text, encoding="utf-8")
    for layer, ids in (checks or {}).items():
        spec = root / "layers" / layer / "layer.yaml"
        spec.write_text(spec.read_text(encoding="utf-8") + f"checks: [{', '.join(ids)}]\n",
                        encoding="utf-8")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RegistryProxy:
    """A TCP forwarder to the registry, to stage outages: it starts listening only after
    `delay_s` (until then connections are refused, as during a registry restart), and
    `close()` takes it down, cutting the connections in flight."""

    def __init__(self, delay_s: float = 0.0, port: int | None = None,
                 upstream: str = REGISTRY, outage_s: float = 0.0) -> None:
        self.port, self.delay_s = port or free_port(), delay_s
        # Connections within outage_s of the first one are cut at once (a registry restart
        # that the client's first push meets, however late that push comes).
        self.outage_s, self.first_contact = outage_s, 0.0
        self.refused = 0
        host, _, upstream_port = upstream.partition(":")
        self.upstream = (host, int(upstream_port))
        self.accepted = 0
        self._sockets: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop.set()
        for open_socket in list(self._sockets):
            with contextlib.suppress(OSError):
                open_socket.shutdown(socket.SHUT_RDWR)
            open_socket.close()

    def _serve(self) -> None:
        if self._stop.wait(self.delay_s):
            return
        with socket.create_server(("127.0.0.1", self.port)) as server:
            self._sockets.append(server)
            server.settimeout(0.1)
            while not self._stop.is_set():
                try:
                    client, _ = server.accept()
                except (TimeoutError, OSError):
                    continue
                now = time.monotonic()
                self.first_contact = self.first_contact or now
                if now - self.first_contact < self.outage_s:
                    self.refused += 1
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                      struct.pack("ii", 1, 0))  # a reset, not a clean close
                    client.close()
                    continue
                self.accepted += 1
                upstream = socket.create_connection(self.upstream)
                self._sockets += [client, upstream]
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)

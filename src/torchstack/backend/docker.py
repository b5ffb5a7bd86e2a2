"""Docker Engine operations through the docker SDK's low-level API: inspect, tag, run, push.

Builds go through BuildKit's CLI (backend/buildkit.py), the other half of the backend. A check
container is always removed, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import docker
import docker.errors
import docker.types
import requests.exceptions

from torchstack.backend.identity import ImageInspect
from torchstack.errors import DockerUnavailableError, EngineError
from torchstack.names import ROLE_LABEL, RUNTIME_USER_SPEC, TMP_SIZE_GIB
from torchstack.signals import deferred_signals

NO_DAEMON_TIP = (
    "start the Docker Engine (`sudo systemctl start docker`, or `dockerd &` as root, or"
    " `bash scripts/start-services.sh` in this repo), or install it (`apt-get install docker.io`);"
    " if it runs elsewhere, point DOCKER_HOST at it"
)
# Committing a multi-GB layer prints nothing for minutes; only a dead daemon should time out.
BUILD_TIMEOUT_S = 3600
P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class ContainerRun:
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool  # stopped after timeout_s; exit_code is then whatever the kill left


class DockerBackend:
    """Docker Engine operations torchstack needs (builds go through BuildKit's CLI)."""

    def __init__(self, api: Any) -> None:
        self.api = api  # docker.APIClient, or a stand-in in unit tests

    @classmethod
    def connect(cls) -> DockerBackend:
        """Connect as the docker CLI would (DOCKER_HOST, ...); DockerUnavailableError if none."""
        try:
            client = docker.from_env(timeout=BUILD_TIMEOUT_S)
            client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise unavailable(exc) from None
        except ValueError as exc:  # a malformed DOCKER_HOST (tcp://:::) fails in urllib
            raise unavailable(ValueError(f"DOCKER_HOST does not parse: {exc}")) from None
        return cls(client.api)

    def close(self) -> None:
        self.api.close()

    # Images -------------------------------------------------------------------------------
    def image_id(self, ref: str) -> str | None:
        """The exact ID (sha256:...) of a local image, or None."""
        inspected = self.inspect(ref)
        return str(inspected["Id"]) if inspected else None

    def inspect(self, ref: str) -> ImageInspect | None:
        try:
            result: ImageInspect = self._call(self.api.inspect_image, ref)
            return result
        except docker.errors.ImageNotFound:
            return None

    def images_with_label(self, key: str, value: str) -> list[tuple[str, list[str]]]:
        """(ID, tags) of local images carrying label key=value, newest first."""
        found = self._call(self.api.images, filters={"label": f"{key}={value}"})
        return [(str(i["Id"]), list(i.get("RepoTags") or []))
                for i in sorted(found, key=lambda i: -int(i.get("Created", 0)))]

    def image_size(self, image_id: str) -> int:
        inspected = self.inspect(image_id)
        return int(inspected["Size"]) if inspected else 0

    def tag(self, image_id: str, ref: str) -> None:
        """Point `ref` at `image_id`; EngineError when the daemon refuses."""
        repository, _, tag = ref.rpartition(":")
        try:
            self._call(self.api.tag, image_id, repository, tag, force=True)
        except docker.errors.APIError as exc:
            raise EngineError(f"docker tag {image_id[:19]} {ref} failed:"
                              f" {exc.explanation or exc}") from None

    def remove_image(self, ref: str) -> None:
        """Remove a tag (and the image when nothing else holds it); a missing one is fine."""
        with contextlib.suppress(docker.errors.NotFound):
            self._call(self.api.remove_image, ref, force=False, noprune=False)

    def untag(self, ref: str) -> None:
        """Remove a tag but never the image: a tag that is its image's last one stays."""
        inspected = self.inspect(ref)
        if inspected and len(inspected.get("RepoTags") or []) > 1:
            self.remove_image(ref)

    def import_image(self, tarball: Path, ref: str, changes: list[str]) -> str:
        """`docker import` a root filesystem tar under `ref`; returns the new image's ID."""
        repository, _, tag = ref.rpartition(":")
        self._call(self.api.import_image_from_file, str(tarball), repository=repository, tag=tag,
                   changes=changes)
        image_id = self.image_id(ref)
        if image_id is None:
            raise DockerUnavailableError(f"docker import of {ref} reported no image")
        return image_id

    def push(self, ref: str) -> str | None:
        """Push a tag; returns the manifest digest the daemon reports. EngineError on failure."""
        repository, _, tag = ref.rpartition(":")
        digest = None
        try:
            for chunk in self._call(self.api.push, repository, tag=tag, stream=True, decode=True):
                if "error" in chunk:
                    detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                    raise EngineError(f"docker push {ref} failed: {str(detail).strip()}")
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = str(aux["Digest"])
        except docker.errors.APIError as exc:
            raise EngineError(f"docker push {ref} failed: {exc.explanation}") from None
        return digest

    # Containers ---------------------------------------------------------------------------
    def run_container(self, image: str, command: list[str], *, mounts: dict[str, str],
                      env: dict[str, str], shm_size: str, gpus: bool,
                      timeout_s: float) -> ContainerRun:
        """Run a command to completion (host folders mounted read-only); always removed after.
        EngineError when Docker cannot create or start the container."""
        requests_gpu = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
        # The same constraints as the Kubernetes Job (cluster/manifests.py): read-only root,
        # only /tmp writable (exec: torch.compile loads the code it builds from there), uid 1000,
        # no capabilities, no privilege escalation.
        host_config = self.api.create_host_config(
            binds={host: {"bind": target, "mode": "ro"} for host, target in mounts.items()},
            shm_size=shm_size, device_requests=requests_gpu if gpus else None,
            read_only=True, tmpfs={"/tmp": f"rw,exec,nosuid,size={TMP_SIZE_GIB}g"},
            cap_drop=["ALL"], security_opt=["no-new-privileges"])
        container = f"torchstack-check-{uuid.uuid4().hex[:16]}"
        try:
            try:
                # A Ctrl-C while Docker creates it would leave a container nobody removes.
                with deferred_signals("creating the check container"):
                    self._call(self.api.create_container, image, command=command,
                               name=container, environment=env, host_config=host_config,
                               user=RUNTIME_USER_SPEC, labels={ROLE_LABEL: "check"})
            except docker.errors.APIError as exc:
                raise EngineError(
                    f"cannot create a container from {image[:19]}: {exc.explanation}",
                    tip="is the image still there? `torchstack build` makes it") from None
            try:
                self._call(self.api.start, container)
            except docker.errors.APIError as exc:
                raise EngineError(
                    f"Docker cannot start the check container of {image[:19]}:"
                    f" {exc.explanation}",
                    tip="for GPUs (--gpu required) install the NVIDIA Container Toolkit and"
                        " restart dockerd; on a host without GPUs use --gpu auto or off",
                ) from None
            timed_out = False
            try:
                exit_code = int(self.api.wait(container, timeout=timeout_s)["StatusCode"])
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                timed_out = True
                with contextlib.suppress(docker.errors.DockerException):
                    self.api.kill(container)
                exit_code = int(self._call(self.api.wait, container)["StatusCode"])
            out = self._call(self.api.logs, container, stdout=True, stderr=False)
            err = self._call(self.api.logs, container, stdout=False, stderr=True)
            return ContainerRun(exit_code, out.decode(errors="replace"),
                                err.decode(errors="replace"), timed_out)
        finally:
            with contextlib.suppress(docker.errors.DockerException):
                self.api.remove_container(container, force=True)

    def can_give_gpus(self) -> bool:
        """Whether `gpus=True` can work: the NVIDIA container runtime or hook is installed."""
        runtimes = self._call(self.api.info).get("Runtimes") or {}
        hooks = ("nvidia-container-runtime-hook", "nvidia-container-cli")
        return "nvidia" in runtimes or any(shutil.which(tool) for tool in hooks)

    def _call(self, method: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except requests.exceptions.ConnectionError as exc:
            raise unavailable(exc) from None


def unavailable(exc: BaseException) -> DockerUnavailableError:
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return DockerUnavailableError(
        f"cannot reach a Docker Engine ({detail}); nothing was built.", tip=NO_DAEMON_TIP)

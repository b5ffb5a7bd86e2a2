"""The only module that talks to Docker: a thin wrapper over the docker SDK's low-level API.

Builds use the Engine's classic builder through `/build` with a context streamed from memory.
Images are built untagged and tagged only once complete, so an interrupted or failed build never
moves a tag. On Ctrl-C or SIGTERM the build's intermediate container is removed before the
interruption propagates.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors
import docker.types
import requests.exceptions

from torchstack.errors import CheckError, DockerUnavailableError, PromoteError
from torchstack.signals import deferred_signals

NO_DAEMON_TIP = (
    "start the Docker Engine (`sudo systemctl start docker`, or `dockerd &` as root, or"
    " `bash scripts/start-services.sh` in this repo), or install it (`apt-get install docker.io`);"
    " if it runs elsewhere, point DOCKER_HOST at it"
)
# Committing a multi-GB layer prints nothing for minutes; only a dead daemon should time out.
BUILD_TIMEOUT_S = 3600
LABEL = "io.torchstack"
RUNNING_IN = re.compile(r"^ ---> Running in ([0-9a-f]{12,64})\s*$")
BUILT = re.compile(r"^Successfully built ([0-9a-f]{12,64})\s*$")
STEP_IMAGE = re.compile(r"^ ---> ([0-9a-f]{12,64})\s*$")


@dataclass(frozen=True)
class ContainerRun:
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool  # stopped after timeout_s; exit_code is then whatever the kill left


@dataclass(frozen=True)
class BuildOutcome:
    image_id: str | None  # sha256:... when the build succeeded
    error: str | None  # the daemon's error message when it failed
    steps: tuple[str, ...] = ()  # (short) IDs of the images the steps produced or reused


class DockerBackend:
    """Docker Engine operations torchstack needs; `builds` counts `build` calls (benchmarks)."""

    def __init__(self, api: Any) -> None:
        self.api = api  # docker.APIClient, or a stand-in in unit tests
        self.builds = 0

    @classmethod
    def connect(cls) -> DockerBackend:
        """Connect as the docker CLI would (DOCKER_HOST, ...); DockerUnavailableError if none."""
        try:
            client = docker.from_env(timeout=BUILD_TIMEOUT_S)
            client.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise unavailable(exc) from None
        return cls(client.api)

    def close(self) -> None:
        self.api.close()

    # Images -------------------------------------------------------------------------------
    def image_id(self, ref: str) -> str | None:
        """The exact ID (sha256:...) of a local image, or None."""
        inspected = self.inspect(ref)
        return str(inspected["Id"]) if inspected else None

    def inspect(self, ref: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self._call(self.api.inspect_image, ref)
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
        repository, _, tag = ref.rpartition(":")
        self._call(self.api.tag, image_id, repository, tag, force=True)

    def remove_image(self, ref: str) -> None:
        """Remove a tag (and the image when nothing else holds it); a missing one is fine."""
        with contextlib.suppress(docker.errors.NotFound):
            self._call(self.api.remove_image, ref, force=False, noprune=False)

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
        """Push a tag; returns the manifest digest the daemon reports. PromoteError on failure."""
        repository, _, tag = ref.rpartition(":")
        digest = None
        try:
            for chunk in self._call(self.api.push, repository, tag=tag, stream=True, decode=True):
                if "error" in chunk:
                    detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                    raise PromoteError(f"docker push {ref} failed: {str(detail).strip()}")
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = str(aux["Digest"])
        except docker.errors.APIError as exc:
            raise PromoteError(f"docker push {ref} failed: {exc.explanation}") from None
        return digest

    # Builds -------------------------------------------------------------------------------
    def build(self, context: IO[bytes], buildargs: dict[str, str],
              on_line: Callable[[str], None]) -> BuildOutcome:
        """Build an untagged image from a tar context; every log line goes to `on_line`."""
        self.builds += 1
        running: list[str] = []  # the container of the step in flight, if any
        steps: list[str] = []
        built: str | None = None
        stream: Iterator[dict[str, Any]] | None = None
        try:
            stream = self._call(self.api.build, fileobj=context, custom_context=True, rm=True,
                                forcerm=True, pull=False, decode=True, buildargs=buildargs)
            for text, error, aux_id in _chunks(stream):
                built = aux_id or built
                for line in text:
                    match = RUNNING_IN.match(line)
                    running[:] = [match.group(1)] if match else running
                    done = BUILT.match(line)
                    built = built or (done.group(1) if done else None)
                    step = STEP_IMAGE.match(line)
                    steps += [step.group(1)] if step else []
                    on_line(line)
                if error is not None:
                    return BuildOutcome(None, error, tuple(steps))
        except BaseException:
            # Ctrl-C, SIGTERM or a lost daemon: stop the step in flight; nothing was tagged.
            self._abandon(stream, running)
            raise
        if built is None:
            return BuildOutcome(None, "the build ended without producing an image", tuple(steps))
        return BuildOutcome(self.image_id(built), None, tuple(steps))

    def remove_dangling(self, images: tuple[str, ...]) -> int:
        """Remove those of `images` (full or short IDs) that are dangling: untagged, and no
        image is built on them. Docker removes their untagged, otherwise unused parents too.
        Used for the discarded build stage, which holds the build inputs and a copy of the
        layer's files."""
        wanted = {image.removeprefix("sha256:")[:12] for image in images}
        dangling = self._call(self.api.images, filters={"dangling": True}, quiet=True)
        removed = 0
        for image in dangling:
            if str(image).removeprefix("sha256:")[:12] in wanted:
                with contextlib.suppress(docker.errors.APIError):  # in use: leave it
                    self._call(self.api.remove_image, image, force=False, noprune=False)
                    removed += 1
        return removed

    def _abandon(self, stream: Iterator[dict[str, Any]] | None, running: list[str]) -> None:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
        for container in running:
            # Already gone when the daemon cleaned up itself (forcerm): fine.
            with contextlib.suppress(docker.errors.DockerException):
                self.api.remove_container(container, force=True)

    # Containers ---------------------------------------------------------------------------
    def run_container(self, image: str, command: list[str], *, mounts: dict[str, str],
                      env: dict[str, str], shm_size: str, gpus: bool,
                      timeout_s: float) -> ContainerRun:
        """Run a command to completion (host folders mounted read-only); always removed after."""
        requests_gpu = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
        host_config = self.api.create_host_config(
            binds={host: {"bind": target, "mode": "ro"} for host, target in mounts.items()},
            shm_size=shm_size, device_requests=requests_gpu if gpus else None)
        container = f"torchstack-check-{uuid.uuid4().hex[:16]}"
        try:
            try:
                # A Ctrl-C while Docker creates it would leave a container nobody removes.
                with deferred_signals("creating the check container"):
                    self._call(self.api.create_container, image, command=command,
                               name=container, environment=env, host_config=host_config,
                               labels={f"{LABEL}.role": "check"})
            except docker.errors.APIError as exc:
                raise CheckError(
                    f"cannot create a container from {image[:19]}: {exc.explanation}",
                    tip="is the image still there? `torchstack build` makes it") from None
            try:
                self._call(self.api.start, container)
            except docker.errors.APIError as exc:
                raise CheckError(
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

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except requests.exceptions.ConnectionError as exc:
            raise unavailable(exc) from None


def _chunks(stream: Iterator[dict[str, Any]]) -> Iterator[tuple[list[str], str | None, str | None]]:
    """(complete log lines, error message, aux image ID) per decoded chunk of /build output."""
    pending = ""
    for chunk in stream:
        pending += str(chunk.get("stream", ""))
        *lines, pending = pending.split("\n")
        if "error" in chunk:
            message = str(chunk.get("errorDetail", {}).get("message") or chunk["error"])
            yield ([*lines, pending] if pending else lines), message.strip(), None
            return
        aux = chunk.get("aux")
        aux_id = str(aux["ID"]) if isinstance(aux, dict) and "ID" in aux else None
        yield [line.rsplit("\r", 1)[-1] for line in lines], None, aux_id
    if pending:
        yield [pending], None, None


def unavailable(exc: BaseException) -> DockerUnavailableError:
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return DockerUnavailableError(
        f"cannot reach a Docker Engine ({detail}); nothing was built.", tip=NO_DAEMON_TIP)

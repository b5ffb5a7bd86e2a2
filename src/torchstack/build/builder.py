"""Build planned images parents first: reuse by input hash, isolate failures, log to a run.

An image whose input hash (rendered context + the exact parent image ID) already labels a local
image is not rebuilt: its local tag is pointed at that image. Otherwise BuildKit builds it
untagged FROM the parent's exact image ID and it is tagged once complete. A failed image skips
its descendants only. An image without a lock is refused: builds install only from locks.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from torchstack.backend.buildkit import BuildRequest, BuildResult, Secret
from torchstack.build.provenance import oci_labels
from torchstack.config.inputs import BuildInputs, mirror_tip, probe_index, redact_url
from torchstack.config.model import ImageSpec, Matrix
from torchstack.errors import ConfigError, Interrupted
from torchstack.lock.pylock import checked_status, lock_path, read_lock, stale_message
from torchstack.names import SHA256_DIGEST
from torchstack.resolve.order import BuildPlan, PlannedImage, input_hash
from torchstack.resolve.state import Images, Resolution, find_local
from torchstack.workspace.json_types import JSONObject
from torchstack.workspace.runs import BUILD_JSON, RunDir

# BuildKit's plain progress: "#7 [os 3/5] RUN apt-get ..." (the stage name is optional).
STEP = re.compile(r"^#\d+ \[(?:[\w.-]+ +)?(\d+)/(\d+)\] (.*)$")
GROUP_STEP = re.compile(r"source=(groups/[\w.-]+)")
TAIL_LINES = 20
# (index URL, CA bundle) -> None when reachable, else why not
Prober = Callable[[str, Path | None], str | None]
INSTALL_STEP = "install groups/"  # how parse_step names an install step
# Lines that say why an install step failed (ours, and uv's hash check).
CAUSE = re.compile(r"(torchstack: |[Hh]ash mismatch|Expected:|Computed:|  error: )")


@dataclass(frozen=True)
class Step:
    n: int
    total: int
    instruction: str

    def __str__(self) -> str:
        return f"step {self.n}/{self.total}: {self.instruction}"


@dataclass
class ImageResult:
    """One image's outcome; `status` moves waiting -> building -> built|cached|failed|skipped."""

    id: str
    parent: str | None
    requested: bool
    status: str = "waiting"
    image_id: str | None = None
    input_hash: str | None = None
    duration_s: float = 0.0
    size: int | None = None
    reason: str | None = None
    failed_step: str | None = None
    log: str | None = None  # file name inside the run directory
    log_tail: list[str] = field(default_factory=list)
    step: Step | None = None
    started: float = 0.0

    def to_json(self) -> JSONObject:
        data = asdict(self)
        for transient in ("step", "started"):
            del data[transient]
        return data


class ImageBuilder(Protocol):
    """What runs one BuildKit build (buildkit.BuildkitCli; a stand-in in unit tests)."""

    def build(self, request: BuildRequest, on_line: Callable[[str], None]) -> BuildResult: ...


class Reporter(Protocol):
    """What build progress goes to; the UI (progress.py) implements it, builds never print."""

    def begin(self, results: list[ImageResult]) -> None: ...
    def update(self, result: ImageResult) -> None: ...
    def line(self, result: ImageResult, text: str) -> None: ...
    def end(self, summary: BuildSummary) -> None: ...


@dataclass
class BuildSummary:
    run: RunDir
    results: list[ImageResult]
    docker_builds: int = 0
    duration_s: float = 0.0

    @property
    def failed(self) -> list[ImageResult]:
        return [r for r in self.results if r.status == "failed"]

    def to_json(self) -> JSONObject:
        return {"run": self.run.name, "docker_builds": self.docker_builds,
                "duration_s": round(self.duration_s, 3),
                "images": {r.id: r.to_json() for r in self.results}}


def parse_step(line: str) -> Step | None:
    match = STEP.match(line)
    if match is None:
        return None
    group = GROUP_STEP.search(match.group(3))  # an install step: name its group, not its mounts
    instruction = f"install {group.group(1)}" if group else match.group(3)[:160]
    return Step(int(match.group(1)), int(match.group(2)), instruction)


def skip_reason(parent: ImageResult | None) -> str | None:
    """Why an image cannot be built because of its parent, or None."""
    if parent is None or parent.status in ("built", "cached"):
        return None
    return f"parent {parent.id} {parent.status}"


def read_contexts(matrix: Matrix, specs: list[ImageSpec],
                  resolution: Resolution | None = None) -> dict[str, dict[str, bytes]]:
    """images/<id>/ files per image, after checking they equal a fresh render (the run's)."""
    rendered = resolution or Resolution(matrix)
    contexts: dict[str, dict[str, bytes]] = {}
    stale: list[str] = []
    for spec in specs:
        files: dict[str, bytes] = {}
        for name, text in rendered.files(spec).items():
            path = matrix.images_dir / spec.id / name
            files[name] = path.read_bytes() if path.is_file() else b""
            if not path.is_file() or files[name] != text.encode():
                stale.append(str(path.relative_to(matrix.root)))
        contexts[spec.id] = files
    if stale:
        raise ConfigError(f"images/ is stale; these files differ from a fresh render:"
                          f" {', '.join(stale)}",
                          tip="run `torchstack render` (or `nox -s render`) and commit images/")
    for spec in specs:  # a lock that no longer matches its inputs is never built from
        if checked_status(matrix, spec) == "stale":
            raise ConfigError(stale_message(matrix, spec),
                              tip="`torchstack lock` resolves it again; then `torchstack render`")
    return contexts


def secrets_for(inputs: BuildInputs, spec: ImageSpec) -> tuple[Secret, ...]:
    """The BuildKit secrets of one build (ids as the rendered Dockerfiles mount them).

    Index URLs go as secrets only when they differ from the public ones rendered into the
    Dockerfile: an override is a mirror, and a mirror's URL may carry credentials.
    """
    secrets = [Secret("ca-bundle", src=inputs.ca_bundle)] if inputs.ca_bundle else []
    if inputs.pip_index_for(spec) != spec.pip_index:
        secrets.append(Secret("index-url", value=inputs.pip_index_for(spec)))
    if inputs.torch_index_for(spec) != spec.torch_index:
        secrets.append(Secret("extra-index-url", value=inputs.torch_index_for(spec)))
    return tuple(secrets)


class BuildEngine(Images, Protocol):
    """What building asks the Docker Engine besides resolving (backend.docker.DockerBackend)."""

    def tag(self, image_id: str, ref: str) -> None: ...
    def untag(self, ref: str) -> None: ...
    def image_size(self, image_id: str) -> int: ...


class Builder:
    def __init__(self, matrix: Matrix, backend: BuildEngine, buildkit: ImageBuilder,
                 inputs: BuildInputs, run: RunDir, reporter: Reporter,
                 probe: Prober = probe_index, *, resolution: Resolution | None = None) -> None:
        self.matrix, self.backend, self.buildkit, self.inputs = matrix, backend, buildkit, inputs
        self.run, self.reporter, self.probe = run, reporter, probe
        # The run's rendered contexts (resolve/state.py): nothing is rendered twice.
        self.resolution = resolution or Resolution(matrix)
        self.probed: dict[str, str | None] = {}
        self.builds = 0  # BuildKit builds started (benchmarks count them)

    def build(self, plan: BuildPlan) -> BuildSummary:
        contexts = read_contexts(self.matrix, [p.spec for p in plan.images], self.resolution)
        results = {p.spec.id: ImageResult(p.spec.id, p.spec.parent_id, p.requested)
                   for p in plan.images}
        summary = BuildSummary(self.run, list(results.values()))
        started, builds_before = time.monotonic(), self.builds
        self.reporter.begin(summary.results)
        current: ImageResult | None = None
        interrupted = False
        try:
            for planned in plan.images:
                current = results[planned.spec.id]
                parent = results.get(planned.spec.parent_id or "")
                reason = skip_reason(parent)
                if reason is not None:
                    self._finish(current, "skipped", reason=reason)
                else:
                    self._one(planned, current, parent, contexts[planned.spec.id])
                self._record(summary, started, builds_before)
        except KeyboardInterrupt:
            interrupted = True
            for result in summary.results:
                if result.status in ("waiting", "building"):
                    status = "failed" if result is current else "skipped"
                    self._finish(result, status, reason="interrupted")
        finally:  # also when the daemon went away: the record and the view are closed
            self._record(summary, started, builds_before)
            self.reporter.end(summary)
        if interrupted:
            where = f" while building {current.id}" if current else ""
            raise Interrupted(f"interrupted{where}; the build container was removed and no tag"
                              " was moved", tip=f"build logs: {self.run.path}")
        return summary

    def _record(self, summary: BuildSummary, started: float, builds_before: int) -> None:
        summary.docker_builds = self.builds - builds_before
        summary.duration_s = time.monotonic() - started
        self.run.write_json(BUILD_JSON, summary.to_json())

    def _one(self, planned: PlannedImage, result: ImageResult, parent: ImageResult | None,
             files: dict[str, bytes]) -> None:
        spec = planned.spec
        result.started = time.monotonic()
        if read_lock(self.matrix, spec) is None:
            self._finish(result, "failed", reason=self._unlocked(spec))
            return
        if parent is None:
            parent_id = self.backend.image_id(spec.base_image)
            if parent_id is None:
                self._finish(result, "failed", reason=self._missing_base(spec))
                return
        else:
            parent_id = str(parent.image_id)
        result.input_hash = input_hash(planned.context_hash, parent_id)
        existing = find_local(self.backend, self.matrix, spec, result.input_hash, parent_id,
                              self.resolution.chain_hash(spec))
        if existing:
            self.backend.tag(existing, self.matrix.local_tag(spec.id))
            self._finish(result, "cached", image_id=existing)
            return
        for url in self.inputs.indexes_to_probe(spec):
            if url not in self.probed:
                self.probed[url] = self.probe(url, self.inputs.ca_bundle)
            if self.probed[url] is not None:
                self._finish(result, "failed", reason=f"the package index {redact_url(url)}:"
                             f" {self.probed[url]}; {mirror_tip(spec)}")
                return
        result.status = "building"
        self.reporter.update(result)
        self._docker_build(spec, result, parent_id, files)

    def _docker_build(self, spec: ImageSpec, result: ImageResult, parent_id: str,
                      files: dict[str, bytes]) -> None:
        del files  # verified equal to a fresh render; BuildKit reads them from images/<id>/
        args = dict(self.inputs.proxies)  # BuildKit's predefined proxy args: not in history
        # BuildKit's FROM takes a reference, not an image ID: a tag named after the exact ID
        # pins it (and it is never looked up in a registry while the image is here).
        pin = f"{self.matrix.local_repository}-pin:{parent_id.removeprefix('sha256:')}"
        self.backend.tag(parent_id, pin)
        args["BASE_IMAGE" if spec.parent_id is None else "PARENT_IMAGE"] = pin
        args["TORCHSTACK_INPUT_HASH"] = str(result.input_hash)
        request = BuildRequest(self.matrix.images_dir / spec.id, args,
                               secrets_for(self.inputs, spec),
                               oci_labels(self.matrix.root, self.matrix.images_dir / spec.id))
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        causes: list[str] = []
        result.log = self.run.log_path(spec.id).name
        self.builds += 1
        with self.run.open_log(spec.id) as log:

            def on_line(raw: str) -> None:
                text = self.inputs.redact(raw)
                log.write(text + "\n")
                tail.append(text)
                body = (text.split(" ", 2)[-1] if text.startswith("#") else text).strip()
                # uv prints each hash of a mismatch on the line after its label ("Expected:").
                if SHA256_DIGEST.fullmatch(body) and causes and causes[-1].endswith(":"):
                    causes[-1] += f" {body}"
                elif CAUSE.search(text):
                    causes.append(body)
                step = parse_step(text)
                if step is not None:
                    result.step = step
                    self.reporter.update(result)
                self.reporter.line(result, text)

            try:
                outcome = self.buildkit.build(request, on_line)
            finally:
                self.backend.untag(pin)
            if outcome.error is not None:
                log.write(f"ERROR: {self.inputs.redact(outcome.error)}\n")
        result.log_tail = list(tail)
        if outcome.image_id is None:
            error = "; ".join(dict.fromkeys(causes[-4:])) or outcome.error
            self._finish(result, "failed", reason=self._failure(spec, result, error))
            return
        self.backend.tag(outcome.image_id, self.matrix.local_tag(spec.id))
        self._finish(result, "built", image_id=outcome.image_id)

    def _unlocked(self, spec: ImageSpec) -> str:
        path = lock_path(self.matrix, spec).relative_to(self.matrix.root)
        return (f"{path} does not exist: builds install only from a lock; run `torchstack lock"
                f" {spec.id}` where {redact_url(self.inputs.torch_index_for(spec))} is reachable,"
                " then `torchstack render`")

    def _failure(self, spec: ImageSpec, result: ImageResult, error: str | None) -> str:
        result.failed_step = str(result.step) if result.step else None
        reason = self.inputs.redact(error or "the build failed")
        if result.step and result.step.instruction.startswith(INSTALL_STEP):
            reason += (f"; packages came from {redact_url(self.inputs.pip_index_for(spec))},"
                       f" torch wheels from {redact_url(self.inputs.torch_index_for(spec))}")
        return reason

    def _missing_base(self, spec: ImageSpec) -> str:
        os_base = self.matrix.os_bases[spec.os]
        how = f"run `torchstack base bootstrap {os_base.name}` or " if os_base.bootstrap_suite \
            else ""
        return (f"the OS base image {spec.base_image} is not available locally; {how}make it"
                f" available (`docker pull {spec.base_image}` or `docker load`)")

    def _finish(self, result: ImageResult, status: str, *, reason: str | None = None,
                image_id: str | None = None) -> None:
        result.status, result.reason, result.image_id = status, reason, image_id
        if result.started:
            result.duration_s = round(time.monotonic() - result.started, 3)
        if image_id is not None:
            result.size = self.backend.image_size(image_id)
        self.reporter.update(result)

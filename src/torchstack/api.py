"""torchstack's public Python API: load, resolve, build, check, promote (docs/api.md).

Each call is one stage of the flow and returns typed, frozen results; none prints (callbacks
receive progress). The CLI verbs are thin wrappers over these. Errors are the exception family
of torchstack.errors, each with the CLI's exit code: ConfigError (2) for a bad matrix or
selection, DockerUnavailableError (3) when no Docker Engine answers, and BuildError,
CheckError, PromoteError (4, 5, 6) from `BuildRun.error()`, `CheckRun.error()` and
`PromoteRun.error()`.

Calls that need the Docker Engine connect as the docker CLI would (DOCKER_HOST, ...) unless
given a `backend`, and close what they opened.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchstack.backend.buildkit import find_cli
from torchstack.backend.docker import DockerBackend
from torchstack.backend.identity import Content, content_of_inspect
from torchstack.backend.recompress import find_zstd_publisher
from torchstack.build.builder import Builder, BuildSummary, ImageResult, Reporter
from torchstack.check.stage import CheckRun, check_images
from torchstack.config.inputs import resolve_inputs
from torchstack.config.matrix import load_matrix
from torchstack.config.model import Compression, Matrix
from torchstack.errors import BuildError, ConfigError
from torchstack.release.stage import (
    ImagePromotion,
    PromoteRun,
    Publishing,
    journal_of,
    promote_images,
)
from torchstack.resolve.outcome import GpuMode, ImageCheck
from torchstack.resolve.records import RecordStore
from torchstack.resolve.state import ImageState, Resolution, Resolved, plan_json, push_repository
from torchstack.resolve.state import resolve as resolve_states
from torchstack.workspace.runs import create_run

__all__ = ["BuildRun", "CheckRun", "Content", "ImageCheck", "ImagePromotion", "ImageState",
           "PromoteRun", "Resolved", "build", "check", "content", "load", "plan", "promote",
           "resolve"]


def load(path: Path | str = "matrix.yaml") -> Matrix:
    """The validated matrix (layers/ and images/ sit beside the file); ConfigError if wrong."""
    return load_matrix(Path(path))


def plan(matrix: Matrix, globs: Iterable[str] = (), *,
         everything: bool = False) -> list[dict[str, Any]]:
    """The rows of `torchstack plan --json`: no Docker Engine needed."""
    return plan_json(resolve(matrix, globs, everything=everything))


def resolve(matrix: Matrix, globs: Iterable[str] = (), *, everything: bool = False,
            docker: bool = False, backend: DockerBackend | None = None,
            repository: str | None = None) -> Resolved:
    """The selected images (and their ancestors) as ImageStates.

    Without `docker` (or a `backend`) nothing asks the Engine: states carry no image IDs.
    """
    if backend is None and not docker:
        return resolve_states(matrix, globs, everything=everything, repository=repository)
    resolution = _selected(matrix, globs, everything)
    with _engine(backend) as engine:
        return resolve_states(matrix, globs, everything=everything, backend=engine,
                              repository=repository, resolution=resolution)


@dataclass(frozen=True)
class BuildRun:
    summary: BuildSummary  # per image: built, cached, failed or skipped, and why
    resolved: Resolved  # the states updated with what the build produced

    @property
    def failed(self) -> list[ImageResult]:
        return self.summary.failed

    def error(self) -> BuildError | None:
        """What the CLI exits with (4) when an image failed to build."""
        if not self.failed:
            return None
        failed = "; ".join(f"{r.id} ({r.failed_step or r.reason})" for r in self.failed)
        return BuildError(f"{len(self.failed)} of {len(self.summary.results)} images failed to"
                          f" build: {failed}",
                          tip=f"see the failures above; full logs in {self.summary.run.path}")


class _Quiet:
    """A build reporter that shows nothing (the API's default)."""

    def begin(self, results: list[ImageResult]) -> None: ...
    def update(self, result: ImageResult) -> None: ...
    def line(self, result: ImageResult, text: str) -> None: ...
    def end(self, summary: BuildSummary) -> None: ...


def build(matrix: Matrix, globs: Iterable[str] = (), *, everything: bool = False,
          ca_bundle: Path | None = None, indexes: Iterable[str] = (),
          reporter: Reporter | None = None, backend: DockerBackend | None = None,
          environ: Mapping[str, str] = os.environ) -> BuildRun:
    """Build the selected images and their missing ancestors, parents first (BuildKit)."""
    resolution = Resolution(matrix)
    resolved = resolve_states(matrix, globs, everything=everything, resolution=resolution)
    inputs = resolve_inputs(ca_bundle, list(indexes), environ)
    with _engine(backend) as engine:
        buildkit = find_cli(environ)
        run = create_run(matrix.root)
        builder = Builder(matrix, engine, buildkit, inputs, run, reporter or _Quiet(),
                          resolution=resolution)
        summary = builder.build(resolved.plan)
        built = {r.id: (r.image_id, r.input_hash) for r in summary.results}
        updated = resolved.after_build(built, RecordStore.for_matrix(matrix), engine)
    return BuildRun(summary, updated)


def check(matrix: Matrix, globs: Iterable[str] = (), *, everything: bool = False,
          gpu: GpuMode = "auto", force: bool = False, backend: DockerBackend | None = None,
          on_start: Callable[[ImageState], None] = lambda state: None,
          on_result: Callable[[ImageCheck], None] = lambda result: None) -> CheckRun:
    """Run the check suite inside each selected, built image; records what passed."""
    resolution = _selected(matrix, globs, everything)
    with _engine(backend) as engine:
        resolved = resolve_states(matrix, globs, everything=everything, backend=engine,
                                  resolution=resolution)
        return check_images(resolved, engine, gpu, create_run(matrix.root), force=force,
                            on_start=on_start, on_result=on_result)


def promote(matrix: Matrix, globs: Iterable[str] = (), *, everything: bool = False,
            push: bool = False, repository: str | None = None,
            compression: Compression | None = None,
            backend: DockerBackend | None = None,
            say: Callable[[str], None] = lambda line: None,
            on_image: Callable[[ImagePromotion], None] = lambda image: None) -> PromoteRun:
    """Tag (and with `push`, push) what passed, per the matrix's promotion policy.

    `compression` (default: the matrix's registry.compression) picks the pushed form: gzip,
    zstd, or both (docs/registry.md); zstd needs buildx or skopeo (DockerUnavailableError)."""
    resolution = _selected(matrix, globs, everything)
    repository = repository or push_repository(matrix)
    chosen = compression or matrix.compression
    # A missing zstd tool stops promotion (exit 3) before anything is tagged or pushed.
    zstd = find_zstd_publisher() if push and chosen != "gzip" else None
    journal_of(matrix).pending()  # a corrupt journal stops promotion before Docker is asked
    with _engine(backend) as engine:
        resolved = resolve_states(matrix, globs, everything=everything, backend=engine,
                                  repository=repository, resolution=resolution)
        return promote_images(resolved, engine, create_run(matrix.root), push=push, say=say,
                              on_image=on_image,
                              publishing=Publishing(chosen, matrix.zstd_suffix, zstd))


def content(image: str, backend: DockerBackend | None = None) -> Content:
    """The content identity (diff IDs + OCI config projection) of a local image."""
    with _engine(backend) as engine:
        inspected = engine.inspect(image)
    if inspected is None:
        raise ConfigError(f"no local image {image[:19]}",
                          tip="build it with `torchstack build`")
    return content_of_inspect(inspected)


def _selected(matrix: Matrix, globs: Iterable[str], everything: bool) -> Resolution:
    """A selection that matches nothing is refused (exit 2) before the Engine is asked."""
    resolution = Resolution(matrix)
    resolution.plan(globs, everything=everything)
    return resolution


@contextlib.contextmanager
def _engine(backend: DockerBackend | None) -> Iterator[DockerBackend]:
    """The given backend, or a connection opened (and closed) here."""
    if backend is not None:
        yield backend
        return
    engine = DockerBackend.connect()
    try:
        yield engine
    finally:
        engine.close()

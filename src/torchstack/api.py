"""torchstack's public Python API: load, resolve, build, check, promote (docs/api.md).

Each call is one stage of the flow and returns typed, frozen results; none prints (callbacks
receive progress). The CLI verbs are thin wrappers over these. Errors are the exception family
of torchstack.errors, each with the CLI's exit code: ConfigError (2) for a bad matrix or
selection, DockerUnavailableError (3) when no Docker Engine answers, and BuildError,
CheckError, PromoteError (4, 5, 6) from `BuildRun.error()`, `CheckRun.error()` and
`PromoteRun.error()`.

Calls that need the Docker Engine connect as the docker CLI would (DOCKER_HOST, ...) unless
given a `backend`, and close what they opened. What they take from the environment (the push
repository override, registry credentials, BuildKit's environment) comes from `settings`
(torchstack.settings.Settings; default: Settings.current(), this process's environment).

With a `signing_key` (release.keys.SigningKey), promote (with push), check and `attest` sign
each image's newest verdict at each level and attach it, in cosign's `.att` layout, to every
digest the registry already serves the image under (docs/attestations.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from torchstack.backend.artifacts import Repository
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
from torchstack.release.attaching import AttachOutcome, attach_image
from torchstack.release.keys import SigningKey
from torchstack.release.stage import (
    ImagePromotion,
    PromoteRun,
    Publishing,
    journal_of,
    promote_images,
)
from torchstack.resolve.outcome import GpuMode, ImageCheck
from torchstack.resolve.records import RecordStore
from torchstack.resolve.state import (
    ImageState,
    PlanJsonRow,
    Resolution,
    Resolved,
    plan_json,
    push_repository,
)
from torchstack.resolve.state import resolve as resolve_states
from torchstack.settings import Settings
from torchstack.workspace.paths import runs_dir
from torchstack.workspace.runs import check_workspace, create_run

__all__ = ["AttachOutcome", "BuildRun", "CheckRun", "Content", "ImageCheck", "ImagePromotion",
           "ImageState", "PromoteRun", "Resolved", "attest", "build", "check", "content", "load",
           "plan", "promote",
           "resolve"]


def load(path: Path | str = "matrix.yaml") -> Matrix:
    """The validated matrix (layers/ and images/ sit beside the file); ConfigError if wrong."""
    return load_matrix(Path(path))


def plan(matrix: Matrix, globs: Iterable[str] = (), *,
         everything: bool = False) -> list[PlanJsonRow]:
    """The rows of `torchstack plan --json`: no Docker Engine needed."""
    return plan_json(resolve(matrix, globs, everything=everything))


def resolve(matrix: Matrix, globs: Iterable[str] = (), *, everything: bool = False,
            docker: bool = False, backend: DockerBackend | None = None,
            repository: str | None = None, settings: Settings | None = None) -> Resolved:
    """The selected images (and their ancestors) as ImageStates.

    Without `docker` (or a `backend`) nothing asks the Engine: states carry no image IDs.
    """
    environ = _settings(settings).environ
    if backend is None and not docker:
        return resolve_states(matrix, globs, everything=everything, repository=repository,
                              environ=environ)
    resolution = _selected(matrix, globs, everything)
    with _engine(backend) as engine:
        return resolve_states(matrix, globs, everything=everything, backend=engine,
                              repository=repository, resolution=resolution, environ=environ)


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
          settings: Settings | None = None) -> BuildRun:
    """Build the selected images and their missing ancestors, parents first (BuildKit)."""
    check_workspace(matrix.root)
    environ = _settings(settings).environ
    resolution = Resolution(matrix)
    resolved = resolve_states(matrix, globs, everything=everything, resolution=resolution,
                              environ=environ)
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
          on_result: Callable[[ImageCheck], None] = lambda result: None,
          signing_key: SigningKey | None = None, repository: str | None = None,
          on_attach: Callable[[AttachOutcome], None] = lambda outcome: None,
          settings: Settings | None = None) -> CheckRun:
    """Run the check suite inside each selected, built image; records what passed.

    With a `signing_key`, each checked image's verdicts are attached where the registry
    already serves it; an image not pushed yet is reported (`note`) and left to promote.
    """
    check_workspace(matrix.root)
    settings = _settings(settings)
    resolution = _selected(matrix, globs, everything)
    if signing_key is not None:
        repository = repository or push_repository(matrix, settings.environ)
    with _engine(backend) as engine:
        resolved = resolve_states(matrix, globs, everything=everything, backend=engine,
                                  resolution=resolution, repository=repository,
                                  environ=settings.environ)
        outcome = check_images(resolved, engine, gpu, create_run(matrix.root), force=force,
                               on_start=on_start, on_result=on_result)
        if signing_key is not None and repository is not None:
            checked = {r.spec.id for r in outcome.results if r.docker_id}
            _attach(matrix, [s for s in resolved.requested if s.id in checked], engine,
                    repository, signing_key, None, lambda line: None, on_attach,
                    settings=settings)
        return outcome


def promote(matrix: Matrix, globs: Iterable[str] = (), *, everything: bool = False,
            push: bool = False, repository: str | None = None,
            compression: Compression | None = None,
            backend: DockerBackend | None = None,
            say: Callable[[str], None] = lambda line: None,
            on_image: Callable[[ImagePromotion], None] = lambda image: None,
            signing_key: SigningKey | None = None, referrers: bool = False,
            on_attach: Callable[[AttachOutcome], None] = lambda outcome: None,
            settings: Settings | None = None) -> PromoteRun:
    """Tag (and with `push`, push) what passed, per the matrix's promotion policy.

    `compression` (default: the matrix's registry.compression) picks the pushed form: gzip,
    zstd, or both (docs/registry.md); zstd needs buildx or skopeo (DockerUnavailableError).
    With `push` and a `signing_key`, the newest verdict at each level of every requested image
    (failures included, even when no tag moved) is attached to each digest already published
    for it, every compression variant included, with the SBOM this run wrote (with
    `referrers`, also as OCI 1.1 referrers).
    """
    check_workspace(matrix.root)
    settings = _settings(settings)
    resolution = _selected(matrix, globs, everything)
    repository = repository or push_repository(matrix, settings.environ)
    chosen = compression or matrix.compression
    # A missing zstd tool stops promotion (exit 3) before anything is tagged or pushed.
    # buildx builds FROM a gzip variant, which only `both` pushes.
    zstd = find_zstd_publisher(gzip_first=chosen == "both") if push and chosen != "gzip" else None
    journal_of(matrix).pending()  # a corrupt journal stops promotion before Docker is asked
    with _engine(backend) as engine:
        resolved = resolve_states(matrix, globs, everything=everything, backend=engine,
                                  repository=repository, resolution=resolution)
        run = create_run(matrix.root)
        publishing = Publishing(chosen, matrix.zstd_suffix, zstd, settings.credentials,
                                settings.tag_pause_s)
        outcome = promote_images(resolved, engine, run, push=push, say=say, on_image=on_image,
                                 publishing=publishing)
        if push and signing_key is not None:
            _attach(matrix, list(resolved.requested), engine, repository, signing_key,
                    run.path / "manifests", say, on_attach, referrers=referrers,
                    settings=settings)
        return outcome


def attest(matrix: Matrix, globs: Iterable[str] = (), *, signing_key: SigningKey,
           everything: bool = False, repository: str | None = None,
           backend: DockerBackend | None = None,
           say: Callable[[str], None] = lambda line: None,
           on_attach: Callable[[AttachOutcome], None] = lambda outcome: None,
           settings: Settings | None = None) -> list[AttachOutcome]:
    """Attach the selected images' newest verdicts where the registry serves them (used by
    `record import`)."""
    settings = _settings(settings)
    resolution = _selected(matrix, globs, everything)
    repository = repository or push_repository(matrix, settings.environ)
    with _engine(backend) as engine:
        resolved = resolve_states(matrix, globs, everything=everything, backend=engine,
                                  repository=repository, resolution=resolution,
                                  environ=settings.environ)
        return _attach(matrix, list(resolved.requested), engine, repository, signing_key,
                       None, say, on_attach, settings=settings)


def _attach(matrix: Matrix, states: list[ImageState], engine: DockerBackend, repository: str,
            key: SigningKey, manifests: Path | None, say: Callable[[str], None],
            on_attach: Callable[[AttachOutcome], None], *, settings: Settings,
            referrers: bool = False) -> list[AttachOutcome]:
    registry = Repository(repository, credentials=settings.credentials)
    store = RecordStore.for_matrix(matrix)
    lock = matrix.root / ".torchstack" / "attach.lock"
    outcomes = []
    for state in states:
        sbom = manifests / f"{state.id}.cdx.json" if manifests is not None else None
        outcome = attach_image(state, matrix, repository=registry, backend=engine, key=key,
                               store=store, runs=runs_dir(matrix.root), lock=lock,
                               sbom=sbom if sbom is not None and sbom.is_file() else None,
                               referrers=referrers, say=say)
        on_attach(outcome)
        outcomes.append(outcome)
    return outcomes


def content(image: str, backend: DockerBackend | None = None) -> Content:
    """The content identity (diff IDs + OCI config projection) of a local image."""
    with _engine(backend) as engine:
        inspected = engine.inspect(image)
    if inspected is None:
        raise ConfigError(f"no local image {image[:19]}",
                          tip="build it with `torchstack build`")
    return content_of_inspect(inspected)


def _settings(settings: Settings | None) -> Settings:
    """The caller's settings, else this process's environment (the CLI always passes its own)."""
    return settings if settings is not None else Settings.current()


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

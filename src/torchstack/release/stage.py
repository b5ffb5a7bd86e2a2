"""The promote stage for a run: decide, cross-check against the lock, move tags, write manifests.

Per requested image of the run's resolved states: its tag decision (resolve/tags.py, computed by
resolve/state.py) says which tags may move; what is installed must equal its lock before any tag
moves; the Promoter (release/journal.py) moves and pushes them behind its journal. Never prints:
events go to `say`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torchstack.backend.credentials import ANONYMOUS, Credentials
from torchstack.backend.docker import DockerBackend
from torchstack.backend.identity import content_of_inspect
from torchstack.backend.recompress import ZstdPublisher
from torchstack.config.model import CheckLevel, Compression, ImageSpec, Matrix
from torchstack.errors import PromoteError
from torchstack.lock.pylock import lock_path, read_lock
from torchstack.release.journal import Journal, Promoter, PublishedVariant, TagResult
from torchstack.release.manifests import Packages, inventory, locked_packages, write_manifest
from torchstack.resolve.state import ImageState, Resolved
from torchstack.workspace.paths import journal_path, shown
from torchstack.workspace.runs import RunDir


@dataclass(frozen=True)
class ImagePromotion:
    state: ImageState
    results: tuple[TagResult, ...]  # the tags moved (or that failed to)
    refused: str | None  # why the image was not promoted at all, or None
    lock_problem: str | None = None  # how what is installed differs from the lock

    @property
    def published(self) -> tuple[PublishedVariant, ...]:
        """Every manifest pushed and proven for this image (each tag, each compression)."""
        return published_of(self.results)


@dataclass(frozen=True)
class PromoteRun:
    run: RunDir
    repository: str
    resumed: tuple[TagResult, ...]  # moves an earlier, interrupted run left half done
    images: tuple[ImagePromotion, ...]

    @property
    def published(self) -> tuple[PublishedVariant, ...]:
        """Every manifest this run pushed and proved, resumed moves included."""
        return published_of(self.resumed) + tuple(v for i in self.images for v in i.published)

    @property
    def failures(self) -> list[TagResult]:
        return [r for r in self.resumed + tuple(t for i in self.images for t in i.results)
                if r.error]

    def error(self) -> PromoteError | None:
        """What the CLI exits with (6): tags that failed, then images refused."""
        if self.failures:
            return PromoteError(
                f"{len(self.failures)} tags could not be pushed: "
                + "; ".join(f"{r.ref}: {r.error}" for r in self.failures),
                tip="release tags that users pull were not moved past what the registry holds;"
                    " fix the registry and run `torchstack promote --push` again")
        refused = [f"{i.state.id} ({i.refused})" for i in self.images if i.refused]
        if refused:
            return PromoteError("not promoted: " + "; ".join(refused),
                                tip="build and check these images; their previous tags are"
                                    " untouched")
        return None


def published_of(results: tuple[TagResult, ...]) -> tuple[PublishedVariant, ...]:
    return tuple(PublishedVariant(r.compression, r.ref, r.digest) for r in results
                 if r.pushed and r.digest and not r.error)


@dataclass(frozen=True)
class Publishing:
    """How pushes are compressed (registry.compression, or promote --compression)."""

    compression: Compression = "gzip"
    zstd_suffix: str = "-zstd"
    zstd: ZstdPublisher | None = None  # the tool writing zstd; needed unless gzip
    credentials: Credentials = ANONYMOUS  # the registry login (Settings)
    tag_pause_s: float = 0.0  # a test hook: seconds between two release tags (Settings)


def journal_of(matrix: Matrix) -> Journal:
    return Journal(journal_path(matrix.root), root=matrix.root)


def promote_images(resolved: Resolved, backend: DockerBackend, run: RunDir, *, push: bool,
                   say: Callable[[str], None] = lambda line: None,
                   on_image: Callable[[ImagePromotion], None] = lambda image: None,
                   publishing: Publishing | None = None) -> PromoteRun:
    """Finish what a killed run left, then promote each requested image as decided."""
    matrix = resolved.matrix
    journal = journal_of(matrix)
    journal.pending()  # a corrupt journal stops promotion before anything is tagged
    how = publishing or Publishing(matrix.compression, matrix.zstd_suffix)
    if push and how.compression != "gzip" and how.zstd is None:
        raise PromoteError(f"compression {how.compression} needs a tool that writes zstd",
                           tip="find one with backend.recompress.find_zstd_publisher()")
    promoter = Promoter(backend, journal, push, say, how.compression, how.zstd_suffix, how.zstd,
                        credentials=how.credentials, pause_s=how.tag_pause_s)
    resumed = tuple(promoter.resume())
    images = []
    for state in resolved.requested:
        image = _promote_one(matrix, backend, promoter, run, state)
        on_image(image)
        images.append(image)
    return PromoteRun(run, resolved.repository or "", resumed, tuple(images))


def _promote_one(matrix: Matrix, backend: DockerBackend, promoter: Promoter, run: RunDir,
                 state: ImageState) -> ImagePromotion:
    decision = state.decision
    if not state.built:
        return ImagePromotion(state, (), decision.reason if decision.refused else None)
    docker_id = str(state.local_image_id)
    try:  # what is installed must be what the lock says, before any tag moves
        packages = _packages(matrix, state.spec, backend, docker_id)
    except PromoteError as exc:
        return ImagePromotion(state, (), "installed packages differ from its lock", exc.message)
    results = (promoter.promote(decision, docker_id)
               if decision.candidate or decision.releases else [])
    _manifest(backend, run.path / "manifests", state, results, packages,
              matrix.promotion_level)
    return ImagePromotion(state, tuple(results), decision.reason if decision.refused else None)


def _packages(matrix: Matrix, spec: ImageSpec, backend: DockerBackend,
              docker_id: str) -> Packages:
    """The image's inventory, its Python part from the lock once cross-checked."""
    packages = inventory(backend, docker_id)
    lock = read_lock(matrix, spec)
    if lock is None:
        return packages
    return locked_packages(spec.id, shown(matrix.root, lock_path(matrix, spec)), lock, packages)


def _manifest(backend: DockerBackend, folder: Path, state: ImageState, results: list[TagResult],
              packages: Packages, required: CheckLevel) -> None:
    spec, docker_id = state.spec, str(state.local_image_id)
    record = state.release_record(required)
    inspected = backend.inspect(docker_id) or {}
    summary: dict[str, object] = {
        "image_id": spec.id,
        "docker_id": docker_id,
        "content_id": content_of_inspect(inspected).id if inspected else None,
        "repo_digests": inspected.get("RepoDigests", []),
        "size_bytes": inspected.get("Size"),
        "input_hash": state.input_hash,
        "checks": {"level": record.level, "passed": record.passed, "summary": record.summary,
                   "suite_version": record.suite_version, "facts": record.facts}
        if record else None,
        "tags": [{"ref": r.ref, "pushed": r.pushed, "digest": r.digest, "error": r.error,
                  "compression": r.compression if r.pushed else None} for r in results],
        # every manifest published and proven: the subjects of attestations
        "published": [{"compression": v.compression, "ref": v.ref, "digest": v.digest}
                      for v in published_of(tuple(results))],
        "release_tag": state.decision.releases[0] if state.decision.releases else None,
    }
    write_manifest(folder, spec.id, summary, packages, spec.os, spec.base_image)

"""Stand-ins for the backend: DockerBackend as builds use it (tags, labels) and as promotion
uses it (FakeTagEngine: tag, push), and BuildKit's CLI.

FakeBuildkit reads the context folder BuildKit would read and writes BuildKit's plain progress
lines; it never talks to Docker. What a build saw (files, args, secrets, the tags present while
it ran) is kept for the tests to compare with what they asked for.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from torchstack.backend.buildkit import BuildRequest, BuildResult
from torchstack.backend.identity import ImageInspect
from torchstack.build.builder import BuildSummary, ImageResult
from torchstack.errors import PromoteError
from torchstack.release.journal import Journal

TITLE = re.compile(r'org\.opencontainers\.image\.title="([^"]+)"')
OS_IMAGE_ID = "sha256:" + "0" * 64
HASH_LABEL = "io.torchstack.input-hash"


@dataclass
class Built:
    image: str  # torchstack image id (from the Dockerfile's title label)
    context: Path
    files: dict[str, bytes]  # relative path -> bytes, as BuildKit would read them
    args: dict[str, str]
    secrets: dict[str, bytes]  # secret id -> the bytes BuildKit would mount
    secret_env: dict[str, str]  # secret id -> the environment variable it came from
    secret_files: dict[str, Path]  # secret id -> the file it came from
    labels: dict[str, str]
    refs: dict[str, str]  # the tags present while it ran


@dataclass
class FakeBackend:
    refs: dict[str, str] = field(default_factory=lambda: {"debian:bookworm-slim": OS_IMAGE_ID})
    labels: dict[str, str] = field(default_factory=dict)  # image ID -> input hash
    untagged: list[str] = field(default_factory=list)

    def image_id(self, ref: str) -> str | None:
        return self.refs.get(ref) or (ref if ref in self.labels else None)

    def inspect(self, ref: str) -> ImageInspect | None:
        image = self.image_id(ref)
        return None if image is None else {"Id": image, "RootFS": {"Layers": [image]}}

    def images_with_label(self, key: str, value: str) -> list[tuple[str, list[str]]]:
        if key != HASH_LABEL:
            return []  # nothing here was staged by bake
        return [(image, [ref for ref, target in self.refs.items() if target == image])
                for image, label in reversed(self.labels.items()) if label == value]

    def image_size(self, image_id: str) -> int:
        return 1_000_000

    def tag(self, image_id: str, ref: str) -> None:
        self.refs[ref] = image_id

    def untag(self, ref: str) -> None:
        self.untagged.append(ref)
        self.refs.pop(ref, None)


def buildkit_lines(steps: list[str]) -> list[str]:
    """BuildKit's plain progress for these RUN/COPY steps of one stage, all succeeding."""
    lines = []
    for n, step in enumerate(steps, start=1):
        lines += [f"#{n + 4} [stage-1 {n}/{len(steps)}] {step}", f"#{n + 4} DONE 0.1s", ""]
    return lines


@dataclass
class FakeBuildkit:
    backend: FakeBackend
    failing: dict[str, list[str]] = field(default_factory=dict)  # id -> lines, then it fails
    interrupt_on: str | None = None
    built: list[Built] = field(default_factory=list)

    def build(self, request: BuildRequest, on_line: Callable[[str], None]) -> BuildResult:
        files = {str(p.relative_to(request.context)): p.read_bytes()
                 for p in sorted(request.context.rglob("*")) if p.is_file()}
        match = TITLE.search(files["Dockerfile"].decode())
        assert match, "no title label in the Dockerfile"
        image = match.group(1)
        secrets = {s.id: (s.src.read_bytes() if s.src else str(s.value).encode())
                   for s in request.secrets}
        self.built.append(Built(
            image, request.context, files, dict(request.build_args), secrets,
            {s.id: s.env_name for s in request.secrets if s.src is None},
            {s.id: s.src for s in request.secrets if s.src is not None},
            dict(request.labels), dict(self.backend.refs)))
        if image == self.interrupt_on:
            on_line("#9 [stage-1 1/2] RUN sleep 600")
            raise KeyboardInterrupt
        if image in self.failing:
            for line in self.failing[image]:
                on_line(line)
            # BuildkitCli reports the CLI's closing error line (the last one here).
            return BuildResult(None, self.failing[image][-1])
        for line in buildkit_lines(["RUN --mount=type=bind,source=groups/01-x.txt,target=/g sh",
                                    "USER 1000:1000"]):
            on_line(line)
        new_id = f"sha256:{len(self.built):064x}"
        self.backend.labels[new_id] = request.build_args["TORCHSTACK_INPUT_HASH"]
        return BuildResult(new_id, None)

    @property
    def builds(self) -> int:
        return len(self.built)


class Recorder:
    """A Reporter that keeps every event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.summary: BuildSummary | None = None

    def begin(self, results: list[ImageResult]) -> None:
        self.events.append(("begin", str(len(results)), ""))

    def update(self, result: ImageResult) -> None:
        self.events.append(("update", result.id, result.status))

    def line(self, result: ImageResult, text: str) -> None:
        self.events.append(("line", result.id, text))

    def end(self, summary: BuildSummary) -> None:
        self.summary = summary


TAGGED_IMAGE = "sha256:" + "c" * 64  # the image promotion tags
EARLIER_IMAGE = "sha256:" + "0" * 64  # what release tags named before
PUSHED_DIGEST = "sha256:" + "d" * 64  # the manifest digest every push reports


@dataclass
class FakeTagEngine:
    """The Engine as promotion drives it (release.journal.TagEngine): local tags and pushes,
    recorded. Pushes to refs in `refused` fail; `journal` makes each tag() note whether the
    journal file existed at that moment."""

    images: tuple[str, ...] = (TAGGED_IMAGE, EARLIER_IMAGE)  # the image IDs that exist
    push_digest: str = PUSHED_DIGEST
    journal: Journal | None = None
    refused: Callable[[str], bool] = lambda ref: False
    tags: dict[str, str] = field(default_factory=dict)  # ref -> image ID
    pushed: list[str] = field(default_factory=list)
    journal_seen: list[bool] = field(default_factory=list)

    def tag(self, image: str, ref: str) -> None:
        if self.journal is not None:
            self.journal_seen.append(self.journal.path.exists())
        self.tags[ref] = image

    def image_id(self, ref: str) -> str | None:
        if ref.startswith("sha256:"):
            return ref if ref in self.images else None
        return self.tags.get(ref)

    def inspect(self, ref: str) -> ImageInspect | None:
        image = self.image_id(ref)
        # A classic-store answer: the Id is the config digest; no layers to compare.
        return {"Id": image, "RootFS": {"Layers": []}} if image else None

    def remove_image(self, ref: str) -> None:
        self.tags.pop(ref, None)

    def push(self, ref: str) -> str:
        if self.refused(ref):
            raise PromoteError(f"{ref}: registry down")
        self.pushed.append(ref)
        return self.push_digest


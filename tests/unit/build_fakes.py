"""A stand-in for DockerBackend: records builds and tags, never talks to Docker."""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from torchstack.docker_backend import BuildOutcome

TITLE = re.compile(r'org\.opencontainers\.image\.title="([^"]+)"')
OS_IMAGE_ID = "sha256:" + "0" * 64


@dataclass
class Built:
    image: str  # torchstack image id (from the Dockerfile's title label)
    files: dict[str, bytes]
    args: dict[str, str]


@dataclass
class FakeBackend:
    refs: dict[str, str] = field(default_factory=lambda: {"debian:bookworm-slim": OS_IMAGE_ID})
    failing: dict[str, tuple[list[str], str]] = field(default_factory=dict)  # id -> lines, error
    interrupt_on: str | None = None
    labels: dict[str, str] = field(default_factory=dict)  # image ID -> input hash
    built: list[Built] = field(default_factory=list)
    builds: int = 0
    # remove_dangling calls: (the images asked for, the short IDs tagged at that moment)
    removed: list[tuple[tuple[str, ...], set[str]]] = field(default_factory=list)

    def remove_dangling(self, images: tuple[str, ...]) -> int:
        self.removed.append((images, {i[7:19] for i in self.refs.values()}))
        return len(images)

    def image_id(self, ref: str) -> str | None:
        return self.refs.get(ref) or (ref if ref in self.labels else None)

    def images_with_label(self, key: str, value: str) -> list[tuple[str, list[str]]]:
        assert key == "io.torchstack.input-hash"
        return [(image, [ref for ref, target in self.refs.items() if target == image])
                for image, label in reversed(self.labels.items()) if label == value]

    def image_size(self, image_id: str) -> int:
        return 1_000_000

    def tag(self, image_id: str, ref: str) -> None:
        self.refs[ref] = image_id

    def build(self, context: IO[bytes], buildargs: dict[str, str],
              on_line: Callable[[str], None]) -> BuildOutcome:
        self.builds += 1
        with tarfile.open(fileobj=io.BytesIO(context.read())) as tar:
            files = {m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                     for m in tar.getmembers() if m.isfile()}
        match = TITLE.search(files["Dockerfile"].decode())
        assert match, "no title label in the Dockerfile"
        image = match.group(1)
        self.built.append(Built(image, files, dict(buildargs)))
        if image == self.interrupt_on:
            on_line("Step 1/3 : FROM something")
            raise KeyboardInterrupt
        if image in self.failing:
            lines, error = self.failing[image]
            for line in lines:
                on_line(line)
            return BuildOutcome(None, error, ("f" * 12,))
        for n, line in enumerate(("FROM x", "RUN sh /tmp/layer/install.sh", "USER 1000:1000")):
            on_line(f"Step {n + 1}/3 : {line}")
            on_line(f" ---> {n:012x}")
        new_id = f"sha256:{self.builds:064x}"
        self.labels[new_id] = buildargs["TORCHSTACK_INPUT_HASH"]
        return BuildOutcome(new_id, None, ("000000000000", "000000000001", new_id[7:19]))


class Recorder:
    """A Reporter that keeps every event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.summary: object | None = None

    def begin(self, results: list[object]) -> None:
        self.events.append(("begin", str(len(results)), ""))

    def update(self, result: object) -> None:
        self.events.append(("update", result.id, result.status))  # type: ignore[attr-defined]

    def line(self, result: object, text: str) -> None:
        self.events.append(("line", result.id, text))  # type: ignore[attr-defined]

    def end(self, summary: object) -> None:
        self.summary = summary

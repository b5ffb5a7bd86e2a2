"""Helpers for integration tests: run the CLI, read build.json, scan saved images, clean up."""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from torchstack.cli import main

# BuildKit marks every history entry it wrote; each install step names its group.
BUILDKIT_MARK = "# buildkit"
INSTALL_GROUP = re.compile(r"install-group\.sh 946684800 (\d\d-[\w.-]+) ")


def run_cli(capsys: Any, matrix_root: Path, *args: str) -> tuple[int, str]:
    """`torchstack --matrix <root>/matrix.yaml ARGS` in-process: (exit code, stdout + stderr)."""
    capsys.readouterr()
    code = main(["--matrix", str(matrix_root / "matrix.yaml"), *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def last_build(matrix_root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (matrix_root / ".torchstack/runs/latest/build.json").read_text())
    return data


def statuses(build: dict[str, Any]) -> dict[str, str]:
    return {image: entry["status"] for image, entry in build["images"].items()}


def images_in_logs(roots: Iterable[Path]) -> set[str]:
    """Short IDs of every image a build of these matrix folders produced (their build.json)."""
    found: set[str] = set()
    for root in roots:
        for record in root.glob(".torchstack/runs/*/build.json"):
            for entry in json.loads(record.read_text()).get("images", {}).values():
                if entry.get("status") == "built" and entry.get("image_id"):
                    found.add(entry["image_id"].removeprefix("sha256:")[:12])
    return found


def remove_test_images(api: Any, repository: str, built: set[str]) -> int:
    """Untag `repository:*` and pins of the images we built, then remove those of ours that are
    left dangling; returns how many. Never touches BuildKit's cache or others' images."""
    removed = 0
    for image in api.images(name=repository):
        for tag in image.get("RepoTags") or []:
            if tag.startswith(repository + ":"):
                api.remove_image(tag)
    for image in api.images(name=f"{repository}-pin"):
        for tag in image.get("RepoTags") or []:
            if tag.split(":", 1)[1][:12] in built:  # a pin named after one of our images
                api.remove_image(tag)
    for _ in range(10):  # removing a child can leave its parent dangling
        dangling = [i["Id"] for i in api.images(filters={"dangling": True})
                    if i["Id"].removeprefix("sha256:")[:12] in built]
        if not dangling:
            break
        for image_id in dangling:
            try:
                api.remove_image(image_id)
                removed += 1
            except Exception:  # in use by a container or another image: leave it
                built.discard(image_id.removeprefix("sha256:")[:12])
    return removed


class _Chunks(io.RawIOBase):
    """A readable file over the Engine API's chunk iterator: `docker save` read as a stream."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.pending = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            try:
                self.pending = next(self.chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self.pending))
        buffer[:n], self.pending = self.pending[:n], self.pending[n:]
        return n


def saved_image_texts(api: Any, image: str) -> Iterator[tuple[str, bytes]]:
    """(where, bytes) for every file of every layer of `docker save` (name, PAX headers, link
    target, content) and its JSON files, streamed: nothing is held but the current file."""
    stream = io.BufferedReader(_Chunks(iter(api.get_image(image, chunk_size=1 << 20))),
                               buffer_size=1 << 20)
    with tarfile.open(fileobj=stream, mode="r|") as outer:
        for member in outer:
            if not member.isfile():
                continue
            data = outer.extractfile(member)
            assert data is not None
            if not member.name.endswith("layer.tar"):
                yield member.name, data.read()
                continue
            with tarfile.open(fileobj=data, mode="r|") as layer:
                for entry in layer:
                    where = f"{member.name}:{entry.name}"
                    yield where, entry.name.encode()
                    if entry.pax_headers:
                        yield where, json.dumps(entry.pax_headers).encode()
                    if entry.isfile():
                        content = layer.extractfile(entry)
                        assert content is not None
                        yield where, content.read()
                    elif entry.issym() or entry.islnk():
                        yield where, entry.linkname.encode()


def history_text(api: Any, image: str) -> str:
    """`docker history --no-trunc`: every entry's CreatedBy and Comment, newest first."""
    return "\n".join(f"{h.get('CreatedBy', '')} {h.get('Comment', '')}"
                     for h in api.history(image))


def install_groups(api: Any, image: str) -> list[str]:
    """The install groups in an image's history, oldest first (the order they were built)."""
    created = [h.get("CreatedBy", "") for h in reversed(api.history(image))]
    return [m.group(1) for line in created for m in [INSTALL_GROUP.search(line)] if m]

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

STEP_IMAGE = re.compile(r"^ ---> ([0-9a-f]{12})\s*$", re.MULTILINE)
# The build stage's last image: the one the install step produced.
INSTALL_STEP_IMAGE = re.compile(r"RUN sh /tmp/layer/install.sh\n(?:.*\n)*? ---> ([0-9a-f]{12})\n")


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
    """Short IDs of every image a build step produced or reused, from the run logs."""
    found: set[str] = set()
    for root in roots:
        for log in root.glob(".torchstack/runs/*/*.build.log"):
            found |= set(STEP_IMAGE.findall(log.read_text(errors="replace")))
    return found


def remove_test_images(api: Any, repository: str, step_images: set[str]) -> int:
    """Untag `repository:*`, then remove dangling images our builds made; returns how many."""
    removed = 0
    for image in api.images(name=repository):
        for tag in image.get("RepoTags") or []:
            if tag.startswith(repository + ":"):
                api.remove_image(tag)
    for _ in range(10):  # removing a tail can leave its parent dangling
        dangling = [i["Id"] for i in api.images(filters={"dangling": True})
                    if i["Id"].removeprefix("sha256:")[:12] in step_images]
        if not dangling:
            break
        for image_id in dangling:
            try:
                api.remove_image(image_id)
                removed += 1
            except Exception:  # in use by a container or another image: leave it
                step_images.discard(image_id.removeprefix("sha256:")[:12])
    return removed


def saved_image_texts(api: Any, image: str) -> Iterator[tuple[str, bytes]]:
    """(member name, bytes) for every file of every layer of `docker save`, and its JSON."""
    buffer = io.BytesIO()
    for chunk in api.get_image(image):
        buffer.write(chunk)
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as outer:
        for member in outer.getmembers():
            if not member.isfile():
                continue
            data = outer.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.endswith("layer.tar"):
                with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                    for entry in layer.getmembers():
                        yield f"{member.name}:{entry.name}", entry.name.encode()
                        if entry.pax_headers:
                            yield (f"{member.name}:{entry.name}",
                                   json.dumps(entry.pax_headers).encode())
                        if entry.isfile():
                            yield (f"{member.name}:{entry.name}",
                                   layer.extractfile(entry).read())  # type: ignore[union-attr]
                        elif entry.issym() or entry.islnk():
                            yield f"{member.name}:{entry.name}", entry.linkname.encode()
            else:
                yield member.name, data


def history_text(api: Any, image: str) -> str:
    return "\n".join(f"{h.get('CreatedBy', '')} {h.get('Comment', '')}"
                     for h in api.history(image))

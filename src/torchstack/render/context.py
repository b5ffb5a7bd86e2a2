"""images/<id>/ on disk: write rendered contexts, list stale files, remove orphaned folders.

Files are written through the one safe writer (no symlink followed, exit 2), and only what
torchstack renders is ever deleted: an orphaned folder loses its rendered files and is removed
only when nothing else is left in it; one that holds a lock is kept whole, and reported.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from torchstack.config.model import ImageSpec, Matrix
from torchstack.lock.pylock import LOCK_NAME
from torchstack.render.dockerfile import render_image
from torchstack.workspace.files import ensure_inside, write_text

RENDER_MARK = "Rendered by `torchstack render`"
# Install-group slices of the lock (layerplan.LayerGroup.file); their names vary per image.
GROUP_FILE = re.compile(r"^groups/[0-9]{2}-[A-Za-z0-9_.-]+\.txt$")
# Names an older torchstack rendered, so that folders it left behind are still cleaned up.
FORMER_NAMES = frozenset({"install.sh", "requirements.txt", "torch-requirements.txt",
                          "build-inputs/README.md"})


def write_images(matrix: Matrix, images: list[ImageSpec]) -> list[Path]:
    """Write each image's context; returns the files whose content changed."""
    # Everything is rendered (and so every lock read and checked) before the first write: a
    # bad lock or fragment of any image leaves images/ as it was.
    rendered = [(matrix.images_dir / image.id / relative, text)
                for image in images for relative, text in render_image(image, matrix).items()]
    changed = []
    for path, text in rendered:
        ensure_inside(matrix.root, path)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            write_text(matrix.root, path, text)
            changed.append(path)
    return changed


def stale_files(matrix: Matrix) -> list[str]:
    """Files under images/ that differ from a fresh render, are missing, or belong to no image."""
    stale = []
    expected: set[Path] = set()
    for image in matrix.images:
        for relative, text in render_image(image, matrix).items():
            path = ensure_inside(matrix.root, matrix.images_dir / image.id / relative)
            expected.add(path)
            if not path.is_file():
                stale.append(f"missing: {path.relative_to(matrix.root)}")
            elif path.read_text(encoding="utf-8") != text:
                stale.append(f"differs: {path.relative_to(matrix.root)}")
    if matrix.images_dir.is_dir() and not matrix.images_dir.is_symlink():
        stale += [f"extra:   {path.relative_to(matrix.root)}"
                  for path in _files(matrix.images_dir) if path not in expected]
    return stale


def _files(folder: Path) -> list[Path]:
    """Every file and symlink below `folder`, without descending into symlinked folders."""
    found = []
    for current, dirs, files in os.walk(folder, followlinks=False):
        found += [Path(current, name) for name in files]
        found += [Path(current, name) for name in dirs if Path(current, name).is_symlink()]
    return sorted(found)


def _owned(matrix: Matrix) -> frozenset[str]:
    """Relative names torchstack writes into an image folder (rendered files and the lock)."""
    names = {name for image in matrix.images for name in render_image(image, matrix)}
    return frozenset(names | FORMER_NAMES | {LOCK_NAME})


@dataclass(frozen=True)
class Orphans:
    removed: tuple[Path, ...]  # folders of images the matrix no longer has, deleted
    kept: tuple[Path, ...]  # such folders that hold a lock: never deleted (docs/locks.md)


def remove_orphans(matrix: Matrix) -> Orphans:
    """Delete rendered folders of images the matrix no longer has (only torchstack's own).

    A folder counts as torchstack's when its Dockerfile (a regular file, not a symlink) says
    it was rendered. A folder that holds a lock is kept whole and reported: a lock comes back
    only from the network, possibly at other versions, so a renamed or reverted image id must
    find it where it was. Of any other, only regular files with names torchstack writes are
    deleted; anything else (a symlink, a file someone added) keeps the folder, which is then
    not reported as removed.
    """
    images_dir = matrix.images_dir
    if not images_dir.is_dir() or images_dir.is_symlink():
        return Orphans((), ())
    ensure_inside(matrix.root, images_dir)
    ids = {image.id for image in matrix.images}
    owned = _owned(matrix) - {LOCK_NAME}
    removed, kept = [], []
    for folder in sorted(images_dir.iterdir()):
        if folder.name in ids or folder.is_symlink() or not folder.is_dir():
            continue
        dockerfile_path = folder / "Dockerfile"
        if dockerfile_path.is_symlink() or not dockerfile_path.is_file():
            continue
        if RENDER_MARK not in dockerfile_path.read_text(encoding="utf-8", errors="replace"):
            continue
        if (folder / LOCK_NAME).exists() or (folder / LOCK_NAME).is_symlink():
            kept.append(folder)
            continue
        for path in _files(folder):
            relative = path.relative_to(folder).as_posix()
            if not path.is_symlink() and (relative in owned or GROUP_FILE.fullmatch(relative)):
                path.unlink()
        for current, dirs, _ in os.walk(folder, topdown=False):  # children first
            for name in dirs:
                sub = Path(current, name)
                if not sub.is_symlink() and not any(sub.iterdir()):
                    sub.rmdir()
        if not any(folder.iterdir()):
            folder.rmdir()
            removed.append(folder)
    return Orphans(tuple(removed), tuple(kept))

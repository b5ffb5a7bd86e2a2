"""Writes inside the project stay inside it: a symlink in the tree that points out is refused.

An explicit output path the user names (`bake --out`, `k8s --out`) is the user's choice and
does not go through here.
"""

from __future__ import annotations

from pathlib import Path

from torchstack.errors import ConfigError
from torchstack.workspace.paths import shown


def ensure_inside(root: Path, path: Path) -> Path:
    """`path`, if it and every folder above it up to `root` resolve inside `root`.

    The check resolves symlinks (also a final one, and also a dangling one), so a symlinked
    `images/<id>` or `.torchstack` that leads elsewhere is refused before anything is written.
    """
    real_root = root.resolve()
    real = path.resolve()
    if real != real_root and real_root not in real.parents:
        raise ConfigError(
            f"{shown(root, path)}: refusing to write through a symlink that leads out of the"
            f" project (to {real})",
            tip=f"remove the symlink ({_first_link(root, path) or path}) or point it inside"
                f" {root}")
    return path


def write_text(root: Path, path: Path, text: str) -> None:
    """Write a file inside `root` atomically: a symlink at `path` is replaced, not followed."""
    ensure_inside(root, path.parent)
    ensure_inside(root, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def _first_link(root: Path, path: Path) -> Path | None:
    """The symlink nearest to `root` on the way to `path` (what the user should look at)."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return None
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            return current
    return None



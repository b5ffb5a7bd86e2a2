"""Shared by the test_hostile_* files: a copy of the repository's project, its file tree as
bytes (to prove that a refused command wrote nothing), and the CLI run in-process."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from torchstack.cli import main

REPO = Path(__file__).resolve().parents[2]
# The leaf image whose own packages are not in its parent's lock (sentencepiece, tokenizers).
LEAF = "torch2.9.1-cu128-py3.11-nlp"
ROOT_IMAGE = "torch2.9.1-cu128-py3.11-base"


def copy_project(root: Path) -> Path:
    root.mkdir()
    shutil.copy(REPO / "matrix.yaml", root)
    shutil.copytree(REPO / "layers", root / "layers")
    shutil.copytree(REPO / "images", root / "images")
    shutil.copytree(REPO / "checks", root / "checks",  # k8s mounts the suite from here
                    ignore=shutil.ignore_patterns("__pycache__"))
    return root


def tree(root: Path) -> dict[str, bytes | str]:
    """Every entry below `root`: a file's bytes, a symlink's target, a folder's marker."""
    found: dict[str, bytes | str] = {}
    for current, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = Path(current, name)
            key = str(path.relative_to(root))
            if path.is_symlink():
                found[key] = f"-> {path.readlink()}"
            elif path.is_dir():
                found[key] = "<dir>"
            else:
                found[key] = path.read_bytes()
    return found


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """(exit code, stderr) of `torchstack argv...`; a traceback fails the test by itself."""
    capsys.readouterr()
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err

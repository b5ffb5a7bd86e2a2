"""A small matrix for build tests: torch/cuda axes as the format needs, but tiny PyPI packages.

Layers: root (six, on the real debian:bookworm-slim) -> alpha (idna), beta (packaging),
broken (a package that does not exist, so it cannot be locked) -> orphan, failing (a fragment
that exits 3: a failure inside BuildKit) and sleepy (a fragment that sleeps, for interruption
tests). Images are ordered base, broken, orphan, failing, sleepy, alpha, beta, so failures come
before siblings that must still build. The default group is base, alpha and beta.

Builds install only from locks. `locks="pypi"` runs the real lock stage (uv against PyPI, once
per process; copies reuse its files); `locks="canned"` writes the same files from CANNED, what
that stage wrote on 2026-12-01 (test_lock_fixture checks they still agree), so unit tests need
no network; `locks="none"` leaves every image unlocked.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from torchstack.config.matrix import load_matrix
from torchstack.config.model import Matrix
from torchstack.lock.pylock import (
    LOCK_NAME,
    ImageLock,
    LockedDist,
    lock_inputs,
    lock_path,
    write_lock,
)
from torchstack.lock.uv import LockRequest, find_uv, lock_images
from torchstack.render.context import write_images

LOCAL_REPOSITORY = "torchstack-it"
PREFIX = "it-torch2.9.1-cu128-"
BASE, ALPHA, BETA = PREFIX + "base", PREFIX + "alpha", PREFIX + "beta"
BROKEN, ORPHAN, SLEEPY = PREFIX + "broken", PREFIX + "orphan", PREFIX + "sleepy"
FAILING = PREFIX + "failing"
UNLOCKABLE = (BROKEN, ORPHAN)  # no index has broken's package; orphan's parent has no lock
FAILING_MESSAGE = "torchstack-it: the failing layer's fragment exits 3"
Locks = Literal["pypi", "canned", "none"]

MATRIX = f"""\
schema_version: 1
id_template: "it-torch{{{{torch}}}}-{{{{cuda_tag}}}}-{{{{flavor}}}}"
os_bases:
  bookworm:
    image: {{base_image}}
    python: "3.11"
    bootstrap: {{{{suite: bookworm, mirror: "http://deb.debian.org/debian"}}}}
flavors:
  base: root
  broken: broken
  orphan: orphan
  failing: failing
  sleepy: sleepy
  alpha: alpha
  beta: beta
axes:
  torch: ["2.9.1"]
  cuda: ["12.8"]
  os: [bookworm]
  flavor: [base, broken, orphan, failing, sleepy, alpha, beta]
default_group: ["*-base", "*-alpha", "*-beta"]
registry:
  local: {LOCAL_REPOSITORY}
  push: "127.0.0.1:5000/{LOCAL_REPOSITORY}"
tags:
  release: "it-{{{{torch}}}}-cuda{{{{cuda}}}}-{{{{flavor}}}}"
  candidate: "{{{{id}}}}-{{{{hash12}}}}"
promotion: {{{{require: cpu}}}}
"""
ROOT_FRAGMENT = """\
RUN apt-get update \\
 && apt-get install -y --no-install-recommends python3 ca-certificates \\
 && rm -rf /var/lib/apt/lists/* \\
 && useradd --uid 1000 --create-home --shell /bin/bash ml
"""
LAYERS = {
    "root": ("parent: null\ndescription: python3 and six\npackages: [six==1.17.0]\n"
             "env: {{TORCHSTACK_IT_SALT: '{salt}'}}\n", ROOT_FRAGMENT),
    "alpha": ("parent: root\ndescription: idna\npackages: [idna==3.10]\n", ""),
    "beta": ("parent: root\ndescription: packaging\npackages: [packaging==25.0]\n", ""),
    "broken": ("parent: root\ndescription: a package no index has\n"
               "packages: [torchstack-it-no-such-package==0.0.1]\n", ""),
    "orphan": ("parent: broken\ndescription: child of a failing layer\n"
               "packages: [idna==3.10]\n", ""),
    "failing": ("parent: root\ndescription: a fragment that fails\n",
                f'RUN echo "{FAILING_MESSAGE}" >&2 && exit 3\n'),
    "sleepy": ("parent: root\ndescription: sleeps while building\n",
               "RUN sleep 600 # {salt}\n"),
}
_FILES = "https://files.pythonhosted.org/packages"
# What the lock stage resolved for these pins from PyPI (name, version, wheel path, size, sha256).
WHEELS = {
    "six": ("1.17.0", "b7/ce/149a00dd41f10bc29e5921b496af8b574d8413afcd5e30dfa0ed46c2cc5e/"
            "six-1.17.0-py2.py3-none-any.whl", 11050,
            "4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274"),
    "idna": ("3.10", "76/c6/c88e154df9c4e1a2a66ccf0005a88dfb2650c1dffb6f5ce603dfbd452ce3/"
             "idna-3.10-py3-none-any.whl", 70442,
             "946d195a0d259cbba61165e88e65941f16e9b36ea6ddb97f00452bae8b1287d3"),
    "packaging": ("25.0", "20/12/38679034af332785aac8774540895e234f4d07f7545804097de4b666afd8/"
                  "packaging-25.0-py3-none-any.whl", 66469,
                  "29572ef2b1f17581046b3a2227d5c611fb25ec70ca1ba8554b24b0e69331a484"),
}
CANNED = {BASE: ("six",), FAILING: ("six",), SLEEPY: ("six",), ALPHA: ("idna", "six"),
          BETA: ("packaging", "six")}
CANNED_UV = "0.13.9"
_pypi_locks: dict[str, str] = {}  # image id -> lock text, from this process's real lock run


def write_fixture_matrix(root: Path, *, salt: str = "0",
                         base_image: str = "debian:bookworm-slim",
                         locks: Locks = "canned") -> Matrix:
    """Write matrix.yaml + layers/ (+ locks) under root, render images/, return the matrix."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "matrix.yaml").write_text(MATRIX.format(base_image=base_image), encoding="utf-8")
    for name, (spec, fragment) in LAYERS.items():
        folder = root / "layers" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "layer.yaml").write_text(spec.format(salt=salt), encoding="utf-8")
        if fragment:
            (folder / "Dockerfile.fragment").write_text(fragment.format(salt=salt),
                                                        encoding="utf-8")
    matrix = load_matrix(root / "matrix.yaml")
    if locks == "canned":
        write_canned_locks(matrix)
    elif locks == "pypi":
        write_pypi_locks(matrix)
    return rerender(root)


def write_canned_locks(matrix: Matrix) -> None:
    """CANNED as lock files, parents first (a child's lock names its parent's file's sha256)."""
    for spec in matrix.images:
        if spec.id not in CANNED:
            continue
        inputs = lock_inputs(matrix, spec)
        dists = tuple(LockedDist(name, version, path.rsplit("/", 1)[1], sha256, size,
                                 f"{_FILES}/{path}")
                      for name in CANNED[spec.id]
                      for version, path, size, sha256 in [WHEELS[name]])
        write_lock(matrix, spec, ImageLock(
            image_id=spec.id, dists=dists, python=inputs.python, platform=inputs.platform,
            index=inputs.index, pins=inputs.pins, parent_sha256=inputs.parent_sha256,
            uv_version=CANNED_UV, resolved_from=inputs.resolved_from,
            extra_index=inputs.extra_index))


def write_pypi_locks(matrix: Matrix) -> None:
    """The real lock stage for every image (broken and orphan fail to lock, as they must)."""
    if not _pypi_locks:
        with tempfile.TemporaryDirectory(prefix="torchstack-it-lock-") as scratch:
            template = Path(scratch)
            for name in ("matrix.yaml", "layers"):
                copy = shutil.copytree if (matrix.root / name).is_dir() else shutil.copy2
                copy(matrix.root / name, template / name)
            fresh = load_matrix(template / "matrix.yaml")
            outcomes = lock_images(fresh, list(fresh.images), LockRequest(environ=os.environ),
                                   find_uv())
            failed = sorted(o.image_id for o in outcomes if o.error is not None)
            assert failed == sorted(UNLOCKABLE), [(o.image_id, o.error) for o in outcomes]
            for spec in fresh.images:
                path = lock_path(fresh, spec)
                if path.is_file():
                    _pypi_locks[spec.id] = path.read_text(encoding="utf-8")
    for spec in matrix.images:
        if spec.id in _pypi_locks:
            path = lock_path(matrix, spec)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_pypi_locks[spec.id], encoding="utf-8")


def rerender(root: Path) -> Matrix:
    matrix = load_matrix(root / "matrix.yaml")
    write_images(matrix, list(matrix.images))
    return matrix


def change_layer(root: Path, layer: str, env_value: str) -> Matrix:
    """Give a layer an extra ENV (so its image, and only its subtree, must be rebuilt)."""
    spec = root / "layers" / layer / "layer.yaml"
    text = spec.read_text(encoding="utf-8")
    spec.write_text(text + f"\n# changed\nenv: {{TORCHSTACK_IT_CHANGE: '{env_value}'}}\n"
                    if "env:" not in text else
                    text.replace("env: {", f"env: {{TORCHSTACK_IT_CHANGE: '{env_value}', "),
                    encoding="utf-8")
    return rerender(root)


def tamper_hash(root: Path, image: str, package: str, fake_sha256: str) -> tuple[str, str]:
    """Replace `package`'s sha256 in an image's lock and render; returns (real, fake)."""
    path = root / "images" / image / LOCK_NAME
    text = path.read_text(encoding="utf-8")
    real = WHEELS[package][3]
    assert real in text, f"{path} does not lock {package} with sha256 {real}"
    path.write_text(text.replace(real, fake_sha256), encoding="utf-8")
    rerender(root)
    return real, fake_sha256


def copy_matrix(source: Path, target: Path) -> Path:
    """A copy of matrix.yaml, layers/ and images/ (not run directories)."""
    for name in ("layers", "images"):
        shutil.copytree(source / name, target / name)
    shutil.copy2(source / "matrix.yaml", target / "matrix.yaml")
    return target

"""A small matrix for build tests: torch/cuda axes as the format needs, but tiny PyPI packages.

Layers: root (six, on the real debian:bookworm-slim) -> alpha (idna), beta (packaging),
broken (a package that does not exist) -> orphan, and sleepy (a fragment that sleeps, for
interruption tests). Images are ordered base, broken, orphan, sleepy, alpha, beta, so a failure
comes before siblings that must still build. The default group is base, alpha and beta.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from torchstack.matrix import load_matrix
from torchstack.model import Matrix
from torchstack.context_files import write_images

LOCAL_REPOSITORY = "torchstack-it"
PREFIX = "it-torch2.9.1-cu128-"
BASE, ALPHA, BETA = PREFIX + "base", PREFIX + "alpha", PREFIX + "beta"
BROKEN, ORPHAN, SLEEPY = PREFIX + "broken", PREFIX + "orphan", PREFIX + "sleepy"

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
  sleepy: sleepy
  alpha: alpha
  beta: beta
axes:
  torch: ["2.9.1"]
  cuda: ["12.8"]
  os: [bookworm]
  flavor: [base, broken, orphan, sleepy, alpha, beta]
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
    "sleepy": ("parent: root\ndescription: sleeps while building\n",
               "RUN sleep 600 # {salt}\n"),
}


def write_fixture_matrix(root: Path, *, salt: str = "0",
                         base_image: str = "debian:bookworm-slim") -> Matrix:
    """Write matrix.yaml + layers/ under root, render images/ and return the loaded matrix."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "matrix.yaml").write_text(MATRIX.format(base_image=base_image), encoding="utf-8")
    for name, (spec, fragment) in LAYERS.items():
        folder = root / "layers" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "layer.yaml").write_text(spec.format(salt=salt), encoding="utf-8")
        if fragment:
            (folder / "Dockerfile.fragment").write_text(fragment.format(salt=salt),
                                                        encoding="utf-8")
    return rerender(root)


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


def copy_matrix(source: Path, target: Path) -> Path:
    """A copy of matrix.yaml, layers/ and images/ (not run directories)."""
    for name in ("layers", "images"):
        shutil.copytree(source / name, target / name)
    shutil.copy2(source / "matrix.yaml", target / "matrix.yaml")
    return target

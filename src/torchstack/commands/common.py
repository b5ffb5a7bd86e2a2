"""Arguments and helpers shared by several verbs."""

from __future__ import annotations

import argparse
import os

from torchstack import kinds
from torchstack.errors import ConfigError
from torchstack.matrix import load_matrix
from torchstack.model import Matrix


def add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("globs", nargs="*", metavar="GLOB",
                        help="image ids to act on, shell-style globs (default: the default group)")
    parser.add_argument("--all", dest="everything", action="store_true",
                        help="every image of the matrix")


def matrix_of(args: argparse.Namespace) -> Matrix:
    return load_matrix(args.matrix)


def push_repository(matrix: Matrix) -> str:
    """Where candidates and releases go: $TORCHSTACK_REGISTRY, else matrix.yaml's registry.push."""
    repository = os.environ.get("TORCHSTACK_REGISTRY") or matrix.push_repository
    problem = kinds.repository_problem(repository)
    if problem:  # matrix.yaml's was checked when loaded: this is the environment's
        raise ConfigError(f"TORCHSTACK_REGISTRY={repository!r} {problem}",
                          tip="e.g. TORCHSTACK_REGISTRY=127.0.0.1:5000/torchstack")
    return repository

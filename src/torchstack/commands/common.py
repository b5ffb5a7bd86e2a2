"""Arguments and helpers shared by several verbs."""

from __future__ import annotations

import argparse

from torchstack.matrix import load_matrix
from torchstack.model import Matrix


def add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("globs", nargs="*", metavar="GLOB",
                        help="image ids to act on, shell-style globs (default: the default group)")
    parser.add_argument("--all", dest="everything", action="store_true",
                        help="every image of the matrix")


def matrix_of(args: argparse.Namespace) -> Matrix:
    return load_matrix(args.matrix)

"""Shared test helpers: paths of the repo and its default matrix."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.paths import REPO


@pytest.fixture
def repo_root() -> Path:
    return REPO

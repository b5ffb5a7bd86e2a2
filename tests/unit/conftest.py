"""Unit tests never talk to Docker: any attempt to create a client fails loudly."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    docker = pytest.importorskip("docker")

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("unit tests must not talk to Docker; move it to tests/integration")

    monkeypatch.setattr(docker, "from_env", refuse)
    monkeypatch.setattr(docker.DockerClient, "__init__", refuse)
    monkeypatch.setattr(docker.APIClient, "__init__", refuse)

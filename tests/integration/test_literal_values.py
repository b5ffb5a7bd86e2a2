"""A `$` in a layer's env or a description is a `$` inside the built image (BuildKit, real Engine).

The ENV and LABEL instructions are the ones torchstack renders for a project whose nlp layer
env holds `A$B`; they are built on debian:bookworm-slim (a few seconds, nothing installed), and
the value is read back by a process inside the image and from the image config.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import dockerfile
import pytest

from torchstack.backend.buildkit import BuildRequest, find_cli
from torchstack.cli import main

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parents[2]
LEAF = "torch2.9.1-cu128-py3.11-nlp"


def test_a_dollar_in_layer_env_and_description_is_literal_in_the_image(
        tmp_path: Path, docker_api: Any, os_base: str) -> None:
    project = tmp_path / "project"
    shutil.copytree(REPO / "layers", project / "layers")
    shutil.copy(REPO / "matrix.yaml", project)
    shutil.copytree(REPO / "images", project / "images")
    layer = project / "layers" / "nlp" / "layer.yaml"
    layer.write_text(layer.read_text()
                     .replace('HF_HUB_OFFLINE: "1"', 'HF_HUB_OFFLINE: "1"\n  LITERAL: "A$B"')
                     .replace("description: Hugging Face", "description: costs $HOME Hugging Face"))
    assert main(["--matrix", str(project / "matrix.yaml"), "render"]) == 0
    rendered = (project / "images" / LEAF / "Dockerfile").read_text()
    tail = [c.original for c in dockerfile.parse_string(rendered) if c.cmd.upper() in
            ("ENV", "LABEL") and ("LITERAL" in c.original or "description" in c.original)]
    assert len(tail) == 2, tail

    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {os_base}\n" + "\n".join(tail) + "\n")
    result = find_cli(os.environ).build(BuildRequest(context), lambda line: None)
    assert result.image_id is not None, result.error
    try:
        inside = subprocess.run(["docker", "run", "--rm", result.image_id, "sh", "-c",
                                 'printf %s "$LITERAL"'], capture_output=True, text=True,
                                check=True, timeout=120).stdout
        assert inside == "A$B"
        config = docker_api.inspect_image(result.image_id)["Config"]
        assert "LITERAL=A$B" in config["Env"]
        assert config["Labels"]["org.opencontainers.image.description"].startswith(
            "costs $HOME Hugging Face")
    finally:
        docker_api.remove_image(result.image_id, force=True)

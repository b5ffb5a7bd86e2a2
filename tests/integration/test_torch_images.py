"""The real torch 2.9.1 + CUDA 12.8 base and vision images of the repository's matrix.

Built through `torchstack build` like any other image (minutes, ~7.5 GB; wheels from PyPI), then
asked from inside what they hold. These images are kept: they are the project's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.dockerutil import last_build, run_cli

pytestmark = [pytest.mark.docker, pytest.mark.torch_image]
BASE = "torch2.9.1-cu128-py3.11-base"
VISION = "torch2.9.1-cu128-py3.11-vision"
PROBE = ("import torch, torchvision; print(torch.__version__); print(torch.version.cuda);"
         " print(torchvision.__version__)")


def run_in(api: Any, image: str, command: list[str]) -> str:
    container = api.create_container(image, command)
    try:
        api.start(container)
        code = api.wait(container, timeout=300)["StatusCode"]
        output: str = api.logs(container).decode()
        assert code == 0, output
        return output
    finally:
        api.remove_container(container, force=True)


def test_real_torch_base_and_vision(repo_matrix_copy: Path, capsys: Any, docker_api: Any,
                                    os_base: str) -> None:
    code, output = run_cli(capsys, repo_matrix_copy, "build", VISION, "--no-progress")
    assert code == 0, output
    build = last_build(repo_matrix_copy)
    assert [build["images"][i]["status"] in ("built", "cached") for i in (BASE, VISION)] == [
        True, True]
    vision_id = build["images"][VISION]["image_id"]
    assert docker_api.inspect_image(f"torchstack:{VISION}")["Id"] == vision_id
    torch_version, cuda, torchvision = run_in(docker_api, vision_id,
                                              ["python", "-c", PROBE]).split()
    assert torch_version == "2.9.1+cu128"
    assert cuda == "12.8"
    assert torchvision.startswith("0.24.1")
    base_output = run_in(docker_api, build["images"][BASE]["image_id"],
                         ["python", "-c", "import torch; print(torch.__version__)"])
    assert base_output.strip() == "2.9.1+cu128"

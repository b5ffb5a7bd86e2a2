"""`torchstack base bootstrap`: debootstrap + docker import under the name the matrix expects."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dockerutil import run_cli
from tests.integration.fixture_matrix import write_fixture_matrix

pytestmark = pytest.mark.docker
IMAGE = "torchstack-it-bootstrap:bookworm"


@pytest.mark.skipif(shutil.which("debootstrap") is None or os.geteuid() != 0,
                    reason="needs debootstrap and root")
def test_bootstrap_imports_a_slim_labelled_image_once(tmp_path: Path, capsys: Any,
                                                      docker_api: Any) -> None:
    root = tmp_path / "matrix"
    write_fixture_matrix(root, base_image=IMAGE)
    try:
        code, output = run_cli(capsys, root, "base", "bootstrap", "bookworm")
        assert code == 0, output
        assert f"imported {IMAGE}" in output
        image = docker_api.inspect_image(IMAGE)
        labels = image["Config"]["Labels"]
        assert labels["io.torchstack.bootstrapped"] == "true"
        assert labels["io.torchstack.bootstrap.suite"] == "bookworm"
        assert labels["io.torchstack.bootstrap.variant"] == "minbase"
        assert any(e.startswith("PATH=/usr/local/sbin:") for e in image["Config"]["Env"])
        assert image["Config"]["Cmd"] == ["bash"]
        assert image["Size"] < 150e6, f"{image['Size'] / 1e6:.0f} MB is not slim"
        container = docker_api.create_container(
            IMAGE, ["sh", "-c", "ls /var/lib/apt/lists | grep -v -x partial | wc -l;"
                                " ls /usr/share/man | wc -l; apt-get --version | head -1"])
        try:
            docker_api.start(container)
            assert docker_api.wait(container)["StatusCode"] == 0
            lists, man, apt = docker_api.logs(container).decode().split("\n")[:3]
        finally:
            docker_api.remove_container(container, force=True)
        assert (lists, man) == ("0", "0") and apt.startswith("apt ")

        code, output = run_cli(capsys, root, "base", "bootstrap")  # default: the bases in use
        assert code == 0, output
        assert "exists" in output
        assert docker_api.inspect_image(IMAGE)["Id"] == image["Id"]
    finally:
        with contextlib.suppress(Exception):
            docker_api.remove_image(IMAGE)

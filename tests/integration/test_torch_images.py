"""The real torch 2.9.1 + CUDA 12.8 base and vision images of the repository's matrix.

Built through `torchstack build` (BuildKit, from the committed locks) like any other image:
minutes and ~7.5 GB from PyPI the first time, found by input hash afterwards. Then asked from
inside what they hold, and their history read. These images are kept: they are the project's.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dockerutil import BUILDKIT_MARK, install_groups, last_build, run_cli
from tests.paths import REPO

pytestmark = [pytest.mark.docker, pytest.mark.torch_image]
BASE = "torch2.9.1-cu128-py3.11-base"
VISION = "torch2.9.1-cu128-py3.11-vision"
EPOCH = 946684800  # 2000-01-01: every mtime an install step leaves (render.EPOCH)
BASE_GROUPS = ["01-nvidia-cudnn", "02-nvidia-cublas", "03-nvidia-nccl", "04-nvidia-solvers",
               "05-nvidia-other", "06-triton", "07-torch", "08-python-packages"]
# Runs inside the image as its own user: versions, and what the venv and the disk hold.
PROBE = r"""
import json, os, subprocess, sys
import torch
facts = {"torch": torch.__version__, "cuda": torch.version.cuda}
try:
    import torchvision
    facts["torchvision"] = torchvision.__version__
except ImportError:
    pass
entries, wrong_mtime, owners = 0, [], set()
for top, dirs, files in os.walk("/opt/venv"):
    for path in [top] + [os.path.join(top, n) for n in files]:
        st = os.lstat(path)
        entries += 1
        owners.add(st.st_uid)
        if st.st_mtime_ns != 946684800 * 10**9:
            wrong_mtime.append(path)
uv = []
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys", "/dev")]
    uv += [os.path.join(top, f) for f in files if f in ("uv", "uvx")]
src = os.path.dirname(torch.__file__)
sources = [os.path.join(src, n) for n in ("__init__.py", "functional.py", "nn/modules/linear.py")]
facts |= {
    "entries": entries, "wrong_mtime": wrong_mtime[:5], "owners": sorted(owners), "uv": uv,
    "pyc": {s: os.path.isfile(s) and os.path.isfile(
        os.path.join(os.path.dirname(s), "__pycache__",
                     os.path.basename(s)[:-3] + ".cpython-311.pyc")) for s in sources},
    "pip": subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True,
                          text=True).stdout.split(" from ")[0],
    "user": os.getuid(),
}
print(json.dumps(facts))
"""


def probe(api: Any, image: str) -> dict[str, Any]:
    container = api.create_container(image, ["python", "-c", PROBE],
                                     host_config=api.create_host_config(network_mode="none"))
    try:
        api.start(container)
        code = api.wait(container, timeout=600)["StatusCode"]
        output: str = api.logs(container).decode()
        assert code == 0, output
        facts: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
        return facts
    finally:
        api.remove_container(container, force=True)


def test_real_torch_base_and_vision(repo_matrix_copy: Path, capsys: Any, docker_api: Any,
                                    os_base: str) -> None:
    code, output = run_cli(capsys, repo_matrix_copy, "build", VISION, "--no-progress")
    assert code == 0, output
    build = last_build(repo_matrix_copy)
    assert {build["images"][i]["status"] for i in (BASE, VISION)} <= {"built", "cached"}
    base_id, vision_id = (build["images"][i]["image_id"] for i in (BASE, VISION))
    assert docker_api.inspect_image(f"torchstack:{VISION}")["Id"] == vision_id

    # BuildKit wrote the history: one install step per lock group, least-changing first.
    assert install_groups(docker_api, base_id) == BASE_GROUPS
    assert install_groups(docker_api, vision_id) == [*BASE_GROUPS, "01-vision"]
    created = [h["CreatedBy"] for h in docker_api.history(vision_id)]
    assert all(c.endswith(BUILDKIT_MARK) for c in created if c.startswith("RUN "))

    for image_id, image in ((base_id, BASE), (vision_id, VISION)):
        facts = probe(docker_api, image_id)
        assert (facts["torch"], facts["cuda"]) == ("2.9.1+cu128", "12.8"), image
        assert facts["uv"] == [], f"{image}: uv reached the image: {facts['uv']}"
        assert facts["pip"].startswith("pip "), f"{image}: no pip: {facts['pip']!r}"
        assert all(facts["pyc"].values()), f"{image}: bytecode missing: {facts['pyc']}"
        assert facts["entries"] > 10_000 and facts["wrong_mtime"] == [], image
        assert facts["owners"] == [0] and facts["user"] == 1000, image
    assert facts["torchvision"].startswith("0.24.1")


def test_images_say_which_commit_they_came_from(docker_api: Any) -> None:
    """OCI revision and created come from git at build time, outside the input hash: the
    revision is a commit of this history, created the time of the last commit that touched the
    image's context (not the wall clock). /tmp stays world-writable with its sticky bit."""
    root = REPO

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              check=False)

    for image in (BASE, VISION):
        labels = docker_api.inspect_image(f"torchstack:{image}")["Config"]["Labels"]
        revision = labels["org.opencontainers.image.revision"]
        assert git("merge-base", "--is-ancestor", revision, "HEAD").returncode == 0, revision
        touched = git("log", "-1", "--format=%cI", revision, "--", f"images/{image}").stdout
        assert labels["org.opencontainers.image.created"] == touched.strip(), image
    stat = subprocess.run(["/usr/bin/docker", "run", "--rm", f"torchstack:{BASE}", "stat", "-c",
                           "%a", "/tmp"], capture_output=True, text=True, check=True)
    assert stat.stdout.strip() == "1777"

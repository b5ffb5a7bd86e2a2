"""Content identity (backend/identity.py): one image, three representations, one content ID.

DEBIAN_* are the same image (debian:bookworm-slim as bootstrapped here) captured on 2026-12-03
three ways: the Engine's `docker image inspect`, the Docker config `docker save` wrote (what
`docker push` uploads, with `container_config` and Docker-only fields), and the OCI config
skopeo 1.9 wrote when it pushed the image with zstd layers (a different config digest).
"""

from __future__ import annotations

import copy
from typing import Any

from torchstack.backend.identity import (
    ImageInspect,
    content_difference,
    content_of_blob,
    content_of_inspect,
)
from torchstack.workspace.json_types import JSON

DIFF_ID = "sha256:96517262153ae712bd3bece2760a336810f6b6e8cc87751a3a4cf3427d6d7604"
LABELS: dict[str, JSON] = {"io.torchstack.bootstrap.created": "2026-12-03T09:58:06Z",
          "io.torchstack.bootstrap.mirror": "http://deb.debian.org/debian",
          "io.torchstack.bootstrap.suite": "bookworm",
          "io.torchstack.bootstrap.variant": "minbase", "io.torchstack.bootstrapped": "true"}
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DOCKER_ONLY: dict[str, JSON] = {
    "Hostname": "", "Domainname": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Image": "",
    "OnBuild": None}
DEBIAN_INSPECT: ImageInspect = {
    "Id": "sha256:a01362589e1eac8f774f599326ded2eb34d0f9768b97d9af5c1d09ebd356ba5b",
    "Architecture": "amd64", "Os": "linux",
    "Config": {**DOCKER_ONLY, "User": "", "Env": [PATH], "Cmd": ["bash"], "Volumes": None,
               "WorkingDir": "", "Entrypoint": None, "Labels": LABELS},
    "RootFS": {"Type": "layers", "Layers": [DIFF_ID]},
}
DEBIAN_DOCKER_CONFIG: dict[str, Any] = {
    "architecture": "amd64", "comment": "Imported from -", "os": "linux",
    "config": {**DOCKER_ONLY, "User": "", "Env": [PATH], "Cmd": ["bash"], "Volumes": None,
               "WorkingDir": "", "Entrypoint": None, "Labels": LABELS},
    "container_config": {**DOCKER_ONLY, "User": "", "Env": None, "Cmd": None,
                         "Volumes": None, "WorkingDir": "", "Entrypoint": None,
                         "Labels": None},
    "created": "2026-12-03T09:58:08.635867077Z", "docker_version": "20.10.24+dfsg1",
    "history": [{"created": "2026-12-03T09:58:08.635867077Z", "comment": "Imported from -"}],
    "rootfs": {"type": "layers", "diff_ids": [DIFF_ID]},
}
DEBIAN_OCI_CONFIG: dict[str, Any] = {
    "created": "2026-12-03T09:58:08.635867077Z", "architecture": "amd64", "os": "linux",
    "config": {"Env": [PATH], "Cmd": ["bash"], "Labels": LABELS},
    "rootfs": {"type": "layers", "diff_ids": [DIFF_ID]},
    "history": [{"created": "2026-12-03T09:58:08.635867077Z", "comment": "Imported from -"}],
}


def with_config(blob: dict[str, Any], **fields: Any) -> dict[str, Any]:
    changed = copy.deepcopy(blob)
    changed["config"].update(fields)
    return changed


def test_one_image_has_one_content_id_however_it_was_published() -> None:
    ids = {content_of_inspect(DEBIAN_INSPECT).id, content_of_blob(DEBIAN_DOCKER_CONFIG).id,
           content_of_blob(DEBIAN_OCI_CONFIG).id}
    assert len(ids) == 1
    assert content_difference(content_of_inspect(DEBIAN_INSPECT),
                              content_of_blob(DEBIAN_OCI_CONFIG)) is None


def test_docker_only_fields_are_dropped_even_when_set() -> None:
    # A Dockerfile HEALTHCHECK, SHELL or ONBUILD lives only in Docker's config: an OCI
    # conversion drops them, and the content stays the same.
    docker = with_config(DEBIAN_DOCKER_CONFIG, Healthcheck={"Test": ["CMD", "true"]},
                         Shell=["/bin/bash", "-c"], OnBuild=["RUN true"], Hostname="builder",
                         Tty=True, StopTimeout=30)
    assert content_of_blob(docker).id == content_of_blob(DEBIAN_OCI_CONFIG).id


def test_null_empty_and_absent_are_the_same_value() -> None:
    nulls = with_config(DEBIAN_OCI_CONFIG, Entrypoint=None, Volumes=None, User="",
                        ExposedPorts={}, WorkingDir="", ArgsEscaped=False)
    assert content_of_blob(nulls).id == content_of_blob(DEBIAN_OCI_CONFIG).id
    no_config = {k: v for k, v in DEBIAN_OCI_CONFIG.items() if k != "config"}
    empty_config = {**no_config, "config": {}}
    null_config = {**no_config, "config": None}
    assert len({content_of_blob(b).id for b in (no_config, empty_config, null_config)}) == 1


def test_what_a_container_runs_with_is_part_of_the_content() -> None:
    base = content_of_blob(DEBIAN_OCI_CONFIG)
    changes = {
        "Env": [PATH, "LD_PRELOAD=/evil.so"], "Entrypoint": ["/bin/sh"], "Cmd": ["python"],
        "User": "0", "WorkingDir": "/root", "Labels": {**LABELS, "io.torchstack.torch": "x"},
        "ExposedPorts": {"22/tcp": {}}, "Volumes": {"/data": {}}, "StopSignal": "SIGKILL",
    }
    for field, value in changes.items():
        changed = content_of_blob(with_config(DEBIAN_OCI_CONFIG, **{field: value}))
        assert changed.id != base.id, field
        assert content_difference(base, changed) == f"differs in {field}"


def test_label_order_does_not_matter_but_layer_order_does() -> None:
    reordered = with_config(DEBIAN_OCI_CONFIG, Labels=dict(reversed(list(LABELS.items()))))
    assert content_of_blob(reordered).id == content_of_blob(DEBIAN_OCI_CONFIG).id
    other = "sha256:" + "1" * 64
    two = {**DEBIAN_OCI_CONFIG, "rootfs": {"type": "layers", "diff_ids": [DIFF_ID, other]}}
    swapped = {**DEBIAN_OCI_CONFIG, "rootfs": {"type": "layers", "diff_ids": [other, DIFF_ID]}}
    assert content_of_blob(two).id != content_of_blob(swapped).id
    assert content_difference(content_of_blob(two), content_of_blob(swapped)) == (
        f"layer 0 is {other[:19]}, not {DIFF_ID[:19]}")
    assert content_difference(content_of_blob(DEBIAN_OCI_CONFIG), content_of_blob(two)) == (
        "has 2 layers (diff IDs), not 1")


def test_the_platform_is_part_of_the_content() -> None:
    arm = {**DEBIAN_OCI_CONFIG, "architecture": "arm64", "variant": "v8"}
    assert content_of_blob(arm).id != content_of_blob(DEBIAN_OCI_CONFIG).id
    assert content_difference(content_of_blob(DEBIAN_OCI_CONFIG), content_of_blob(arm)) == (
        "is for arm64/linux/v8, not amd64/linux")

"""Build inputs (CA bundle, index URLs with credentials, proxies) never reach the final image.

A build runs with marker values in every input; then `docker save` of the final images is read
layer by layer (every file's name and bytes, link targets, PAX headers) together with the image
config JSON and `docker history --no-trunc`. No marker may appear. As a control, the discarded
build stage's image must show the markers, proving the scan would see a leak.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dockerutil import (
    INSTALL_STEP_IMAGE,
    history_text,
    last_build,
    run_cli,
    saved_image_texts,
)
from tests.integration.fixture_matrix import ALPHA, BASE, change_layer
from torchstack.buildinputs import resolve_inputs

pytestmark = pytest.mark.docker


def real_ca_bundle() -> bytes:
    found = resolve_inputs(None, [], os.environ).ca_bundle
    if found is not None:
        return found.read_bytes()
    import certifi  # the bundle pip would use anyway

    return Path(certifi.where()).read_bytes()


def scan(api: Any, image: str, markers: dict[str, str]) -> dict[str, list[str]]:
    """marker name -> where it was found in the saved image or its history."""
    hits: dict[str, list[str]] = {}
    needles = {name: value.encode() for name, value in markers.items()}
    for where, data in saved_image_texts(api, image):
        for name, needle in needles.items():
            if needle in data:
                hits.setdefault(name, []).append(where)
    history = history_text(api, image)
    for name, value in markers.items():
        if value in history:
            hits.setdefault(name, []).append("docker history")
    return hits


def test_ca_bundle_index_credentials_and_proxies_never_land(
        fixture_copy: Path, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch,
        docker_api: Any) -> None:
    mark = uuid.uuid4().hex[:12]
    markers = {
        "ca": f"ca-marker-{mark}",
        "index user": f"idxuser{mark}",
        "index password": f"idx-s3cr3t-{mark}",
        "torch index password": f"torch-s3cr3t-{mark}",
        "proxy password": f"proxy-s3cr3t-{mark}",
        "no_proxy": f"noproxy-{mark}",
        "all_proxy": f"allproxy-{mark}",
        "ftp_proxy": f"ftpproxy-{mark}",
    }
    ca = tmp_path / "ca.crt"  # a working bundle with a marker line between certificates
    ca.write_bytes(real_ca_bundle() + f"\n# {markers['ca']}\n".encode())
    proxy = f"http://proxyuser:{markers['proxy password']}@proxy-{mark}.invalid:3128"
    # Proxies carry markers but every host the build reaches is exempt through NO_PROXY, so
    # the build still works; the values still reach each RUN step's environment. ALL_PROXY is
    # not passed (the classic builder has no such predefined arg), yet must not land either.
    no_proxy = f".org,.net,.com,.io,localhost,{markers['no_proxy']}.invalid"
    for name, value in {"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "NO_PROXY": no_proxy,
                        "ALL_PROXY": f"socks5://{markers['all_proxy']}.invalid:1080",
                        "FTP_PROXY": f"http://{markers['ftp_proxy']}.invalid:21"}.items():
        monkeypatch.setenv(name, value)
        monkeypatch.setenv(name.lower(), value)
    # A RUN step of alpha's final stage counts the proxy variables it sees: they are there.
    (fixture_copy / "layers/alpha/Dockerfile.fragment").write_text(
        'RUN echo "proxy variables seen: $(env | grep -c -i _proxy=)"\n')
    # Rebuild the root too, so both a root and an extension build see every input.
    change_layer(fixture_copy, "root", f"leak-test-{uuid.uuid4().hex[:8]}")
    pip_index = f"https://{markers['index user']}:{markers['index password']}@pypi.org/simple"
    torch_index = f"https://u:{markers['torch index password']}@torch-{mark}.invalid/whl/cu128"
    code, output = run_cli(capsys, fixture_copy, "build", "*-alpha", "--ca-bundle", str(ca),
                           "--index", f"pypi={pip_index}", "--index", f"cu128={torch_index}",
                           "--keep-build-stages", "--no-progress")  # for the control below
    assert code == 0, output
    build = last_build(fixture_copy)
    assert build["images"][BASE]["status"] == "built"
    assert build["images"][ALPHA]["status"] == "built"

    for image in (BASE, ALPHA):
        hits = scan(docker_api, build["images"][image]["image_id"], markers)
        assert hits == {}, f"{image} leaks build inputs: {hits}"

    # Control: the discarded build stage did receive them, and the scan sees them there.
    log = (fixture_copy / ".torchstack/runs/latest" / build["images"][ALPHA]["log"]).read_text()
    assert "proxy variables seen: 8" in log  # HTTP(S)/FTP/NO_PROXY, both cases
    stage = INSTALL_STEP_IMAGE.search(log)
    assert stage, "no image after the install step in the build log"
    control = scan(docker_api, stage.group(1), markers)
    assert "ca" in control and "index password" in control and "torch index password" in control

    # Credentials are not written to the host's logs or printed either.
    run_files = (fixture_copy / ".torchstack/runs/latest").iterdir()
    host_text = output + "".join(p.read_text() for p in run_files)
    for name in ("index password", "index user", "torch index password", "proxy password"):
        assert markers[name] not in host_text, f"{name} printed or logged"

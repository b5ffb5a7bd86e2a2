"""Build inputs (CA bundle, index credentials, proxies) never reach the image.

A real build runs with all of them: the host's CA bundle (needed here: HTTPS goes through a
proxy with its own CA), a PyPI mirror on the Docker bridge that demands user:password and
serves PyPI's index pages (so uv inside the build really uses the credential), and proxy
variables carrying markers (exempted by NO_PROXY, so the build still works). Then every file of
every layer of `docker save` (names, bytes, link targets, PAX headers), the image config and
`docker history --no-trunc` are scanned. As controls, the scan must find what is meant to be in
the image: a CA line Debian's own bundle has, and the alpha fragment's marker in the history.
"""

from __future__ import annotations

import base64
import subprocess
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dockerutil import history_text, last_build, run_cli, saved_image_texts
from tests.integration.fixture_matrix import ALPHA, BASE, LOCAL_REPOSITORY, rerender

pytestmark = [pytest.mark.docker, pytest.mark.network]
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
BRIDGE = "172.17.0.1"  # the default bridge's gateway: reachable from BuildKit's RUN steps


class Mirror(ThreadingHTTPServer):
    """A PyPI simple index that demands basic auth and relays pypi.org's pages."""

    def __init__(self, credentials: set[str]) -> None:
        super().__init__((BRIDGE, 0), _Relay)
        self.credentials = credentials
        self.served: list[str] = []  # paths answered to an authenticated client

    @property
    def url(self) -> str:
        return f"http://{BRIDGE}:{self.server_address[1]}/simple"


class _Relay(BaseHTTPRequestHandler):
    server: Mirror

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization", "")
        user = base64.b64decode(auth[6:]).decode() if auth.startswith("Basic ") else ""
        if user not in self.server.credentials:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="mirror"')
            self.end_headers()
            return
        upstream = urllib.request.Request(
            "https://pypi.org" + self.path,
            headers={"Accept": self.headers.get("Accept", "text/html")})
        with urllib.request.urlopen(upstream, timeout=60) as response:
            body, kind = response.read(), response.headers.get("Content-Type", "text/html")
        self.server.served.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def mirror_credentials() -> dict[str, str]:
    mark = uuid.uuid4().hex[:12]
    return {"user": f"idxuser{mark}", "password": f"idx-s3cr3t-{mark}",
            "torch password": f"torch-s3cr3t-{mark}"}


@pytest.fixture
def mirror(mirror_credentials: dict[str, str]) -> Iterator[Mirror]:
    c = mirror_credentials
    server = Mirror({f"{c['user']}:{c['password']}", f"u:{c['torch password']}"})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def ca_lines(docker_api: Any) -> tuple[list[str], list[str]]:
    """(lines of the host bundle that Debian's bundle in the image lacks, lines both have)."""
    image_bundle = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", f"{LOCAL_REPOSITORY}:{BASE}", "cat",
         "/etc/ssl/certs/ca-certificates.crt"], capture_output=True, text=True, check=True,
        timeout=120).stdout.splitlines()
    host = [line for line in HOST_CA.read_text().splitlines() if len(line) == 64]
    return [x for x in host if x not in set(image_bundle)], [x for x in host
                                                             if x in set(image_bundle)]


def scan(api: Any, image: str, markers: dict[str, str]) -> dict[str, list[str]]:
    """marker name -> where it was found in the saved image (layers, config) or its history."""
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
        fixture_copy: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch, docker_api: Any,
        mirror: Mirror, mirror_credentials: dict[str, str]) -> None:
    only_host, shared = ca_lines(docker_api)
    assert only_host and shared, "the host bundle should add the proxy's CA to Debian's"
    mark = uuid.uuid4().hex[:12]
    markers = {f"ca line {n}": line for n, line in enumerate(only_host)}
    markers |= {f"index {k}": v for k, v in mirror_credentials.items()}
    markers |= {"proxy password": f"proxy-s3cr3t-{mark}", "no_proxy": f"noproxy-{mark}",
                "all_proxy": f"allproxy-{mark}", "ftp_proxy": f"ftpproxy-{mark}"}
    proxy = f"http://proxyuser:{markers['proxy password']}@proxy-{mark}.invalid:3128"
    # Every host the build reaches is exempt, so the build works; the values still reach
    # each RUN step's environment (BuildKit's predefined proxy args).
    no_proxy = f".org,.net,.com,.io,localhost,{BRIDGE},{markers['no_proxy']}.invalid"
    for name, value in {"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "NO_PROXY": no_proxy,
                        "ALL_PROXY": f"socks5://{markers['all_proxy']}.invalid:1080",
                        "FTP_PROXY": f"http://{markers['ftp_proxy']}.invalid:21"}.items():
        monkeypatch.setenv(name, value)
        monkeypatch.setenv(name.lower(), value)
    # A new step before alpha's install group: the group runs again, through the mirror.
    (fixture_copy / "layers/alpha/Dockerfile.fragment").write_text(
        f'RUN echo "proxy variables seen: $(env | grep -c -i _proxy=)" # {mark}\n')
    rerender(fixture_copy)
    c = mirror_credentials
    user = c["user"]
    pip_index = mirror.url.replace("http://", f"http://{user}:{c['password']}@")
    torch_index = mirror.url.replace("http://", f"http://u:{c['torch password']}@")
    code, output = run_cli(capsys, fixture_copy, "build", ALPHA, "--ca-bundle", str(HOST_CA),
                           "--index", f"pypi={pip_index}", "--index", f"cu128={torch_index}",
                           "--no-progress")
    assert code == 0, output
    build = last_build(fixture_copy)
    assert build["images"][BASE]["status"] == "cached"
    assert build["images"][ALPHA]["status"] == "built"
    assert "/simple/idna/" in mirror.served  # uv in the build used the credential
    log = (fixture_copy / ".torchstack/runs/latest" / build["images"][ALPHA]["log"]).read_text()
    assert "proxy variables seen: 0" not in log and "proxy variables seen: " in log

    for image in (BASE, ALPHA):
        hits = scan(docker_api, build["images"][image]["image_id"], markers)
        assert hits == {}, f"{image} leaks build inputs: {hits}"
    # Controls: the scan reads layer files (Debian's own CA lines are there) and the history.
    control = scan(docker_api, build["images"][ALPHA]["image_id"],
                   {"debian ca": shared[0], "fragment": mark})
    assert any("layer.tar:etc/ssl/certs/ca-certificates.crt" in w for w in control["debian ca"])
    assert "docker history" in control["fragment"]  # and in the image config's own history:
    assert any(w.endswith(".json") for w in control["fragment"])

    # Credentials are not written to the host's logs or printed either.
    run_files = (fixture_copy / ".torchstack/runs/latest").iterdir()
    host_text = output + "".join(p.read_text() for p in run_files if p.is_file())
    for name in ("index user", "index password", "index torch password", "proxy password"):
        assert markers[name] not in host_text, f"{name} printed or logged"


def test_without_the_ca_bundle_the_install_step_fails(
        fixture_copy: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Why --ca-bundle matters here: HTTPS is intercepted; uv inside fails without the CA."""
    for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    (fixture_copy / "layers/alpha/Dockerfile.fragment").write_text(
        f"RUN echo no-ca-{uuid.uuid4().hex}\n")
    rerender(fixture_copy)
    code, output = run_cli(capsys, fixture_copy, "build", ALPHA, "--no-progress")
    if code == 0:
        pytest.skip("HTTPS is not intercepted on this machine: the image's own CAs suffice")
    assert code == 4, output
    entry = last_build(fixture_copy)["images"][ALPHA]
    assert entry["failed_step"].endswith("install groups/01-alpha.txt"), entry
    assert "certificate" in "\n".join(entry["log_tail"]).lower()

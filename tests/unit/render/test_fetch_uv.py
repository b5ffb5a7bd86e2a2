"""The uv fetcher that runs in each build's uv stage (templates/fetch-uv.py), with the host's
Python: mirrors with credentials, and the pinned hash."""

from __future__ import annotations

import base64
import hashlib
import http.server
import importlib.util
import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import ClassVar

import pytest

from tests.paths import REPO

TEMPLATE = REPO / "src/torchstack/render/templates/fetch-uv.py"
WHEEL_NAME = "uv-9.9.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"


def fetcher() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fetch_uv", TEMPLATE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wheel() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("uv-9.9.9.data/scripts/uv", "#!/bin/sh\necho uv 9.9.9\n")
    return buffer.getvalue()


class Mirror(http.server.BaseHTTPRequestHandler):
    """A PEP 503 index for one uv wheel that demands Basic user:s3cret."""

    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        wanted = "Basic " + base64.b64encode(b"user:s3cret").decode()
        if self.headers.get("Authorization") != wanted:
            self.send_response(401)
            self.end_headers()
            return
        body = (f'<a href="/files/{WHEEL_NAME}#sha256=x">{WHEEL_NAME}</a>'.encode()
                if self.path == "/simple/uv/" else wheel())
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if self.path.endswith("/") else "binary")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mirror() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Mirror)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Mirror.seen.clear()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_mirror_with_credentials_serves_the_pinned_wheel(
        mirror: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = fetcher()
    monkeypatch.setattr(module, "SECRETS", str(tmp_path / "no-secrets"))  # no build secrets
    digest = hashlib.sha256(wheel()).hexdigest()
    code = module.main("9.9.9", digest, f"http://user:s3cret@{mirror}/simple", str(tmp_path))
    assert code == 0
    assert (tmp_path / "uv").read_text().endswith("echo uv 9.9.9\n")
    assert (tmp_path / "uv").stat().st_mode & 0o111
    assert len(Mirror.seen) == 2 and all(Mirror.seen)  # the page and the wheel, both with auth


def test_a_wheel_with_another_hash_is_refused(mirror: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    module = fetcher()
    monkeypatch.setattr(module, "SECRETS", str(tmp_path / "no-secrets"))  # no build secrets
    assert module.main("9.9.9", "0" * 64, f"http://user:s3cret@{mirror}/simple",
                       str(tmp_path)) == 1
    assert not (tmp_path / "uv").exists()
    assert f"no uv 9.9.9 wheel with sha256 {'0' * 64}" in capsys.readouterr().err


def test_credentials_go_only_to_the_index_host() -> None:
    module = fetcher()
    index = "https://u:p@mirror.example/simple"
    assert module.request(index + "/uv/").get_header("Authorization") == (
        "Basic " + base64.b64encode(b"u:p").decode())
    assert module.request(index + "/uv/").full_url == "https://mirror.example/simple/uv/"
    assert module._with_auth("https://mirror.example/f/uv.whl", index) == (
        "https://u:p@mirror.example/f/uv.whl")
    assert module.request("https://cdn.example/uv.whl").get_header("Authorization") is None

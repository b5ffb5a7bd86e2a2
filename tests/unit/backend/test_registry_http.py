"""The registry client against a real HTTP server on loopback (http.server in a thread).

No part of the HTTP layer is mocked: each test starts a server that answers as a registry (and
its token endpoint) would, and `fetch_manifest` talks to it over a socket.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from torchstack.backend.credentials import Credentials
from torchstack.backend.registry import RegistryError, base_url, fetch_manifest, is_loopback
from torchstack.settings import Settings

CONFIG = "sha256:" + "ab" * 32
MANIFEST = json.dumps({"schemaVersion": 2, "config": {"digest": CONFIG}}).encode()
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
USER, PASSWORD = "robot", "s3cret"
LOGIN = Credentials(USER, PASSWORD)
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@dataclass
class Registry:
    """What the server does: how it authenticates, what its token endpoint answers."""

    auth: str = "none"  # none | basic | bearer
    token_answer: bytes = b'{"token": "tok-1"}'
    claimed_digest: str = DIGEST
    seen: list[tuple[str, str]] = field(default_factory=list)  # (path, Authorization)
    host: str = ""


def handler(registry: Registry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_GET(self) -> None:
            authorization = self.headers.get("Authorization", "")
            registry.seen.append((self.path, authorization))
            if self.path.startswith("/token"):
                if authorization != BASIC:
                    return self.answer(401, b"{}")
                return self.answer(200, registry.token_answer)
            if registry.auth == "basic" and authorization != BASIC:
                return self.answer(401, b"{}", {"WWW-Authenticate": 'Basic realm="r"'})
            if registry.auth == "bearer" and authorization != "Bearer tok-1":
                realm = f"http://{registry.host}/token"
                challenge = f'Bearer realm="{realm}",service="reg",scope="repository:ts:pull"'
                return self.answer(401, b"{}", {"WWW-Authenticate": challenge})
            if self.path != "/v2/torchstack/manifests/v1":
                return self.answer(404, b"{}")
            return self.answer(200, MANIFEST, {"Docker-Content-Digest": registry.claimed_digest})

        def answer(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


class V6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


Serve = Callable[..., str]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """serve(registry, family) -> "host:port" of a running server; stopped after the test."""
    servers: list[ThreadingHTTPServer] = []

    def start(registry: Registry, v6: bool = False) -> str:
        server_class = V6Server if v6 else ThreadingHTTPServer
        server = server_class(("::1" if v6 else "127.0.0.1", 0), handler(registry))
        servers.append(server)
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        port = server.server_address[1]
        registry.host = f"[::1]:{port}" if v6 else f"127.0.0.1:{port}"
        return registry.host

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_anonymous_manifest_and_its_digest(serve: Serve) -> None:
    host = serve(Registry())
    remote = fetch_manifest(f"{host}/torchstack:v1")
    assert (remote.digest, remote.config_digest) == (DIGEST, CONFIG)


def test_basic_auth_is_sent(serve: Serve) -> None:
    registry = Registry(auth="basic")
    host = serve(registry)
    assert fetch_manifest(f"{host}/torchstack:v1", credentials=LOGIN).digest == DIGEST
    assert registry.seen[-1] == ("/v2/torchstack/manifests/v1", BASIC)


def test_basic_auth_refused_without_credentials(serve: Serve) -> None:
    host = serve(Registry(auth="basic"))
    with pytest.raises(RegistryError, match=r"HTTP 401.*credentials refused") as caught:
        fetch_manifest(f"{host}/torchstack:v1")
    assert caught.value.exit_code == 6


@pytest.mark.parametrize("answer", [b'{"token": "tok-1"}', b'{"access_token": "tok-1"}'])
def test_bearer_token_flow(serve: Serve, answer: bytes) -> None:
    registry = Registry(auth="bearer", token_answer=answer)
    host = serve(registry)
    assert fetch_manifest(f"{host}/torchstack:v1", credentials=LOGIN).digest == DIGEST
    paths = [path.split("?")[0] for path, _ in registry.seen]
    assert paths == ["/v2/torchstack/manifests/v1", "/token", "/v2/torchstack/manifests/v1"]
    token_query = registry.seen[1][0]
    assert "service=reg" in token_query and "scope=repository%3Ats%3Apull" in token_query
    assert registry.seen[2][1] == "Bearer tok-1"


@pytest.mark.parametrize(("answer", "says"), [
    (b"{}", "answered without a token"),
    (b'{"token": ""}', "answered without a token"),
    (b'{"token": 42}', "answered without a token"),
    (b'["tok-1"]', "answered without a token"),
    (b'{"token": "a\\nb"}', "answered without a token"),
    (b"<html>login</html>", "did not answer JSON"),
    (b"\xff\xfe", "did not answer JSON"),
])
def test_a_token_endpoint_answering_garbage_is_a_clear_error(serve: Serve, answer: bytes,
                                                              says: str) -> None:
    host = serve(Registry(auth="bearer", token_answer=answer))
    with pytest.raises(RegistryError, match=says) as caught:
        fetch_manifest(f"{host}/torchstack:v1", credentials=LOGIN)
    assert caught.value.exit_code == 6


def test_a_manifest_whose_bytes_do_not_match_the_claimed_digest(serve: Serve) -> None:
    host = serve(Registry(claimed_digest="sha256:" + "0" * 64))
    with pytest.raises(RegistryError, match=re.escape("hash to " + DIGEST)):
        fetch_manifest(f"{host}/torchstack:v1")


def test_plain_http_over_ipv6_loopback(serve: Serve) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    try:
        host = serve(Registry(), v6=True)
    except OSError as exc:
        pytest.skip(f"cannot listen on [::1]: {exc}")
    assert host.startswith("[::1]:")
    assert fetch_manifest(f"{host}/torchstack:v1").digest == DIGEST


def test_a_non_loopback_address_is_spoken_to_over_https(serve: Serve) -> None:
    """::ffff:127.0.0.1 reaches our plain-HTTP server but is not a loopback name: TLS is tried.

    The server then sees a TLS handshake, not a GET, and the client fails the handshake.
    """
    registry = Registry()
    host = serve(registry)
    port = host.rsplit(":", 1)[1]
    with pytest.raises(RegistryError, match=r"cannot reach the registry at https://") as caught:
        fetch_manifest(f"[::ffff:127.0.0.1]:{port}/torchstack:v1", timeout_s=5)
    if "SSL" not in caught.value.message and "ssl" not in caught.value.message:
        pytest.skip(f"IPv4-mapped addresses do not reach 127.0.0.1 here: {caught.value.message}")
    assert registry.seen == []  # no HTTP request was made in the clear


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1:5000", True), ("127.0.0.1", True), ("localhost:5000", True),
    ("LOCALHOST", True), ("[::1]:5000", True), ("[::1]", True), ("127.1.2.3:80", True),
    ("ghcr.io", False), ("10.0.0.1:5000", False), ("[::2]:5000", False),
    ("localhost.example.com", False), ("127.0.0.1.example.com:5000", False),
])
def test_plain_http_only_for_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    assert base_url(host) == ("http://" if loopback else "https://") + host


def test_a_plain_http_token_realm_off_loopback_gets_no_credentials(serve: Serve) -> None:
    registry = Registry(auth="bearer")
    host = serve(registry)
    registry.host = "registry.example:80"  # the challenge now names a remote http realm
    with pytest.raises(RegistryError, match="not an https URL"):
        fetch_manifest(f"{host}/torchstack:v1", credentials=LOGIN)
    assert all(not path.startswith("/token") for path, _ in registry.seen)


@pytest.mark.parametrize("ref", [
    "torchstack:v1", "127.0.0.1:5000/torchstack", "127.0.0.1:5000/Torch:v1",
    "127.0.0.1:5000/torchstack:v1\nRUN x", "127.0.0.1:5000/torchstack:bad tag",
    "https://127.0.0.1:5000/torchstack:v1", "127.0.0.1:5000/torchstack@sha256:zz", "",
])
def test_a_reference_that_is_not_one_is_refused_before_any_request(ref: str) -> None:
    with pytest.raises(RegistryError, match="is not a registry reference") as caught:
        fetch_manifest(ref)
    assert caught.value.exit_code == 6


def test_the_password_never_shows_in_a_repr_or_in_settings() -> None:
    settings = Settings.from_environ({"TORCHSTACK_REGISTRY_USER": USER,
                                      "TORCHSTACK_REGISTRY_PASSWORD": PASSWORD})
    assert settings.credentials == LOGIN
    for shown in (repr(LOGIN), str(LOGIN), repr(settings), str(settings)):
        assert PASSWORD not in shown and USER in shown
    assert Settings.from_environ({"TORCHSTACK_REGISTRY_PASSWORD": PASSWORD}).credentials \
        .headers() == {}  # a password without a user is no login

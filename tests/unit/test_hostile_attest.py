"""Hostile and careless input to the signed-verdict verbs: `verify`, `keys generate`, `policy`
and the signing key of check/promote/record import.

`verify` runs through the real CLI against a real HTTP server on 127.0.0.1:0 that answers as a
registry would, or as an attacker's registry might: huge or malformed manifests and blobs,
envelopes that are not DSSE, statements that are not statements, redirects, challenges. Every
case must end in a message and the documented exit code (8: not verified; 2: a bad argument),
never a traceback (run_cli fails the test on one) and never a hang. Keys are real ECDSA keys.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.httpserver import serving
from tests.unit.hostileutil import run_cli
from torchstack.backend.artifacts import (
    MAX_ENVELOPE,
    MAX_ENVELOPE_BYTES,
    MAX_LAYERS,
    OCI_INDEX,
    Repository,
)
from torchstack.backend.credentials import Credentials
from torchstack.backend.registry import RegistryError
from torchstack.cli import main
from torchstack.commands.signing import PASSPHRASE_ENV, SIGNING_KEY_ENV, signing_key_of
from torchstack.errors import ConfigError
from torchstack.release.attestations import (
    Attachment,
    Requirements,
    att_tag,
    attach,
    decide,
)
from torchstack.release.dsse import ENVELOPE_MEDIA_TYPE, sign
from torchstack.release.keys import SigningKey, generate, load_signing_key
from torchstack.release.statements import STATEMENT_TYPE, VERDICT_PREDICATE, canonical
from torchstack.settings import Settings

OCI = "application/vnd.oci.image.manifest.v1+json"
IMAGE = json.dumps({"schemaVersion": 2, "mediaType": OCI,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": "sha256:" + "c" * 64, "size": 2},
                    "layers": []}).encode()
DIGEST = "sha256:" + hashlib.sha256(IMAGE).hexdigest()
NOW = datetime.now(UTC)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- a registry on 127.0.0.1:0

Route = tuple[int, dict[str, str], bytes] | Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Registry:
    """A registry over a real socket: `routes` maps a path to an answer or a handler."""

    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[tuple[str, str]] = field(default_factory=list)  # (path, Authorization)
    host: str = ""

    def manifest(self, ref: str, body: bytes, repo: str = "t") -> None:
        self.routes[f"/v2/{repo}/manifests/{ref}"] = (
            200, {"Content-Type": OCI, "Docker-Content-Digest": digest_of(body)}, body)

    def blob(self, body: bytes, repo: str = "t") -> str:
        self.routes[f"/v2/{repo}/blobs/{digest_of(body)}"] = (200, {}, body)
        return digest_of(body)

    def att(self, envelopes: list[bytes], sizes: list[int] | None = None) -> None:
        """The `.att` of DIGEST holding `envelopes` (each blob served), as cosign lays it out."""
        layers = [{"mediaType": ENVELOPE_MEDIA_TYPE, "digest": self.blob(e),
                   "size": sizes[i] if sizes else len(e),
                   "annotations": {"predicateType": VERDICT_PREDICATE}}
                  for i, e in enumerate(envelopes)]
        self.manifest(att_tag(DIGEST), json.dumps({
            "schemaVersion": 2, "mediaType": OCI, "layers": layers,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": "sha256:" + "d" * 64, "size": 2}}).encode())


def serve(registry: Registry) -> Iterator[Registry]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            registry.seen.append((path, self.headers.get("Authorization", "")))
            if self.command in ("POST", "PUT"):  # an upload: its body is read and dropped
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
            route = registry.routes.get(path)
            if route is None:
                route = (404, {}, b'{"errors":[{"code":"NOT_FOUND"}]}')
            if callable(route):
                route(self)
                return
            status, headers, body = route
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_HEAD = do_POST = do_PUT = do_GET

    with serving(Handler) as server:
        registry.host = f"127.0.0.1:{server.server_port}"
        yield registry


@pytest.fixture
def registry() -> Iterator[Registry]:
    found = Registry()
    found.manifest("v1", IMAGE)
    found.manifest(DIGEST, IMAGE)
    yield from serve(found)


@pytest.fixture
def other() -> Iterator[Registry]:
    """A second server: where a redirect leads."""
    yield from serve(Registry())


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[SigningKey, Path, Path]:
    """(signing key, its private PEM file, its public PEM file)."""
    folder = tmp_path_factory.mktemp("keys")
    private, public = generate(None)
    (folder / "k.key").write_bytes(private)
    (folder / "k.pub").write_bytes(public)
    return load_signing_key(private, None, "test"), folder / "k.key", folder / "k.pub"


def predicate(result: str = "pass", when: object = None, level: str = "cpu") -> dict[str, object]:
    return {"verdict": result, "level": level,
            "checkedAt": when if when is not None else NOW.isoformat().replace("+00:00", "Z"),
            "node": {"gpuModel": None}, "suite": {"version": "1.0"}, "image": {"id": "x"}}


def statement_bytes(pred: object, subjects: object = None) -> bytes:
    algorithm, _, value = DIGEST.partition(":")
    return canonical({"_type": STATEMENT_TYPE, "predicateType": VERDICT_PREDICATE,
                      "subject": subjects if subjects is not None
                      else [{"name": "t", "digest": {algorithm: value}}],
                      "predicate": pred})


def envelope(key: SigningKey, payload: bytes) -> bytes:
    return sign(payload, key).to_json()


def verify(capsys: pytest.CaptureFixture[str], registry: Registry, pub: Path,
           *extra: str, ref: str | None = None) -> tuple[int, str]:
    start = time.monotonic()
    code, err = run_cli(capsys, "verify", ref or f"{registry.host}/t:v1", "--key", str(pub),
                        *extra)
    assert time.monotonic() - start < 20, "verify took too long"
    return code, err


# ---------------------------------------------------------------- REF

def test_a_good_attestation_verifies(capsys: pytest.CaptureFixture[str], registry: Registry,
                                     pair: tuple[SigningKey, Path, Path]) -> None:
    """The baseline the hostile cases differ from: the fake registry serves a valid `.att`."""
    registry.att([envelope(pair[0], statement_bytes(predicate()))])
    assert verify(capsys, registry, pair[2]) == (0, "")


@pytest.mark.parametrize("tail", [
    "/t",  # no tag
    "/t@sha256:abc",  # a short digest
    "/t@sha256:" + "A" * 64,  # upper-case hex: no registry stores such a digest
    "/t@SHA256:" + "a" * 64,
    "/t:v1\n",
    "/t:$(id)",
    "/" + "a" * 100_000 + ":v1",
])
def test_a_malformed_ref_is_a_config_error(capsys: pytest.CaptureFixture[str],
                                           registry: Registry,
                                           pair: tuple[SigningKey, Path, Path],
                                           tail: str) -> None:
    # Bug caught: a typo in REF exiting 6 (promote failed) or 8 (not verified) as if the
    # registry had been asked; the user's argument is wrong: 2, before any request.
    code, err = verify(capsys, registry, pair[2], ref=registry.host + tail)
    assert code == 2, err
    assert "not a registry reference" in err and len(err) < 2000
    assert registry.seen == []


@pytest.mark.parametrize("ref", ["http://127.0.0.1:5000/t:v1", "user:pw@127.0.0.1:5000/t:v1",
                                 "t:v1", ""])
def test_a_url_or_userinfo_is_no_ref(capsys: pytest.CaptureFixture[str],
                                     pair: tuple[SigningKey, Path, Path], ref: str) -> None:
    code, err = run_cli(capsys, "verify", ref, "--key", str(pair[2]))
    assert code == 2 and "not a registry reference" in err and "pw" not in err.replace(
        "user:pw@", "")


def test_a_digest_ref_answered_with_another_manifest_is_refused(
        capsys: pytest.CaptureFixture[str], registry: Registry,
        pair: tuple[SigningKey, Path, Path]) -> None:
    # Bug caught: `verify repo@sha256:X` asking for X, the registry serving Y (with Y's own
    # Docker-Content-Digest) and Y's signed pass reported as X's: a swapped image verified.
    registry.att([envelope(pair[0], statement_bytes(predicate()))])
    wanted = "sha256:" + "e" * 64
    registry.routes[f"/v2/t/manifests/{wanted}"] = registry.routes[f"/v2/t/manifests/{DIGEST}"]
    code, err = verify(capsys, registry, pair[2], ref=f"{registry.host}/t@{wanted}")
    assert code == 8 and wanted in err and DIGEST in err


# ---------------------------------------------------------------- --key

@pytest.mark.parametrize("verb", [["verify", "127.0.0.1:1/t:v1"], ["policy"]])
@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "directory", "empty", "garbage",
                                  "private", "rsa", "p384"])
def test_a_key_file_that_is_no_public_key(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          pair: tuple[SigningKey, Path, Path], kind: str,
                                          verb: list[str]) -> None:
    # Bugs caught: /dev/zero read whole into memory, a FIFO blocking open() for ever, a
    # private key given as --key named only as "not a public key" (and never echoed).
    path = tmp_path / "key.pub"
    if kind == "dev-zero":
        path = Path("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(bytes(range(256)) * 3)
    elif kind == "private":
        path = pair[1]
    elif kind == "rsa":
        path.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=2048)
                         .public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat
                                                    .SubjectPublicKeyInfo))
    else:
        path.write_bytes(ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    start = time.monotonic()
    code, err = run_cli(capsys, *verb, "--key", str(path))
    assert time.monotonic() - start < 10
    assert code == 2 and str(path) in err and "tip: " in err
    if kind == "private":
        assert "private key" in err and ".pub" in err
        assert "PRIVATE" not in err and pair[1].read_text().splitlines()[1] not in err


# ---------------------------------------------------------------- what the registry answers

def test_a_huge_att_manifest_is_refused_without_reading_it_all(
        capsys: pytest.CaptureFixture[str], registry: Registry,
        pair: tuple[SigningKey, Path, Path]) -> None:
    # Bug caught: a 64 MiB "manifest" parsed as JSON; distribution itself caps manifests at
    # 4 MiB, so anything larger is not one.
    registry.manifest(att_tag(DIGEST), b'{"layers": [' + b" " * (5 << 20) + b"]}")
    code, err = verify(capsys, registry, pair[2])
    assert code == 8 and "larger than 4 MiB" in err


def test_an_att_with_too_many_layers_is_refused_before_fetching_them(
        capsys: pytest.CaptureFixture[str], registry: Registry,
        pair: tuple[SigningKey, Path, Path]) -> None:
    # Bug caught: one GET per layer of a 20 000-layer manifest: a hang by request count.
    layer = {"mediaType": ENVELOPE_MEDIA_TYPE, "digest": "sha256:" + "f" * 64, "size": 10}
    registry.manifest(att_tag(DIGEST), json.dumps(
        {"schemaVersion": 2, "layers": [layer] * (MAX_LAYERS + 1)}).encode())
    code, err = verify(capsys, registry, pair[2])
    assert code == 8 and f"more than {MAX_LAYERS}" in err
    assert sum(1 for path, _ in registry.seen if "/blobs/" in path) == 0


def test_an_envelope_layer_declared_larger_than_the_cap_is_not_fetched(
        capsys: pytest.CaptureFixture[str], registry: Registry,
        pair: tuple[SigningKey, Path, Path]) -> None:
    registry.att([envelope(pair[0], statement_bytes(predicate()))], sizes=[MAX_ENVELOPE + 1])
    code, err = verify(capsys, registry, pair[2])
    assert code == 8 and "larger than" in err
    assert sum(1 for path, _ in registry.seen if "/blobs/" in path) == 0


def test_a_blob_larger_than_its_descriptor_says_stops_at_the_cap(
        capsys: pytest.CaptureFixture[str], registry: Registry,
        pair: tuple[SigningKey, Path, Path]) -> None:
    # Bug caught: the descriptor says 100 bytes, the server streams without end: the read must
    # stop at the envelope cap, not at memory's end.
    blob = "sha256:" + "9" * 64

    def endless(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.end_headers()
        chunk = b"x" * (1 << 20)
        try:
            for _ in range((MAX_ENVELOPE >> 20) + 8):
                handler.wfile.write(chunk)
        except OSError:
            pass  # the client hung up, as it should

    registry.routes[f"/v2/t/blobs/{blob}"] = endless
    registry.manifest(att_tag(DIGEST), json.dumps({"schemaVersion": 2, "layers": [
        {"mediaType": ENVELOPE_MEDIA_TYPE, "digest": blob, "size": 100}]}).encode())
    code, err = verify(capsys, registry, pair[2])
    assert code == 8 and "larger than" in err


def test_a_slow_registry_is_a_timeout_not_a_hang() -> None:
    # Bug caught: a server trickling one byte a second defeats the per-recv socket timeout;
    # the whole answer must arrive within the client's time limit.
    def trickle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        try:
            for _ in range(1000):
                handler.wfile.write(b"x")
                handler.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass

    found = Registry(routes={"/v2/t/blobs/sha256:" + "1" * 64: trickle})
    for running in serve(found):
        start = time.monotonic()
        with pytest.raises(RegistryError, match="did not answer within"):
            Repository(f"{running.host}/t", timeout_s=1).blob("sha256:" + "1" * 64)
        assert time.monotonic() - start < 5


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"[" * 100_000 + b"]" * 100_000,
                                  b'{"layers": {"a": 1}}', b'{"layers": [1, "x", null]}'])
def test_a_malformed_att_manifest(capsys: pytest.CaptureFixture[str], registry: Registry,
                                  pair: tuple[SigningKey, Path, Path], body: bytes) -> None:
    # Bug caught: a RecursionError (deep nesting) escaping as a traceback.
    registry.manifest(att_tag(DIGEST), body)
    code, err = verify(capsys, registry, pair[2])
    assert code == 8, err
    assert "manifest" in err or "no attestation" in err


def test_envelopes_that_are_not_dsse_are_named(capsys: pytest.CaptureFixture[str],
                                               registry: Registry,
                                               pair: tuple[SigningKey, Path, Path]) -> None:
    good = json.loads(envelope(pair[0], statement_bytes(predicate())))
    junk = [b"not json", b"[" * 50_000 + b"]" * 50_000,
            json.dumps({**good, "payload": "%%% not base64 %%%"}).encode(),
            json.dumps({**good, "signatures": [{"sig": "!!"}]}).encode()]
    registry.att(junk)
    code, err = verify(capsys, registry, pair[2])
    assert code == 8 and "bad signature" in err and "4 envelopes" in err and "unreadable" in err


@pytest.mark.parametrize("payload, why", [
    (b'{"hello": "world"}', "not an in-toto statement"),
    (b"[" * 100_000 + b"]" * 100_000, "not an in-toto statement"),
    (b"\xff\xfe not utf-8", "not an in-toto statement"),
])
def test_a_signed_payload_that_is_not_a_statement(capsys: pytest.CaptureFixture[str],
                                                  registry: Registry,
                                                  pair: tuple[SigningKey, Path, Path],
                                                  payload: bytes, why: str) -> None:
    # Bug caught: "another digest: the signed statements name other images" for a payload
    # that names nothing at all; a RecursionError on a deeply nested one.
    registry.att([envelope(pair[0], payload)])
    code, err = verify(capsys, registry, pair[2])
    assert code == 8 and why in err and "another digest" not in err


def test_a_statement_with_duplicate_keys_is_refused(capsys: pytest.CaptureFixture[str],
                                                    registry: Registry,
                                                    pair: tuple[SigningKey, Path, Path]) -> None:
    # Bug caught: a parser differential: Python keeps the last "verdict", another verifier
    # may keep the first; a signed statement must mean one thing, so it is refused.
    body = statement_bytes(predicate("fail")).replace(b'"verdict":"fail"',
                                                       b'"verdict":"fail","verdict":"pass"')
    assert body.count(b'"verdict"') == 2
    registry.att([envelope(pair[0], body)])
    code, err = verify(capsys, registry, pair[2])
    assert code == 8 and "duplicate key" in err


def test_a_hundred_thousand_subjects_are_read_quickly(capsys: pytest.CaptureFixture[str],
                                                      registry: Registry,
                                                      pair: tuple[SigningKey, Path, Path]
                                                      ) -> None:
    algorithm, _, value = DIGEST.partition(":")
    subjects = [{"name": "t", "digest": {"sha256": f"{i:064x}"}} for i in range(100_000)]
    subjects.append({"name": "t", "digest": {algorithm: value}})
    registry.att([envelope(pair[0], statement_bytes(predicate(), subjects))])
    start = time.monotonic()
    code, err = verify(capsys, registry, pair[2])
    assert code == 0, err
    assert time.monotonic() - start < 10


def test_a_deeply_nested_predicate_value(capsys: pytest.CaptureFixture[str],
                                         registry: Registry,
                                         pair: tuple[SigningKey, Path, Path]) -> None:
    nested = predicate()
    nested["versions"] = json.loads("[" * 500 + "]" * 500)  # deep, but valid JSON we parse
    body = statement_bytes(nested).replace(b'"versions":' + b"[" * 500,
                                           b'"versions":' + b"[" * 50_000).replace(
        b"]" * 500, b"]" * 50_000)
    registry.att([envelope(pair[0], body)])
    code, err = verify(capsys, registry, pair[2])
    assert code == 8 and "not an in-toto statement" in err


@pytest.mark.parametrize("when", ["yesterday", "2026-13-45T00:00:00Z", "2026-01-01T00:00:00",
                                  12345, None])
def test_a_check_time_that_is_no_timestamp(capsys: pytest.CaptureFixture[str],
                                           registry: Registry,
                                           pair: tuple[SigningKey, Path, Path],
                                           when: object) -> None:
    pred = predicate()
    pred["checkedAt"] = when
    registry.att([envelope(pair[0], statement_bytes(pred))])
    code, err = verify(capsys, registry, pair[2])
    assert code == 8 and "checkedAt" in err


def test_a_far_future_pass_does_not_win_for_ever(capsys: pytest.CaptureFixture[str],
                                                 registry: Registry,
                                                 pair: tuple[SigningKey, Path, Path]) -> None:
    # Bug caught: a pass dated 9999 (a runner with a broken clock, or a stolen key used once)
    # outranking every later failure for ever: revocation by re-attesting would never work.
    registry.att([envelope(pair[0], statement_bytes(predicate("pass", "9999-01-01T00:00:00Z"))),
                  envelope(pair[0], statement_bytes(predicate("fail")))])
    code, err = verify(capsys, registry, pair[2])
    assert code == 8 and "in the future" in err


def test_the_clock_skew_allowance_and_a_future_failure(pair: tuple[SigningKey, Path, Path]
                                                       ) -> None:
    # A pass a minute ahead (a runner's clock slightly fast) counts; a failure dated in the
    # future still fails (never fail open).
    key = pair[0].public()
    soon = (NOW + timedelta(minutes=1)).isoformat()
    later = (NOW + timedelta(days=30)).isoformat()
    ok = decide(DIGEST, [envelope(pair[0], statement_bytes(predicate("pass", soon)))], key,
                Requirements(), now=NOW)
    assert ok.satisfied, ok.reason
    failed = decide(DIGEST, [envelope(pair[0], statement_bytes(predicate("pass"))),
                             envelope(pair[0], statement_bytes(predicate("fail", later)))],
                    key, Requirements(), now=NOW)
    assert not failed.satisfied and "fail" in failed.reason


def test_a_redirect_to_another_host_gets_no_credentials(
        capsys: pytest.CaptureFixture[str], registry: Registry, other: Registry,
        pair: tuple[SigningKey, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    # Bug caught: urllib copies every header to the redirect target, so the registry password
    # went to the blob store (S3 and GCS also refuse a presigned URL sent with it).
    monkeypatch.setenv("TORCHSTACK_REGISTRY_USER", "robot")
    monkeypatch.setenv("TORCHSTACK_REGISTRY_PASSWORD", "s3cret")
    data = envelope(pair[0], statement_bytes(predicate()))
    registry.att([data])
    blob = f"/v2/t/blobs/{digest_of(data)}"
    other.routes["/store/blob"] = (200, {}, data)
    host = other.host.replace("127.0.0.1", "localhost")
    registry.routes[blob] = (307, {"Location": f"http://{host}/store/blob"}, b"")
    code, err = verify(capsys, registry, pair[2])
    assert code == 0, err
    assert other.seen == [("/store/blob", "")]
    assert all(auth.startswith("Basic ") for path, auth in registry.seen)


def test_an_upload_location_on_another_host_gets_no_credentials(
        registry: Registry, other: Registry) -> None:
    # Bug caught: the login sent to whatever host the registry's upload Location names.
    host = other.host.replace("127.0.0.1", "localhost")
    registry.routes["/v2/t/blobs/uploads/"] = (202, {"Location": f"http://{host}/up"}, b"")
    other.routes["/up"] = (201, {}, b"")
    repository = Repository(f"{registry.host}/t", credentials=Credentials("robot", "s3cret"))
    assert repository.put_blob(b"an envelope") == digest_of(b"an envelope")
    assert other.seen == [("/up", "")]
    assert [auth.startswith("Basic ") for _, auth in registry.seen] == [True, True]  # HEAD, POST


def test_an_upload_location_in_plain_http_elsewhere_is_refused(registry: Registry) -> None:
    registry.routes["/v2/t/blobs/uploads/"] = (
        202, {"Location": "http://registry.example/up"}, b"")
    repository = Repository(f"{registry.host}/t", credentials=Credentials("robot", "s3cret"))
    with pytest.raises(RegistryError, match="neither HTTPS nor this registry"):
        repository.put_blob(b"an envelope")


def test_a_redirect_to_plain_http_elsewhere_is_refused(
        capsys: pytest.CaptureFixture[str], registry: Registry,
        pair: tuple[SigningKey, Path, Path]) -> None:
    data = envelope(pair[0], statement_bytes(predicate()))
    registry.att([data])
    registry.routes[f"/v2/t/blobs/{digest_of(data)}"] = (
        302, {"Location": "http://registry.example/blob"}, b"")
    code, err = verify(capsys, registry, pair[2])
    assert code == 8 and "refusing a redirect" in err


@pytest.mark.parametrize("challenge, why", [
    ('Basic realm="registry"', "HTTP 401"),
    ('Bearer realm="http://auth.example/token",service="r"', "not an https URL"),
])
def test_a_401_challenge(capsys: pytest.CaptureFixture[str], registry: Registry,
                         pair: tuple[SigningKey, Path, Path], challenge: str, why: str) -> None:
    registry.routes["/v2/t/manifests/v1"] = (401, {"WWW-Authenticate": challenge}, b"{}")
    code, err = verify(capsys, registry, pair[2])
    assert code == 8 and why in err


# ---------------------------------------------------------------- keys generate

def test_keys_generate_refusals_are_config_errors(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    # Bug caught: EPERM / ENOENT from mkdir (no permission, a read-only or pseudo file
    # system) escaping as a traceback; a path with a newline printed as two lines.
    (tmp_path / "exists").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "exists")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    cases = {
        str(tmp_path / "exists"): "already exists",
        str(tmp_path / "link" / "new"): "symbolic link",
        str(tmp_path / "link"): "already exists",
        str(repo / "sub" / "keys"): "git work tree",
        str(tmp_path / "a\nb"): "control character",
        "/sys/torchstack-keys": "cannot create",
        "/proc/torchstack-keys": "cannot create",
    }
    for out, why in cases.items():
        code, err = run_cli(capsys, "keys", "generate", "--out", out)
        assert code == 2 and why in err, (out, err)
    assert not (repo / "sub").exists() and not (tmp_path / "a\nb").exists()


def test_keys_generate_modes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    old = os.umask(0)  # a permissive umask must not widen the modes
    try:
        code, _ = run_cli(capsys, "keys", "generate", "--out", str(tmp_path / "k"))
    finally:
        os.umask(old)
    assert code == 0
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "k" / "torchstack.key").stat().st_mode & 0o777 == 0o600


# ---------------------------------------------------------------- policy

@pytest.mark.parametrize("option, value", [
    ("--gpu-model", 'H100", level: "cpu'), ("--gpu-model", "H100\\"),
    ("--gpu-model", "{{ request.object }}"), ("--gpu-model", "*"), ("--gpu-model", "A\nB"),
    ("--gpu-model", ""), ("--match", "ghcr.io/x/'$(id)'"), ("--match", "a\nb"),
    ("--match", '"quoted"'), ("--match", "{{ images }}"), ("--match", "ghcr.io/{{images}}"),
])
@pytest.mark.parametrize("form", ["kyverno", "sigstore"])
def test_policy_values_that_would_change_its_meaning_are_refused(
        capsys: pytest.CaptureFixture[str], pair: tuple[SigningKey, Path, Path],
        option: str, value: str, form: str) -> None:
    # Bug caught: a GPU model closing the CUE string and adding its own constraint; Kyverno
    # expanding {{ }} or a wildcard in a condition value (`*` admits any GPU).
    code, err = run_cli(capsys, "policy", "--key", str(pair[2]), "--format", form,
                        option, value)
    assert code == 2 and option in err


@pytest.mark.parametrize("form", ["kyverno", "sigstore"])
def test_policy_output_parses_back_to_the_values_given(capsys: pytest.CaptureFixture[str],
                                                       pair: tuple[SigningKey, Path, Path],
                                                       form: str) -> None:
    models = ["NVIDIA H100 80GB HBM3", "Tesla V100-SXM2-16GB (rev. a1)"]
    globs = ["ghcr.io/org/torchstack*", "127.0.0.1:5000/t-h3/**"]
    argv = ["policy", "--key", str(pair[2]), "--format", form]
    for model in models:
        argv += ["--gpu-model", model]
    for glob in globs:
        argv += ["--match", glob]
    capsys.readouterr()
    assert main(argv) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    if form == "kyverno":
        image = document["spec"]["rules"][0]["verifyImages"][0]
        assert image["imageReferences"] == globs
        any_of = image["attestations"][0]["conditions"][1]["any"]
        assert any_of[1]["value"] == models
    else:
        assert [i["glob"] for i in document["spec"]["images"]] == globs
        cue = document["spec"]["authorities"][0]["attestations"][0]["policy"]["data"]
        line = next(text for text in cue.splitlines() if "gpuModel" in text)
        assert line.split("gpuModel: ", 1)[1] == " | ".join(json.dumps(m) for m in models)


# ---------------------------------------------------------------- the signing key

def args_of(path: Path | None, environ: dict[str, str]) -> argparse.Namespace:
    return argparse.Namespace(signing_key=path, settings=Settings.from_environ(environ))


def traditional_encrypted(passphrase: bytes) -> bytes:
    """`openssl ec -aes256` output: a SEC1 key with Proc-Type/DEK-Info headers."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.BestAvailableEncryption(passphrase))


def test_an_openssl_encrypted_key_takes_the_passphrase_variable() -> None:
    # Bug caught: only "BEGIN ENCRYPTED PRIVATE KEY" on the first line was taken as encrypted,
    # so a Proc-Type: 4,ENCRYPTED key (openssl ec -aes256), or a PEM after a blank line as CI
    # secrets often hold it, never got its passphrase: "set the passphrase", though it was set.
    pem = traditional_encrypted(b"pw")
    assert b"Proc-Type: 4,ENCRYPTED" in pem
    for text in (pem, b"\n" + generate(b"pw")[0]):
        key = signing_key_of(args_of(None, {SIGNING_KEY_ENV: text.decode(),
                                            PASSPHRASE_ENV: "pw"}))
        assert key is not None


@pytest.mark.parametrize("case", ["no-passphrase", "wrong-passphrase", "public-key"])
def test_signing_key_refusals_name_the_problem_and_no_key(tmp_path: Path, case: str) -> None:
    private, public = generate(b"right")
    environ = {SIGNING_KEY_ENV: private.decode()}
    if case == "wrong-passphrase":
        environ[PASSPHRASE_ENV] = "wrong"
    if case == "public-key":
        environ = {SIGNING_KEY_ENV: public.decode()}
    with pytest.raises(ConfigError) as caught:
        signing_key_of(args_of(None, environ))
    text = str(caught.value) + (caught.value.tip or "")
    want = {"no-passphrase": "is encrypted", "wrong-passphrase": "passphrase is wrong",
            "public-key": "public key"}[case]
    assert want in text
    body = b"".join((private if case != "public-key" else public).splitlines()[1:-1]).decode()
    assert body[:40] not in text and "right" not in text and "wrong" not in text.replace(
        "passphrase is wrong", "")
    key = load_signing_key(generate(None)[0], None, "x")
    assert "redacted" in repr(key) and base64.b64encode(
        key.key.private_numbers().private_value.to_bytes(32, "big")).decode() not in repr(key)


# ---------------------------------------------------------------- --suite-version, --gpu-model

@pytest.mark.parametrize("option, value", [("--suite-version", ""), ("--suite-version", "v1.1"),
                                           ("--suite-version", "1.1\n"),
                                           ("--gpu-model", ""), ("--gpu-model", "H100*")])
def test_verify_requirements_that_mean_nothing(capsys: pytest.CaptureFixture[str],
                                               pair: tuple[SigningKey, Path, Path],
                                               option: str, value: str) -> None:
    # Bug caught: `--suite-version ""` silently requiring nothing; "v1.1" compared as text
    # and reported as "an old suite" against 1.1.0.
    code, err = run_cli(capsys, "verify", "127.0.0.1:1/t:v1", "--key", str(pair[2]),
                        option, value)
    assert code == 2 and option in err


def test_a_suite_version_with_trailing_zeros_is_the_same_version(
        pair: tuple[SigningKey, Path, Path]) -> None:
    # Bug caught: the statement's suite 1.1 taken as older than --suite-version 1.1.0.
    pred = predicate()
    pred["suite"] = {"version": "1.1"}
    data = [envelope(pair[0], statement_bytes(pred))]
    key = pair[0].public()
    assert decide(DIGEST, data, key, Requirements(suite_version="1.1.0")).satisfied
    assert not decide(DIGEST, data, key, Requirements(suite_version="1.1.1")).satisfied


def test_attach_never_writes_an_envelope_verify_would_refuse(
        pair: tuple[SigningKey, Path, Path]) -> None:
    # Bug caught: a huge SBOM envelope attached beside the verdicts; verify (which refuses an
    # envelope over MAX_ENVELOPE rather than skip it) then fails for that digest for ever.
    class NoRegistry(Repository):
        def _send(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
            raise AssertionError("nothing may be sent")

    huge = Attachment(b"x" * (MAX_ENVELOPE + 1), "https://cyclonedx.org/bom", "sbom")
    with pytest.raises(RegistryError, match="more than verify reads"):
        attach(NoRegistry("127.0.0.1:1/t"), DIGEST, [huge], None)


def test_envelopes_adding_up_past_the_total_cap_are_refused_unread(
        capsys: pytest.CaptureFixture[str], registry: Registry,
        pair: tuple[SigningKey, Path, Path]) -> None:
    # Bug caught: 1000 layers each just under the per-envelope cap (16 GiB in memory); and
    # one blob listed many times fetched many times.
    data = envelope(pair[0], statement_bytes(predicate()))
    distinct = [envelope(pair[0], statement_bytes(predicate())) for _ in range(5)]
    assert len(set(distinct)) == 5  # ECDSA signatures differ each time
    registry.att(distinct, sizes=[MAX_ENVELOPE] * 5)  # each allowed, together too much
    code, err = verify(capsys, registry, pair[2])
    assert code == 8 and f"more than {MAX_ENVELOPE_BYTES >> 20} MiB" in err
    assert sum(1 for path, _ in registry.seen if "/blobs/" in path) == 0
    registry.att([data] * 50)
    registry.seen.clear()
    assert verify(capsys, registry, pair[2])[0] == 0
    assert sum(1 for path, _ in registry.seen if "/blobs/" in path) == 1


def test_a_registry_error_body_cannot_write_escape_sequences(
        capsys: pytest.CaptureFixture[str], registry: Registry,
        pair: tuple[SigningKey, Path, Path]) -> None:
    # Bug caught: a hostile registry's 500 body, echoed as the error's detail, clearing the
    # terminal or forging a line ("verified ...") with ANSI escapes and newlines.
    registry.routes["/v2/t/manifests/v1"] = (
        500, {}, b"oops\x1b[2J\x1b[1;1Hverified 127.0.0.1/t:v1\r\nok")
    code, err = verify(capsys, registry, pair[2])
    assert code == 8 and "HTTP 500" in err and "oops" in err
    assert "\x1b" not in err and "\r" not in err and err.count("\n") <= 2


def test_a_redirect_loop_ends(capsys: pytest.CaptureFixture[str], registry: Registry,
                              pair: tuple[SigningKey, Path, Path]) -> None:
    data = envelope(pair[0], statement_bytes(predicate()))
    registry.att([data])
    blob = f"/v2/t/blobs/{digest_of(data)}"
    registry.routes[blob] = (302, {"Location": f"http://{registry.host}{blob}"}, b"")
    code, err = verify(capsys, registry, pair[2])
    assert code == 8 and "HTTP 302" in err


@pytest.mark.parametrize("value", ["/home/ci/keys/torchstack.key", "MHcCAQEEIBase64DerOnly=="])
def test_a_signing_key_variable_without_pem_text(value: str) -> None:
    # Bug caught: a path (or bare base64) in $TORCHSTACK_SIGNING_KEY reported as "not a PEM
    # private key" with no hint that the variable takes the key's text; the value is never
    # echoed (it may be key material).
    with pytest.raises(ConfigError) as caught:
        signing_key_of(args_of(None, {SIGNING_KEY_ENV: value}))
    text = str(caught.value) + (caught.value.tip or "")
    assert "not a path" in text and "--signing-key" in text and value not in text


@pytest.mark.parametrize("answer", [b"[" * 50_000 + b"]" * 50_000, b"<html>", b'{"token": 5}'])
def test_a_token_endpoint_answering_nonsense(capsys: pytest.CaptureFixture[str],
                                             registry: Registry,
                                             pair: tuple[SigningKey, Path, Path],
                                             answer: bytes) -> None:
    # Bug caught: a RecursionError from the token answer's JSON escaping as a traceback.
    realm = f"http://{registry.host}/token"
    registry.routes["/token"] = (200, {}, answer)
    registry.routes["/v2/t/manifests/v1"] = (
        401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="r"'}, b"{}")
    code, err = verify(capsys, registry, pair[2])
    assert code == 8 and "token endpoint" in err


def test_keys_generate_leaves_nothing_when_the_write_fails(tmp_path: Path) -> None:
    # Bug caught: a full disk (here: a file size limit, EFBIG) after mkdir left a folder with
    # a truncated private key, and a traceback; the next run then refused "already exists".
    import subprocess
    import sys
    script = ("import resource, signal, sys\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))\n"
              "from torchstack.cli import main\n"
              "sys.exit(main(['keys', 'generate', '--out', sys.argv[1]]))\n")
    out = tmp_path / "keys"
    done = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] /
                                                               "src")})
    assert done.returncode == 2, done.stderr
    assert "cannot write the key pair" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


def test_odd_manifest_and_referrers_answers_are_no_traceback(registry: Registry) -> None:
    # Bugs caught: RecursionError from a deeply nested manifest, TypeError from
    # `{"manifests": 5}`: both reached verify's user as tracebacks.
    nested = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    registry.manifest("deep", nested)
    registry.routes[f"/v2/t/referrers/{DIGEST}"] = (200, {"Content-Type": OCI_INDEX},
                                                    b'{"manifests": 5}')
    repository = Repository(f"{registry.host}/t")
    published = repository.published("deep")
    assert published is not None and published.config_digest is None
    assert repository.referrers(DIGEST) is None

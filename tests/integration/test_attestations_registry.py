"""Signed verdicts in the real local registry (127.0.0.1:5000): promote --push --signing-key
attaches them in cosign's `.att` layout, `torchstack verify` reads them back, and every way a
verdict should not be trusted makes verify exit 8 with its reason.

The DSSE signature is also checked here without torchstack's code (PAE written out, the
`cryptography` verifier called directly). cosign itself is not installed on this machine and
was not run. The gpu path goes through `record import FILE` of a synthetic GPU report, as the
record-import tests do (no GPU here).
"""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration.dockerutil import run_cli
from tests.integration.fixture_matrix import BASE
from tests.integration.promoteutil import REGISTRY, built, http_manifest, write_record
from tests.integration.test_record_import_registry import pushed_candidate, synthetic_pass
from torchstack.backend.artifacts import Repository
from torchstack.cli import main
from torchstack.release.attestations import Attachment, att_config, att_manifest, attach
from torchstack.release.dsse import sign
from torchstack.release.keys import load_signing_key
from torchstack.release.statements import VERDICT_PREDICATE, Subject, statement

pytestmark = [pytest.mark.docker, pytest.mark.registry]
PASSPHRASE = "correct horse battery staple 7f3a"
ENVELOPE_TYPE = "application/vnd.dsse.envelope.v1+json"


def new_keys(folder: Path, passphrase: str | None, monkeypatch: pytest.MonkeyPatch,
             capsys: Any) -> tuple[Path, Path]:
    if passphrase:
        monkeypatch.setenv("TORCHSTACK_SIGNING_KEY_PASSPHRASE", passphrase)
    else:
        monkeypatch.delenv("TORCHSTACK_SIGNING_KEY_PASSPHRASE", raising=False)
    assert main(["keys", "generate", "--out", str(folder)]) == 0
    capsys.readouterr()
    return folder / "torchstack.key", folder / "torchstack.pub"


def secrets_of(private: Path, passphrase: str | None) -> dict[str, bytes]:
    """Every form the private key could leak in: PEM, base64 DER, DER, the scalar in hex."""
    pem = private.read_bytes()
    key = serialization.load_pem_private_key(pem, passphrase.encode() if passphrase else None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    scalar = f"{key.private_numbers().private_value:064x}"
    body = b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))
    found = {"pem body": body[:64], "base64 der": base64.b64encode(der)[:64],
             "der": der[-40:], "scalar hex": scalar.encode(),
             "scalar HEX": scalar.upper().encode()}
    if passphrase:
        found["passphrase"] = passphrase.encode()
    return found


def att_of(repository: str, digest: str) -> dict[str, Any]:
    status, manifest, _ = http_manifest(f"{repository}:sha256-{digest.split(':')[1]}.att")
    assert status == 200 and manifest is not None, f"no .att for {digest}: HTTP {status}"
    return manifest


def blob(repository: str, digest: str) -> bytes:
    import urllib.request
    host, _, path = repository.partition("/")
    with urllib.request.urlopen(f"http://{host}/v2/{path}/blobs/{digest}", timeout=30) as r:
        data: bytes = r.read()
    assert hashlib.sha256(data).hexdigest() == digest.split(":")[1]
    return data


def envelopes_of(repository: str, digest: str) -> list[dict[str, Any]]:
    return [json.loads(blob(repository, layer["digest"]))
            for layer in att_of(repository, digest)["layers"]]


def statement_of(envelope: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return payload


def independently_verified(envelope: dict[str, Any], public: Path) -> bool:
    """The DSSE check written out here, not torchstack's: PAE, then ECDSA P-256 / SHA-256."""
    key = serialization.load_pem_public_key(public.read_bytes())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    body = base64.b64decode(envelope["payload"])
    kind = envelope["payloadType"].encode()
    pae = b"DSSEv1 " + str(len(kind)).encode() + b" " + kind + b" " \
        + str(len(body)).encode() + b" " + body
    try:
        key.verify(base64.b64decode(envelope["signatures"][0]["sig"]), pae,
                   ec.ECDSA(hashes.SHA256()))
    except Exception:
        return False
    return True


def store_only(repository: str, digest: str, envelopes: list[bytes],
               annotations: list[dict[str, str]] | None = None) -> None:
    """Replace the `.att` of `digest` with exactly these envelopes (a staged registry state)."""
    from torchstack.release.attestations import Layer, att_tag
    repo = Repository(repository)
    plain = {"dev.cosignproject.cosign/signature": "", "predicateType": VERDICT_PREDICATE}
    layers = [Layer(repo.put_blob(e), len(e), a)
              for e, a in zip(envelopes, annotations or [plain] * len(envelopes), strict=True)]
    config = att_config(layers)
    repo.put_manifest(att_tag(digest), att_manifest(layers, repo.put_blob(config), len(config)))


def verify(capsys: Any, root: Path, ref: str, public: Path, *more: str) -> tuple[int, str]:
    return run_cli(capsys, root, "verify", ref, "--key", str(public), *more)


def scan_for(secrets: dict[str, bytes], places: list[Path], texts: dict[str, bytes],
             skip: Path) -> list[str]:
    leaks = []
    for place in places:
        for path in [place] if place.is_file() else place.rglob("*"):
            if path.is_file() and not path.is_symlink() and skip not in path.parents:
                data = path.read_bytes()
                leaks += [f"{name} in {path}" for name, s in secrets.items() if s in data]
    for label, data in texts.items():
        leaks += [f"{name} in {label}" for name, s in secrets.items() if s in data]
    return leaks


def test_promote_attaches_and_verify_accepts_then_each_distrust_fails_with_its_reason(
        fixture_copy: Path, it_repository: str, docker_api: Any, capsys: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    private, public = new_keys(tmp_path / "keys", PASSPHRASE, monkeypatch, capsys)
    docker_id, input_hash = built(docker_api, fixture_copy, BASE)
    candidate = f"{it_repository}:{BASE}-{input_hash[:12]}"
    write_record(fixture_copy, BASE, docker_id, input_hash, "cpu")
    # The key as a CI secret: PEM text in the environment, encrypted, passphrase beside it.
    monkeypatch.setenv("TORCHSTACK_SIGNING_KEY", private.read_text())
    logs: dict[str, bytes] = {}
    code, output = run_cli(capsys, fixture_copy, "promote", BASE, "--push")
    logs["promote"] = output.encode()
    assert code == 0, output
    assert "verdicts attached to 1 digest(s) (3 envelopes new, 0 already there)" in output
    _, _, digest = http_manifest(candidate)

    # The layout cosign reads: tag sha256-<hex>.att, OCI manifest, one DSSE layer each.
    att = att_of(it_repository, digest)
    assert att["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    kinds = [layer["annotations"]["predicateType"] for layer in att["layers"]]
    assert kinds == [VERDICT_PREDICATE, "https://in-toto.io/attestation/test-result/v0.1",
                     "https://cyclonedx.org/bom"]
    for layer in att["layers"]:
        assert layer["mediaType"] == ENVELOPE_TYPE
        assert layer["annotations"]["dev.cosignproject.cosign/signature"] == ""
    envelopes = envelopes_of(it_repository, digest)
    for envelope in envelopes:
        assert envelope["payloadType"] == "application/vnd.in-toto+json"
        assert envelope["signatures"][0]["keyid"] == ""
        assert independently_verified(envelope, public)
        assert statement_of(envelope)["subject"] == [
            {"name": it_repository, "digest": {"sha256": digest.split(":")[1]}}]
    verdict = statement_of(envelopes[0])["predicate"]
    assert (verdict["verdict"], verdict["level"], verdict["image"]["localImageId"]) == \
        ("pass", "cpu", docker_id)
    assert verdict["image"]["contentIdentity"]["diffIds"] == \
        docker_api.inspect_image(docker_id)["RootFS"]["Layers"]
    sbom = fixture_copy / ".torchstack/runs/latest/manifests" / f"{BASE}.cdx.json"
    assert verdict["artifacts"]["sbom.cdx.json"] == \
        "sha256:" + hashlib.sha256(sbom.read_bytes()).hexdigest()
    test_result = statement_of(envelopes[1])["predicate"]
    assert test_result["result"] == "PASSED"

    code, output = verify(capsys, fixture_copy, candidate, public)
    logs["verify"] = output.encode()
    assert code == 0, output
    assert "cpu-level pass" in output

    # The same record promoted again is not attached twice.
    code, output = run_cli(capsys, fixture_copy, "promote", BASE, "--push")
    assert code == 0 and "(0 envelopes new, 3 already there)" in output, output
    assert len(att_of(it_repository, digest)["layers"]) == 3

    # --level gpu with only a cpu verdict.
    code, output = verify(capsys, fixture_copy, candidate, public, "--level", "gpu")
    assert code == 8 and "cpu level only" in output, output

    # An untrusted key.
    _, other_public = new_keys(tmp_path / "other", None, monkeypatch, capsys)
    code, output = verify(capsys, fixture_copy, candidate, other_public)
    assert code == 8 and "bad signature" in output, output

    original = [blob(it_repository, layer["digest"]) for layer in att["layers"]]
    # One flipped byte in the verdict's payload (the statement stays valid JSON).
    tampered = json.loads(original[0])
    body = bytearray(base64.b64decode(tampered["payload"]))
    at = body.index(b'"pass"') + 2
    body[at] ^= 0x01  # "pass" -> "pbss"
    tampered["payload"] = base64.b64encode(bytes(body)).decode()
    store_only(it_repository, digest, [json.dumps(tampered).encode()])
    code, output = verify(capsys, fixture_copy, candidate, public)
    assert code == 8 and "bad signature" in output, output

    # A genuinely signed statement about another digest, copied beside this one.
    monkeypatch.delenv("TORCHSTACK_SIGNING_KEY")
    key = load_signing_key(private.read_bytes(), PASSPHRASE.encode(), "test")
    elsewhere = statement_of(json.loads(original[0]))
    payload = statement((Subject(it_repository, "sha256:" + "e" * 64),), VERDICT_PREDICATE,
                        elsewhere["predicate"])
    store_only(it_repository, digest, [sign(payload, key).to_json()])
    code, output = verify(capsys, fixture_copy, candidate, public)
    assert code == 8 and "another digest" in output, output

    # Back to the genuine attestations; then a newer failing verdict revokes the pass.
    store_only(it_repository, digest, original, [layer["annotations"] for layer in att["layers"]])
    assert verify(capsys, fixture_copy, candidate, public)[0] == 0
    time.sleep(0.01)
    write_record(fixture_copy, BASE, docker_id, input_hash, "cpu", passed=False)
    monkeypatch.setenv("TORCHSTACK_SIGNING_KEY_PASSPHRASE", PASSPHRASE)
    code, output = run_cli(capsys, fixture_copy, "promote", BASE, "--push",
                           "--signing-key", str(private))
    logs["promote-fail"] = output.encode()
    assert "2 envelopes new" in output, output  # attached although nothing was promoted
    assert len(att_of(it_repository, digest)["layers"]) == 5  # nothing dropped
    code, output = verify(capsys, fixture_copy, candidate, public, "--json")
    logs["verify-fail"] = output.encode()
    assert code == 8 and "failed verdict" in output, output

    # No private key material in anything torchstack wrote, printed or pushed.
    pushed = {f"registry blob {layer['digest']}": blob(it_repository, layer["digest"])
              for layer in att_of(it_repository, digest)["layers"]}
    pushed["registry .att config"] = blob(it_repository,
                                          att_of(it_repository, digest)["config"]["digest"])
    secrets = secrets_of(private, PASSPHRASE)
    leaks = scan_for(secrets, [fixture_copy, tmp_path], {**logs, **pushed},
                     skip=tmp_path / "keys")
    assert leaks == []
    # The scan itself finds each form where it is (the key folder it skipped holds the PEM).
    assert scan_for(secrets, [private], {"planted": secrets["scalar hex"]}, skip=tmp_path / "x")


def _attach_one(repository: str, digest: str, private: str, name: str, lock: str) -> None:
    key = load_signing_key(Path(private).read_bytes(), None, "test")
    payload = statement((Subject(repository, digest),), VERDICT_PREDICATE,
                        {"verdict": "pass", "level": "cpu", "writer": name})
    attach(Repository(repository), digest,
           [Attachment(sign(payload, key).to_json(), VERDICT_PREDICATE, f"key-{name}")],
           Path(lock))


@pytest.mark.parametrize("how", ["threads", "processes"])
def test_two_concurrent_attaches_both_survive(
        fixture_copy: Path, it_repository: str, docker_api: Any, capsys: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    private, _ = new_keys(tmp_path / "keys", None, monkeypatch, capsys)
    _docker_id, digest = pushed_candidate(fixture_copy, it_repository, docker_api, capsys)
    lock = str(fixture_copy / ".torchstack" / "attach.lock")
    names = [f"w{i}" for i in range(4)]
    if how == "threads":
        import threading
        workers: list[Any] = [threading.Thread(target=_attach_one, args=(
            it_repository, digest, str(private), n, lock)) for n in names]
    else:
        context = multiprocessing.get_context("fork")
        workers = [context.Process(target=_attach_one, args=(
            it_repository, digest, str(private), n, lock)) for n in names]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    keys = sorted(layer["annotations"]["dev.torchstack.key"]
                  for layer in att_of(it_repository, digest)["layers"])
    assert keys == [f"key-{n}" for n in names]


def test_record_import_of_a_gpu_report_attaches_a_gpu_verdict(
        fixture_copy: Path, it_repository: str, docker_api: Any, capsys: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    private, public = new_keys(tmp_path / "keys", None, monkeypatch, capsys)
    _docker_id, digest = pushed_candidate(fixture_copy, it_repository, docker_api, capsys)
    report = tmp_path / "gpu-report.txt"
    report.write_text(synthetic_pass(fixture_copy, digest))
    code, output = run_cli(capsys, fixture_copy, "record", "import", str(report),
                           "--signing-key", str(private))
    assert code == 0, output
    assert "verdicts attached to 1 digest(s)" in output, output
    ref = f"{it_repository}@{digest}"
    code, output = verify(capsys, fixture_copy, ref, public, "--level", "gpu",
                          "--gpu-model", "NVIDIA H100 80GB HBM3")
    assert code == 0, output
    code, output = verify(capsys, fixture_copy, ref, public, "--level", "gpu",
                          "--gpu-model", "NVIDIA A100-SXM4-80GB")
    assert code == 8 and "another GPU model" in output, output
    code, output = verify(capsys, fixture_copy, ref, public, "--suite-version", "999.0")
    assert code == 8 and "an old suite" in output, output
    verdicts = [statement_of(e)["predicate"] for e in envelopes_of(it_repository, digest)
                if statement_of(e)["predicateType"] == VERDICT_PREDICATE]
    (gpu,) = [v for v in verdicts if v["level"] == "gpu"]
    assert gpu["node"]["gpuModel"] == "NVIDIA H100 80GB HBM3" and gpu["node"]["ranOn"] == "report"
    leaks = scan_for(secrets_of(private, None), [fixture_copy, tmp_path],
                     {"output": output.encode()}, skip=tmp_path / "keys")
    assert leaks == []


def test_check_without_a_pushed_candidate_says_so(fixture_copy: Path, it_repository: str,
                                                  docker_api: Any, capsys: Any, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    private, _ = new_keys(tmp_path / "keys", None, monkeypatch, capsys)
    assert REGISTRY in it_repository
    _code, output = run_cli(capsys, fixture_copy, "check", BASE, "--gpu", "off", "--force",
                           "--signing-key", str(private))
    assert "no attestation attached: not in" in output and "`promote --push`" in output, output
    assert os.environ.get("TORCHSTACK_SIGNING_KEY") is None


def registry_json(repository: str, tail: str, accept: str) -> tuple[int, dict[str, Any] | None]:
    import urllib.error
    import urllib.request
    host, _, path = repository.partition("/")
    request = urllib.request.Request(f"http://{host}/v2/{path}/{tail}",
                                     headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


def test_the_referrers_flag_writes_oci_11_referrers_and_the_fallback_tag(
        fixture_copy: Path, it_repository: str, docker_api: Any, capsys: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    private, public = new_keys(tmp_path / "keys", None, monkeypatch, capsys)
    docker_id, input_hash = built(docker_api, fixture_copy, BASE)
    candidate = f"{it_repository}:{BASE}-{input_hash[:12]}"
    write_record(fixture_copy, BASE, docker_id, input_hash, "cpu")
    code, output = run_cli(capsys, fixture_copy, "promote", BASE, "--push", "--signing-key",
                           str(private), "--referrers")
    assert code == 0, output
    assert "OCI 1.1 referrers of" in output and ": 3 new" in output, output
    _, manifest, digest = http_manifest(candidate)
    assert manifest is not None
    index_type = "application/vnd.oci.image.index.v1+json"
    # distribution 2.8 has no referrers API, so the fallback tag lists them.
    assert registry_json(it_repository, f"referrers/{digest}", index_type)[0] == 404
    status, index = registry_json(it_repository, f"manifests/{digest.replace(':', '-')}",
                                  index_type)
    assert status == 200 and index is not None and len(index["manifests"]) == 3
    for entry in index["manifests"]:
        assert entry["artifactType"] == ENVELOPE_TYPE
        _, referrer = registry_json(it_repository, f"manifests/{entry['digest']}",
                                    "application/vnd.oci.image.manifest.v1+json")
        assert referrer is not None
        assert referrer["subject"]["digest"] == digest  # stored byte for byte
        assert referrer["artifactType"] == ENVELOPE_TYPE
        assert referrer["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
        (layer,) = referrer["layers"]
        assert independently_verified(json.loads(blob(it_repository, layer["digest"])), public)
    # With the .att emptied, verify still finds the verdict through the referrers.
    store_only(it_repository, digest, [])
    code, output = verify(capsys, fixture_copy, candidate, public)
    assert code == 0, output
    # Promoting the same record again adds no referrer.
    code, output = run_cli(capsys, fixture_copy, "promote", BASE, "--push", "--signing-key",
                           str(private), "--referrers")
    assert code == 0 and "referrers of" in output and ": 0 new" in output, output
    _, index = registry_json(it_repository, f"manifests/{digest.replace(':', '-')}",
                             index_type)
    assert index is not None and len(index["manifests"]) == 3

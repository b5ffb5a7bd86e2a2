"""Statements, DSSE and the verdict decision, with real crypto and no registry.

Each test names the plausible bug it catches. The registry side (storage, verify on real
pushes, concurrent attaches) is tests/integration/test_attestations_registry.py.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from torchstack.errors import ConfigError
from torchstack.release.attestations import (
    KEY_ANNOTATION,
    Attachment,
    Requirements,
    att_tag,
    attach,
    decide,
    layers_of,
)
from torchstack.release.dsse import pae, parse_envelope, sign
from torchstack.release.keys import (
    SigningKey,
    generate,
    load_signing_key,
    load_verify_key,
    write_key_pair,
)
from torchstack.release.statements import (
    TEST_RESULT_PREDICATE,
    VERDICT_PREDICATE,
    Subject,
    statement,
)

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


@pytest.fixture(scope="module")
def key() -> SigningKey:
    private, _ = generate(None)
    return load_signing_key(private, None, "test")


def verdict(key: SigningKey, when: str, result: str = "pass", level: str = "cpu",
            digest: str = DIGEST, gpu: str | None = None, suite: str = "1.0",
            scope: str = "suite") -> bytes:
    predicate = {"verdict": result, "level": level, "checkedAt": when,
                 "node": {"gpuModel": gpu}, "suite": {"version": suite},
                 "image": {"id": "x"}, "scope": scope}
    body = statement((Subject("r/x", digest),), VERDICT_PREDICATE, predicate)
    return sign(body, key).to_json()


def test_pae_matches_the_dsse_spec_vector_and_counts_bytes() -> None:
    # The vector from the DSSE protocol document.
    assert pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    # Bug caught: lengths counted in characters: "é" is 2 bytes in UTF-8.
    assert pae("t", "é".encode()) == b"DSSEv1 1 t 2 \xc3\xa9"


def test_signature_is_ecdsa_p256_over_the_pae_bytes(key: SigningKey) -> None:
    payload = b'{"a":1}'
    envelope = json.loads(sign(payload, key).to_json())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert envelope["signatures"][0]["keyid"] == ""
    assert base64.b64decode(envelope["payload"]) == payload
    # Verified with the library directly over PAE spelled out here (not torchstack's pae).
    public = key.key.public_key()
    message = b"DSSEv1 28 application/vnd.in-toto+json 7 " + payload
    public.verify(base64.b64decode(envelope["signatures"][0]["sig"]), message,
                  ec.ECDSA(hashes.SHA256()))


def test_a_flipped_payload_byte_or_another_key_fails(key: SigningKey) -> None:
    envelope = parse_envelope(sign(b'{"verdict":"pass"}', key).to_json())
    assert envelope.verified_by(key.public())
    flipped = bytearray(envelope.payload)
    flipped[3] ^= 1
    altered = type(envelope)(envelope.payload_type, bytes(flipped), envelope.signatures)
    assert not altered.verified_by(key.public())
    other_type = type(envelope)("text/plain", envelope.payload, envelope.signatures)
    assert not other_type.verified_by(key.public())  # the type is signed too
    stranger = load_signing_key(generate(None)[0], None, "stranger")
    assert not envelope.verified_by(stranger.public())


def test_the_statement_keeps_integers_and_names_every_subject_digest() -> None:
    body = json.loads(statement((Subject("r/x", DIGEST), Subject("r/x", OTHER)),
                                TEST_RESULT_PREDICATE, {"count": 8, "ratio": 0.5}))
    assert body["_type"] == "https://in-toto.io/Statement/v1"
    assert body["subject"] == [{"name": "r/x", "digest": {"sha256": "a" * 64}},
                               {"name": "r/x", "digest": {"sha256": "b" * 64}}]
    assert body["predicate"] == {"count": 8, "ratio": 0.5}
    assert isinstance(body["predicate"]["count"], int)  # protobuf bindings make this 8.0


def test_newest_by_signed_time_decides_not_layer_order(key: SigningKey) -> None:
    public = key.public()
    newer_fail = verdict(key, "2026-12-03T10:00:00.000002Z", "fail")
    older_pass = verdict(key, "2026-12-03T10:00:00.000001Z", "pass")
    # Bug caught: "the last layer wins": the pass is appended after the newer failure.
    decision = decide(DIGEST, [newer_fail, older_pass], public, Requirements())
    assert not decision.satisfied and decision.reason.startswith("failed verdict")
    newer_pass = verdict(key, "2026-12-03T11:00:00Z", "pass")
    assert decide(DIGEST, [newer_pass, newer_fail], public, Requirements()).satisfied
    # Times in another zone compare as instants, not as text.
    earlier_in_utc = verdict(key, "2026-12-03T12:30:00+02:00", "pass")  # 10:30 UTC
    assert not decide(DIGEST, [newer_fail, earlier_in_utc, verdict(
        key, "2026-12-03T10:45:00Z", "fail")], public, Requirements()).satisfied


def test_a_failure_at_the_same_instant_as_a_pass_wins_in_any_layer_order(
        key: SigningKey) -> None:
    # Bug caught: max() keeping the first of equal times, so layer order decided after all.
    public, when = key.public(), "2026-12-03T10:00:00Z"
    same_pass, same_fail = verdict(key, when, "pass"), verdict(key, when, "fail")
    assert not decide(DIGEST, [same_pass, same_fail], public, Requirements()).satisfied
    assert not decide(DIGEST, [same_fail, same_pass], public, Requirements()).satisfied


def test_a_part_of_the_suite_never_decides_for_the_whole(key: SigningKey) -> None:
    # Bug caught: a newer multinode-only (NCCL across nodes) pass outvoting a suite failure.
    public = key.public()
    suite_fail = verdict(key, "2026-12-03T10:00:00Z", "fail", "gpu", gpu="NVIDIA H100")
    part_pass = verdict(key, "2026-12-03T11:00:00Z", "pass", "gpu", gpu="NVIDIA H100",
                        scope="multinode")
    decision = decide(DIGEST, [suite_fail, part_pass], public, Requirements("gpu"))
    assert not decision.satisfied and decision.reason.startswith("failed verdict")
    only_part = decide(DIGEST, [part_pass], public, Requirements("gpu"))
    assert not only_part.satisfied


def test_a_level_is_decided_by_statements_of_that_level_or_higher(key: SigningKey) -> None:
    public = key.public()
    gpu_pass = verdict(key, "2026-12-03T09:00:00Z", "pass", "gpu", gpu="NVIDIA H100")
    cpu_fail = verdict(key, "2026-12-03T10:00:00Z", "fail", "cpu")
    # Bug caught: a lower level's newer failure revoking a higher level's pass.
    assert decide(DIGEST, [gpu_pass, cpu_fail], public, Requirements("gpu")).satisfied
    assert not decide(DIGEST, [gpu_pass, cpu_fail], public, Requirements("cpu")).satisfied
    gpu_fail = verdict(key, "2026-12-03T11:00:00Z", "fail", "gpu")
    cpu_pass = verdict(key, "2026-12-03T10:30:00Z", "pass", "cpu")
    # A newer gpu failure revokes an older cpu pass at the cpu level.
    assert not decide(DIGEST, [cpu_pass, gpu_fail], public, Requirements("cpu")).satisfied
    only_cpu = decide(DIGEST, [cpu_pass], public, Requirements("gpu"))
    assert not only_cpu.satisfied and "cpu level only" in only_cpu.reason


def test_subject_gpu_model_and_suite_requirements(key: SigningKey) -> None:
    public = key.public()
    elsewhere = verdict(key, "2026-12-03T10:00:00Z", digest=OTHER)
    decision = decide(DIGEST, [elsewhere], public, Requirements())
    assert not decision.satisfied and decision.reason.startswith("another digest")
    h100 = verdict(key, "2026-12-03T10:00:00Z", level="gpu", gpu="NVIDIA H100", suite="1.4")
    assert decide(DIGEST, [h100], public, Requirements("gpu", ("NVIDIA H100",))).satisfied
    model = decide(DIGEST, [h100], public, Requirements("gpu", ("NVIDIA A100",)))
    assert not model.satisfied and "another GPU model" in model.reason
    assert decide(DIGEST, [h100], public, Requirements(suite_version="1.4")).satisfied
    old = decide(DIGEST, [h100], public, Requirements(suite_version="1.10"))
    assert not old.satisfied and "an old suite" in old.reason  # 1.4 < 1.10 as versions
    assert decide(DIGEST, [], public, Requirements()).reason.startswith("no attestation")


def test_the_signing_key_repr_and_errors_never_show_the_key() -> None:
    private, _ = generate(b"pass phrase")
    key = load_signing_key(private, b"pass phrase", "env")
    scalar = f"{key.key.private_numbers().private_value:x}"
    assert scalar not in repr(key) and "redacted" in repr(key) and scalar not in str(key)
    with pytest.raises(ConfigError, match="is encrypted"):
        load_signing_key(private, None, "env")
    with pytest.raises(ConfigError, match="passphrase is wrong") as caught:
        load_signing_key(private, b"wrong", "env")
    assert "wrong" not in caught.value.message.replace("is wrong", "")
    rsa_like = b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    with pytest.raises(ConfigError):
        load_verify_key(rsa_like, "k.pub")


def test_keys_generate_writes_fresh_private_files_and_refuses_unsafe_places(
        tmp_path: Path) -> None:
    private, public = write_key_pair(tmp_path / "k", None)
    assert ((tmp_path / "k").stat().st_mode & 0o777) == 0o700
    assert (private.stat().st_mode & 0o777) == 0o600
    assert load_verify_key(public.read_bytes(), "pub").pem().startswith("-----BEGIN PUBLIC")
    loaded = serialization.load_pem_private_key(private.read_bytes(), None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    with pytest.raises(ConfigError, match="already exists"):
        write_key_pair(tmp_path / "k", None)
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(ConfigError, match="symbolic link"):
        write_key_pair(tmp_path / "link" / "k", None)
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    with pytest.raises(ConfigError, match="git work tree"):
        write_key_pair(tmp_path / "repo" / "sub" / "k", None)
    assert not (tmp_path / "real" / "k").exists()


class RacyRepository:
    """An in-memory repository where another writer overwrites the first PUT (as a second
    host would, without a lock): attach must read back, see its layer gone, and retry."""

    name = "r/x"

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, bytes] = {}
        self.puts = 0

    def manifest(self, tag: str) -> bytes | None:
        return self.manifests.get(tag)

    def put_blob(self, data: bytes) -> str:
        import hashlib
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return digest

    def put_manifest(self, tag: str, body: bytes) -> str:
        self.puts += 1
        if self.puts == 1:  # someone else's manifest lands right after ours
            foreign = json.loads(body)
            foreign["layers"] = [dict(foreign["layers"][0],
                                      annotations={KEY_ANNOTATION: "theirs"})]
            body = json.dumps(foreign).encode()
        self.manifests[tag] = body
        return ""


def test_attach_reads_back_and_retries_when_its_layer_went_missing(key: SigningKey) -> None:
    repository = RacyRepository()
    ours = Attachment(verdict(key, "2026-12-03T10:00:00Z"), VERDICT_PREDICATE, "ours")
    done = attach(repository, DIGEST, [ours], None)
    assert done.attempts == 2 and done.added == 1
    keys = [layer.key for layer in layers_of(repository.manifests[att_tag(DIGEST)])]
    assert keys == ["theirs", "ours"]  # the other writer's layer is kept too
    again = attach(repository, DIGEST, [ours], None)
    assert (again.added, again.already, repository.puts) == (0, 1, 2)

"""Attestations beside an image, in cosign's `.att` layout, and what they say to `verify`.

Storage: the tag `sha256-<hex>.att` in the image's repository is an OCI manifest with one layer
per DSSE envelope (mediaType application/vnd.dsse.envelope.v1+json, annotations
`dev.cosignproject.cosign/signature: ""` and `predicateType`). Attaching reads that manifest,
appends, writes it back and reads it again: distribution has no conditional PUT, so a lock
serialises the writers of this host and the read-back retries when another writer's PUT
dropped ours. A layer also carries `dev.torchstack.key` (which record it holds), so attaching
the same record twice is a no-op.

Deciding: only envelopes signed by the given key, whose statement names the resolved digest,
count. Of the verdicts at the asked level or above, the newest by the check time signed inside
the statement decides (never the layer order), so a later failure revokes an earlier pass.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from torchstack.backend.artifacts import (
    MAX_ENVELOPE,
    MAX_ENVELOPE_BYTES,
    MAX_LAYERS,
    OCI_INDEX,
    OCI_MANIFEST,
    Published,
    Repository,
)
from torchstack.backend.registry import RegistryError
from torchstack.release.dsse import (
    ENVELOPE_MEDIA_TYPE,
    IN_TOTO_PAYLOAD_TYPE,
    parse_envelope,
)
from torchstack.release.keys import VerifyKey
from torchstack.release.statements import (
    STATEMENT_TYPE,
    VERDICT_PREDICATE,
    digest_of,
    parse_time,
    read_statement,
)
from torchstack.resolve.records import LEVEL_RANK

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PREDICATE_ANNOTATION = "predicateType"
KEY_ANNOTATION = "dev.torchstack.key"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
ATTEMPTS = 5
SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")
# A statement dated further ahead of the verifier's clock than this never counts as a pass:
# the newest wins, so a pass dated 9999 would otherwise outrank every later failure for ever.
# A failure dated in the future still counts (never fail open). docs/attestations.md.
CLOCK_SKEW = timedelta(minutes=5)


def att_tag(digest: str) -> str:
    """`sha256:abc...` -> `sha256-abc....att`, the tag cosign reads attestations from."""
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}-{value}.att"


@dataclass(frozen=True)
class Layer:
    digest: str
    size: int
    annotations: Mapping[str, str]

    @property
    def key(self) -> str:
        return self.annotations.get(KEY_ANNOTATION, "")

    def to_json(self) -> dict[str, object]:
        return {"mediaType": ENVELOPE_MEDIA_TYPE, "digest": self.digest, "size": self.size,
                "annotations": dict(self.annotations)}


@dataclass(frozen=True)
class Attachment:
    envelope: bytes  # the DSSE JSON
    predicate_type: str
    key: str  # what it holds (a record, an SBOM): the same key is never attached twice


def layers_of(manifest: bytes | None) -> list[Layer]:
    """The envelope layers of an `.att` manifest (none when there is no manifest).

    RegistryError when it is not a manifest, names a layer that is not a sha256 digest, or
    holds more than MAX_LAYERS envelopes (each one is a request)."""
    if manifest is None:
        return []
    try:
        document = json.loads(manifest)
        rows = document["layers"] if isinstance(document, dict) else None
    except (ValueError, KeyError, RecursionError):
        rows = None
    if not isinstance(rows, list):
        raise RegistryError("the .att manifest is not an OCI manifest (no layers list)")
    layers = []
    for row in rows:
        if isinstance(row, dict) and row.get("mediaType") == ENVELOPE_MEDIA_TYPE:
            annotations, size, digest = row.get("annotations"), row.get("size"), row.get("digest")
            if not isinstance(digest, str) or not SHA256.fullmatch(digest):
                raise RegistryError(f"the .att manifest names the layer {str(digest)[:80]!r},"
                                    " which is not a sha256 digest")
            layers.append(Layer(digest, size if type(size) is int else 0,
                                {str(k): str(v) for k, v in annotations.items()}
                                if isinstance(annotations, dict) else {}))
            if len(layers) > MAX_LAYERS:
                raise RegistryError(f"the .att manifest lists more than {MAX_LAYERS} envelopes;"
                                    " none was read", tip="someone wrote it on purpose: look"
                                    " at who can push to this repository")
    return layers


def envelope_of(repository: Repository, layer: Layer) -> bytes:
    """One envelope blob, refused unread when its descriptor says it is too large."""
    if layer.size > MAX_ENVELOPE:
        raise RegistryError(f"{repository.name}: the envelope {layer.digest[:19]}… is"
                            f" {layer.size} bytes, larger than {MAX_ENVELOPE >> 20} MiB")
    return repository.blob(layer.digest, MAX_ENVELOPE)


class EnvelopeReader:
    """Reads envelope blobs for one decision: each distinct blob once, and no more than
    MAX_ENVELOPE_BYTES in all (1000 layers of 16 MiB each would otherwise fill memory)."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository
        self.blobs: dict[str, bytes] = {}
        self.total = 0

    def read(self, layers: list[Layer]) -> list[bytes]:
        new = {layer.digest: layer.size for layer in layers if layer.digest not in self.blobs}
        if self.total + sum(new.values()) > MAX_ENVELOPE_BYTES:
            raise self._too_much()
        for layer in layers:
            if layer.digest not in self.blobs:
                data = envelope_of(self.repository, layer)
                self.total += len(data)  # a descriptor may understate its blob
                if self.total > MAX_ENVELOPE_BYTES:
                    raise self._too_much()
                self.blobs[layer.digest] = data
        return [self.blobs[layer.digest] for layer in layers]

    def _too_much(self) -> RegistryError:
        return RegistryError(f"{self.repository.name}: the attestations add up to more than"
                             f" {MAX_ENVELOPE_BYTES >> 20} MiB; not all were read")


def att_manifest(layers: list[Layer], config_digest: str, config_size: int) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [layer.to_json() for layer in layers],
    }, separators=(",", ":")).encode()


def att_config(layers: list[Layer]) -> bytes:
    """An image config naming the layers, as cosign writes one for its `.att` images."""
    return json.dumps({
        "architecture": "", "os": "", "created": "0001-01-01T00:00:00Z", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        "history": [{"created": "0001-01-01T00:00:00Z"} for _ in layers],
    }, separators=(",", ":")).encode()


_THREAD_LOCKS: dict[str, threading.Lock] = {}


@contextlib.contextmanager
def host_lock(path: Path | None) -> Iterator[None]:
    """Serialise attaches on this host: a thread lock plus flock on `path` (other processes)."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with _THREAD_LOCKS.setdefault(str(path), threading.Lock()), path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Attached:
    digest: str
    added: int  # envelopes appended
    already: int  # envelopes that were there already (same record)
    attempts: int


class AttestationStore(Protocol):
    """What attaching asks of a repository (backend.artifacts.Repository; fakes in tests)."""

    name: str

    def manifest(self, tag: str) -> bytes | None: ...
    def put_blob(self, data: bytes) -> str: ...
    def put_manifest(self, tag: str, body: bytes) -> str: ...


def attach(repository: AttestationStore, digest: str, attachments: list[Attachment],
           lock: Path | None) -> Attached:
    """Append `attachments` to the `.att` of `digest`; never drops an earlier layer."""
    tag = att_tag(digest)
    for item in attachments:
        if len(item.envelope) > MAX_ENVELOPE:  # verify refuses an .att holding one
            raise RegistryError(f"{repository.name}@{digest}: a {item.predicate_type} envelope"
                                f" of {len(item.envelope) >> 20} MiB is more than verify reads"
                                f" ({MAX_ENVELOPE >> 20} MiB); nothing was attached")
    with host_lock(lock):
        for attempt in range(1, ATTEMPTS + 1):
            existing = layers_of(repository.manifest(tag))
            have = {layer.key for layer in existing if layer.key}
            new = [a for a in attachments if a.key not in have]
            if not new:
                return Attached(digest, 0 if attempt == 1 else len(attachments),
                                len(attachments) if attempt == 1 else 0, attempt)
            layers = existing + [
                Layer(repository.put_blob(item.envelope), len(item.envelope), {
                    SIGNATURE_ANNOTATION: "", PREDICATE_ANNOTATION: item.predicate_type,
                    KEY_ANNOTATION: item.key}) for item in new]
            config = att_config(layers)
            config_digest = repository.put_blob(config)
            repository.put_manifest(tag, att_manifest(layers, config_digest, len(config)))
            # No conditional PUT: another writer may have replaced the manifest in between.
            after = {layer.key for layer in layers_of(repository.manifest(tag))}
            if all(item.key in after for item in new) and have <= after:
                return Attached(digest, len(new), len(attachments) - len(new), attempt)
    raise RegistryError(f"{repository.name}@{digest}: attestations kept disappearing from"
                        f" {tag} after {ATTEMPTS} writes (another writer?)",
                        tip="run it again; attaches from several hosts at once are best effort")


EMPTY_CONFIG, EMPTY_MEDIA_TYPE = b"{}", "application/vnd.oci.empty.v1+json"


def fallback_tag(digest: str) -> str:
    """`sha256-<hex>`: the OCI 1.1 referrers tag schema, for registries without the API."""
    return digest.replace(":", "-")


def referrer_manifest(item: Attachment, blob: str, subject: Published) -> bytes:
    """An OCI 1.1 artifact manifest whose `subject` is the image: one envelope layer."""
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": ENVELOPE_MEDIA_TYPE,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": digest_of(EMPTY_CONFIG),
                   "size": len(EMPTY_CONFIG)},
        "layers": [{"mediaType": ENVELOPE_MEDIA_TYPE, "digest": blob,
                    "size": len(item.envelope)}],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest,
                    "size": subject.size},
        "annotations": {PREDICATE_ANNOTATION: item.predicate_type, KEY_ANNOTATION: item.key},
    }, separators=(",", ":")).encode()


def _index_entries(index: bytes | None) -> list[dict[str, object]]:
    try:
        rows = json.loads(index).get("manifests", []) if index else []
    except (ValueError, AttributeError, RecursionError):
        raise RegistryError("the referrers fallback tag does not hold an OCI index") from None
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def _entry_key(entry: dict[str, object]) -> str:
    annotations = entry.get("annotations")
    return str(annotations.get(KEY_ANNOTATION, "")) if isinstance(annotations, dict) else ""


def attach_referrers(repository: Repository, subject: Published,
                     attachments: list[Attachment], lock: Path | None) -> int:
    """Also write each attachment as an OCI 1.1 referrer of `subject`; where the registry has
    no referrers API, list them in the fallback index tag. Returns how many were new."""
    tag = fallback_tag(subject.digest)
    with host_lock(lock):
        for _ in range(ATTEMPTS):
            listed = repository.referrers(subject.digest)
            api = listed is not None
            entries = listed if listed is not None else _index_entries(
                repository.manifest(tag, OCI_INDEX))
            have = {_entry_key(e) for e in entries}
            new = []
            for item in (a for a in attachments if a.key not in have):
                repository.put_blob(EMPTY_CONFIG)
                body = referrer_manifest(item, repository.put_blob(item.envelope), subject)
                digest = repository.put_manifest(digest_of(body), body)
                new.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body),
                            "artifactType": ENVELOPE_MEDIA_TYPE,
                            "annotations": {PREDICATE_ANNOTATION: item.predicate_type,
                                            KEY_ANNOTATION: item.key}})
            if api or not new:
                return len(new)  # the registry indexes referrers itself
            index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                "manifests": entries + new}, separators=(",", ":")).encode()
            repository.put_manifest(tag, index, OCI_INDEX)
            after = {_entry_key(e) for e in _index_entries(repository.manifest(tag, OCI_INDEX))}
            if all(_entry_key(e) in after for e in new) and have <= after:
                return len(new)
    raise RegistryError(f"{repository.name}: referrers kept disappearing from {tag}",
                        tip="run it again; attaches from several hosts at once are best effort")


def read_referrer_envelopes(repository: Repository, digest: str) -> list[bytes]:
    """The envelopes of `digest`'s OCI 1.1 referrers (API, else the fallback tag)."""
    listed = repository.referrers(digest)
    entries = listed if listed is not None else _index_entries(
        repository.manifest(fallback_tag(digest), OCI_INDEX))
    envelopes = []
    wanted = [entry["digest"] for entry in entries
              if entry.get("artifactType") == ENVELOPE_MEDIA_TYPE
              and isinstance(entry.get("digest"), str) and SHA256.fullmatch(str(entry["digest"]))]
    if len(wanted) > MAX_LAYERS:
        raise RegistryError(f"{repository.name}: {digest} has more than {MAX_LAYERS} envelope"
                            " referrers; none was read")
    reader = EnvelopeReader(repository)
    for manifest_digest in wanted:
        envelopes += reader.read(layers_of(repository.manifest(str(manifest_digest))))
        if len(envelopes) > MAX_LAYERS:
            raise RegistryError(f"{repository.name}: {digest}'s referrers hold more than"
                                f" {MAX_LAYERS} envelopes; not all were read")
    return envelopes


@dataclass(frozen=True)
class Requirements:
    level: str = "cpu"
    gpu_models: tuple[str, ...] = ()
    suite_version: str | None = None


@dataclass(frozen=True)
class VerdictView:
    """What verify reads from one signed verdict statement."""

    verdict: str
    level: str
    checked_at: datetime
    gpu_model: str | None
    suite_version: str
    image: str

    def to_json(self) -> dict[str, object]:
        return {"verdict": self.verdict, "level": self.level,
                "checkedAt": self.checked_at.isoformat(), "gpuModel": self.gpu_model,
                "suiteVersion": self.suite_version, "image": self.image}


@dataclass(frozen=True)
class Decision:
    satisfied: bool
    reason: str  # why not (or what satisfied it)
    digest: str
    deciding: VerdictView | None
    envelopes: int  # DSSE layers found
    trusted: int  # of those, signed by the key and naming the digest

    def to_json(self) -> dict[str, object]:
        return {"satisfied": self.satisfied, "reason": self.reason, "digest": self.digest,
                "deciding": self.deciding.to_json() if self.deciding else None,
                "envelopes": self.envelopes, "trusted": self.trusted}


def _view(predicate: Mapping[str, object]) -> VerdictView:
    node = predicate.get("node")
    suite = predicate.get("suite")
    image = predicate.get("image")
    gpu = node.get("gpuModel") if isinstance(node, dict) else None
    verdict, level, when = (predicate.get("verdict"), predicate.get("level"),
                            predicate.get("checkedAt"))
    if verdict not in ("pass", "fail") or level not in LEVEL_RANK:
        raise ValueError("the verdict predicate lacks verdict or level")
    scope = predicate.get("scope", "suite")
    if scope != "suite":  # a part (multinode NCCL alone) never speaks for the whole suite
        raise ValueError(f"its scope {str(scope)[:40]!r} is not the whole suite")
    try:
        checked_at = parse_time(when) if isinstance(when, str) else None
    except ValueError:
        checked_at = None
    if checked_at is None:
        raise ValueError(f"its checkedAt {str(when)[:40]!r} is not an RFC 3339 time with a zone")
    return VerdictView(str(verdict), str(level), checked_at,
                       str(gpu) if gpu else None,
                       str(suite.get("version")) if isinstance(suite, dict) else "",
                       str(image.get("id")) if isinstance(image, dict) else "")


SUITE_VERSION = re.compile(r"^[0-9]{1,9}(?:\.[0-9]{1,9}){0,3}$")  # what --suite-version takes


def _version(text: str) -> tuple[int, ...] | None:
    """"1.1.0" -> (1, 1): trailing zeros dropped, so 1.1 and 1.1.0 are the same version."""
    if not SUITE_VERSION.fullmatch(text):
        return None
    parts = [int(part) for part in text.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def decide(digest: str, envelopes: list[bytes], key: VerifyKey, wanted: Requirements,
           now: datetime | None = None) -> Decision:
    """Whether the envelopes stored for `digest` satisfy `wanted`, and why not.

    `now` (default: this host's clock) bounds the check times: a pass dated more than
    CLOCK_SKEW ahead of it never counts."""
    now = now or datetime.now(UTC)
    unreadable = signed = statements = about = 0
    views: list[VerdictView] = []
    problem = ""  # why the first signed statement about `digest` that was set aside was
    for data in envelopes:
        try:
            envelope = parse_envelope(data)
        except ValueError:
            unreadable += 1
            continue
        if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE or not envelope.verified_by(key):
            continue
        signed += 1
        try:
            statement = read_statement(envelope.payload)
        except ValueError as exc:
            problem = problem or str(exc)
            continue
        statements += 1
        if digest not in statement.subject_digests:
            continue
        about += 1
        if statement.predicate_type != VERDICT_PREDICATE:
            continue
        try:
            views.append(_view(statement.predicate))
        except ValueError as exc:
            problem = problem or f"a signed verdict is unusable: {exc}"

    def no(reason: str, deciding: VerdictView | None = None) -> Decision:
        return Decision(False, reason, digest, deciding, len(envelopes), about)

    if not envelopes:
        return no(f"no attestation: the registry holds no {att_tag(digest)} envelopes")
    if not signed:
        junk = f"; {unreadable} unreadable (not DSSE envelopes)" if unreadable else ""
        return no(f"bad signature: none of the {len(envelopes)} envelopes verifies with the key"
                  f" {key.fingerprint[:19]}… (altered, or signed with another key){junk}")
    if not statements:
        return no(f"not an in-toto statement: the {signed} signed payloads are not"
                  f" {STATEMENT_TYPE} statements ({problem})")
    if not about:
        return no(f"another digest: the {statements} signed statements name other images, not"
                  f" {digest}")
    if not views:
        return no(f"no attestation: no usable signed {VERDICT_PREDICATE} verdict for {digest}"
                  + (f" ({problem})" if problem else ""))
    rank = LEVEL_RANK[wanted.level]
    at_level = [v for v in views if LEVEL_RANK[v.level] >= rank]
    if not at_level:
        levels = sorted({v.level for v in views})
        return no(f"{'/'.join(levels)} level only: --level {wanted.level} needs a"
                  f" {wanted.level}-level verdict (run the GPU suite and attach it)")
    ahead = [v for v in at_level if v.verdict == "pass" and v.checked_at > now + CLOCK_SKEW]
    deciding_pool = [v for v in at_level if v not in ahead]
    future = (f"; {len(ahead)} pass(es) dated in the future (latest"
              f" {max(v.checked_at for v in ahead).isoformat()}) never count: re-attest from a"
              " host whose clock is right") if ahead else ""
    if not deciding_pool:
        return no(f"no attestation: the only {wanted.level}-level passes are dated in the"
                  f" future{future}")
    # Newest by signed time; at the same instant a failure wins (never layer order).
    newest = max(deciding_pool, key=lambda v: (v.checked_at, v.verdict != "pass"))
    when = newest.checked_at.isoformat()
    if newest.verdict != "pass":
        return no(f"failed verdict: the newest {newest.level}-level statement ({when}) says"
                  f" fail{future}", newest)
    if wanted.gpu_models and newest.gpu_model not in wanted.gpu_models:
        return no(f"another GPU model: the newest verdict ({when}) ran on"
                  f" {newest.gpu_model or 'no GPU'}, wanted {' or '.join(wanted.gpu_models)}"
                  f"{future}", newest)
    if wanted.suite_version:
        have, need = _version(newest.suite_version), _version(wanted.suite_version)
        old = (have < need) if have is not None and need is not None \
            else newest.suite_version != wanted.suite_version
        if old:
            return no(f"an old suite: the newest verdict ({when}) ran suite"
                      f" {newest.suite_version}, wanted {wanted.suite_version} or newer", newest)
    return Decision(True, f"{newest.level}-level pass at {when}{future}", digest, newest,
                    len(envelopes), about)


def read_envelopes(repository: Repository, digest: str) -> list[bytes]:
    """Every DSSE envelope stored in `digest`'s `.att`."""
    return EnvelopeReader(repository).read(layers_of(repository.manifest(att_tag(digest))))


def payload_of(envelope: bytes) -> bytes:
    """The statement bytes inside an envelope (for tests and `--json` dumps)."""
    document = json.loads(envelope)
    return base64.b64decode(document["payload"])

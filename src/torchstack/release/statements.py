"""in-toto Statement v1 documents for a check verdict, built as plain JSON.

Three predicates travel with an image:
- VERDICT_PREDICATE, torchstack's own verdict (defined here, once): level and verdict, each
  check's status and metrics, suite version, local image ID, content identity, input hash,
  the versions read inside the image, node facts, the check time, and the sha256 of the run's
  report.json, junit.xml and SBOM;
- TEST_RESULT_PREDICATE, in-toto's generic test-result v0.1 (result, configuration, passed and
  failed tests);
- SBOM_PREDICATE, the CycloneDX SBOM promote writes.
The JSON is written here (sorted keys, compact), never through protobuf bindings, which turn
integers into floats. The check time is RFC 3339 UTC with microseconds: `verify` orders
statements by it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from torchstack.backend.identity import CONTENT_ID_SCHEME, Content
from torchstack.resolve.records import CheckRecord

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
VERDICT_PREDICATE = "https://torchstack.dev/attestations/verdict/v1"
TEST_RESULT_PREDICATE = "https://in-toto.io/attestation/test-result/v0.1"
SBOM_PREDICATE = "https://cyclonedx.org/bom"
JSON = object  # a value read from or written as JSON


@dataclass(frozen=True)
class Subject:
    name: str  # the repository, e.g. 127.0.0.1:5000/torchstack
    digest: str  # sha256:<hex>, a manifest digest the registry serves the image under

    def to_json(self) -> dict[str, object]:
        algorithm, _, value = self.digest.partition(":")
        return {"name": self.name, "digest": {algorithm: value}}


@dataclass(frozen=True)
class CheckOutcome:
    id: str
    status: str  # pass, fail, skip, error
    metrics: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """Everything the verdict predicate says, gathered by the API layer."""

    record: CheckRecord
    content: Content | None  # None when the Engine no longer has the image
    checks: tuple[CheckOutcome, ...]
    artifacts: Mapping[str, str]  # file name -> sha256:<hex>

    @property
    def key(self) -> str:
        """Names the record: attaching the same record twice is recognised by it."""
        r = self.record
        return digest_of(canonical([r.docker_id, r.input_hash, r.suite_version, r.level,
                                    r.passed, r.checked_at, r.scope]))


def canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="microseconds") \
        .replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """ValueError unless `text` is an RFC 3339 time with a zone."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment


def statement(subjects: tuple[Subject, ...], predicate_type: str,
              predicate: Mapping[str, object]) -> bytes:
    return canonical({"_type": STATEMENT_TYPE,
                      "subject": [s.to_json() for s in subjects],
                      "predicateType": predicate_type, "predicate": dict(predicate)})


def verdict_predicate(verdict: Verdict) -> dict[str, object]:
    record = verdict.record
    content = verdict.content
    node = record.node or {}
    listed = record.facts.get("gpus")
    gpus = listed if isinstance(listed, list) else []
    first_gpu = gpus[0].get("name") if gpus and isinstance(gpus[0], dict) else None
    source = record.source or {}
    return {
        "verdict": "pass" if record.passed else "fail",
        "level": record.level,
        "scope": record.scope,
        "checkedAt": rfc3339(record.checked_at),
        "image": {
            "id": record.image_id,
            "localImageId": record.docker_id,
            "inputHash": record.input_hash,
            # An image's content whatever manifest published it (gzip, zstd, OCI).
            "contentIdentity": None if content is None else {
                "scheme": CONTENT_ID_SCHEME, "id": content.id,
                "diffIds": list(content.diff_ids),
                "config": {k: json.loads(v) for k, v in content.config},
                "platform": dict(content.platform)},
        },
        "suite": {"version": record.suite_version, "summary": dict(record.summary)},
        "checks": [{"id": c.id, "status": c.status, "metrics": dict(c.metrics)}
                   for c in verdict.checks],
        "versions": dict(record.facts),
        "node": {
            "gpuModel": node.get("gpu_model") or first_gpu,
            "gpuCount": node.get("device_count", len(gpus)),
            "driver": node.get("driver") or record.facts.get("driver"),
            "hostname": node.get("hostname"),
            "ranOn": "cluster" if source.get("kind") == "kubernetes" else
                     ("report" if source.get("kind") == "file" else "runner"),
            "job": source.get("job"), "namespace": source.get("namespace"),
            "pod": source.get("pod"), "node": source.get("node"),
        },
        "artifacts": dict(verdict.artifacts),
    }


def test_result_predicate(verdict: Verdict, report_uri: str) -> dict[str, object]:
    record = verdict.record
    passed = [c.id for c in verdict.checks if c.status == "pass"]
    failed = [c.id for c in verdict.checks if c.status in ("fail", "error")]
    configuration = [{"name": "torchstack-checks", "annotations": {
        "suiteVersion": record.suite_version, "level": record.level}}]
    if "report.json" in verdict.artifacts:
        algorithm, _, value = verdict.artifacts["report.json"].partition(":")
        configuration.append({"name": "report.json", "uri": report_uri,
                              "digest": {algorithm: value}})
    return {"result": "PASSED" if record.passed else "FAILED",
            "configuration": configuration, "passedTests": passed, "warnedTests": [],
            "failedTests": failed}


@dataclass(frozen=True)
class ReadStatement:
    """A statement read back from an envelope's payload."""

    subject_digests: frozenset[str]
    predicate_type: str
    predicate: Mapping[str, object]


def _unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object whose keys are unique: parsers differ on which duplicate wins (Python
    keeps the last), so a signed statement with one could mean two things."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"the payload has the duplicate key {key[:40]!r}")
        seen.add(key)
    return dict(pairs)


def read_statement(payload: bytes) -> ReadStatement:
    """ValueError saying what is wrong when `payload` is not an in-toto Statement v1."""
    try:
        document = json.loads(payload, object_pairs_hook=_unique)
    except RecursionError:
        raise ValueError("the payload is JSON nested too deeply to read") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError("the payload is not JSON") from None
    if not isinstance(document, dict) or document.get("_type") != STATEMENT_TYPE:
        raise ValueError(f"the payload is not an in-toto statement ({STATEMENT_TYPE})")
    subjects, kind, predicate = (document.get("subject"), document.get("predicateType"),
                                 document.get("predicate"))
    if not isinstance(subjects, list) or not isinstance(kind, str) \
            or not isinstance(predicate, dict):
        raise ValueError("the statement lacks subject, predicateType or predicate")
    digests = set()
    for subject in subjects:
        found = subject.get("digest") if isinstance(subject, dict) else None
        if isinstance(found, dict):
            digests |= {f"{a}:{v}" for a, v in found.items() if isinstance(v, str)}
    return ReadStatement(frozenset(digests), kind, predicate)

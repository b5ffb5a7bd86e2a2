"""Which verdicts go to which digests: the statements for one image, signed and attached.

Per image: the digests already published for it (its candidate and release tags, and their
zstd variants, as the registry serves them, whose config is the checked image's: the same
config digest, or the same content identity; promote proved their layers when it pushed), the
newest check record at each level (pass or fail), the suite's per-check results from that
record's report.json, and the SBOM promote wrote. Each verdict becomes two statements
(torchstack's verdict and in-toto's test-result), plus the SBOM once per digest; all are
signed and appended to each digest's `.att`. The API layer calls this after promote, check and
record import; the check stage itself never attaches.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torchstack.backend.artifacts import MAX_ENVELOPE, Published, Repository
from torchstack.backend.docker import DockerBackend
from torchstack.backend.identity import Content, ImageInspect, content_of_blob, content_of_inspect
from torchstack.config.model import Matrix
from torchstack.release.attestations import Attachment, attach, attach_referrers
from torchstack.release.dsse import sign
from torchstack.release.keys import SigningKey
from torchstack.release.statements import (
    SBOM_PREDICATE,
    TEST_RESULT_PREDICATE,
    VERDICT_PREDICATE,
    CheckOutcome,
    Subject,
    Verdict,
    digest_of,
    statement,
    test_result_predicate,
    verdict_predicate,
)
from torchstack.resolve.records import CheckRecord, RecordStore
from torchstack.resolve.state import ImageState
from torchstack.resolve.tags import candidate_ref, decide


@dataclass(frozen=True)
class AttachOutcome:
    image_id: str
    digests: tuple[str, ...]  # where the statements went
    added: int  # envelopes appended, over all digests
    already: int  # envelopes that were there (the same records attached before)
    note: str | None = None  # why nothing was attached


def newest_per_level(store: RecordStore, state: ImageState) -> list[CheckRecord]:
    """The newest suite record of this exact image and input hash at each level."""
    rows = [r for r in store.all_for(str(state.local_image_id))
            if r.scope == "suite" and r.input_hash == state.input_hash]
    newest = {}
    for record in sorted(rows, key=lambda r: r.checked_at):
        newest[record.level] = record
    return [newest[level] for level in ("cpu", "gpu") if level in newest]


def tags_of(state: ImageState, matrix: Matrix, repository: str,
            records: list[CheckRecord]) -> list[str]:
    """The tags this build may be published under: its candidate, and the release tags a pass
    gave it (still asked after a later failure, which moves no tag but must reach them)."""
    refs = [candidate_ref(state.spec, matrix, repository, str(state.input_hash)),
            *state.decision.releases]
    for record in (r for r in reversed(records) if r.passed):
        refs += decide(state.spec, matrix, repository, state.input_hash, record,
                       record.level).releases
        break
    return [ref.rpartition(":")[2] for ref in dict.fromkeys(refs)]


def published_digests(repository: Repository, state: ImageState, tags: list[str],
                      inspected: ImageInspect | None, zstd_suffix: str) -> list[Published]:
    """Manifest digests the registry serves this image under (same content as checked): each
    tag, and its zstd variant (tag + `zstd_suffix`) where `compression: both` pushed one."""
    local: Content | None = content_of_inspect(inspected) if inspected else None
    found: list[Published] = []
    for tag in [t for base in tags for t in (base, base + zstd_suffix)]:
        published = repository.published(tag)
        if published is None or published.digest in {p.digest for p in found}:
            continue
        same = published.config_digest == state.local_image_id
        if not same and local is not None and published.config_digest:
            # a recompressed (zstd) or converted variant: same diff IDs and OCI config
            same = _content_id(repository.blob(published.config_digest)) == local.id
        if same:
            found.append(published)
    return found


def _content_id(config: bytes) -> str | None:
    """The content ID of an image config blob; None when it is not one (a registry may serve
    any artifact under a tag: its config need not even be JSON)."""
    try:
        blob = json.loads(config)
        return content_of_blob(blob).id if isinstance(blob, dict) else None
    except (ValueError, RecursionError, AttributeError, TypeError):
        return None


def _sha256(path: Path) -> str | None:
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _checks(record: CheckRecord, report: Path) -> tuple[CheckOutcome, ...]:
    """Per-check status and metrics from the run's report.json (imported: its figures)."""
    try:
        document = json.loads(report.read_text(encoding="utf-8"))
        images = document.get("images", []) if isinstance(document, dict) else []
    except (OSError, ValueError):
        images = []
    for image in images:
        suite = image.get("suite") if isinstance(image, dict) else None
        if image.get("docker_id") == record.docker_id and isinstance(suite, dict):
            return tuple(CheckOutcome(str(c.get("id")), str(c.get("status")),
                                      c.get("metrics") or {})
                         for c in suite.get("checks", []) if isinstance(c, dict))
    return tuple(CheckOutcome(check, "pass" if record.passed else "unknown",
                              metrics if isinstance(metrics, dict) else {})
                 for check, metrics in sorted(record.figures.items()))


def verdict_of(record: CheckRecord, runs: Path, content: Content | None,
               sbom: Path | None) -> Verdict:
    report = runs / record.report
    artifacts = {name: digest for name, digest in (
        ("report.json", _sha256(report)), ("junit.xml", _sha256(report.parent / "junit.xml")),
        ("sbom.cdx.json", _sha256(sbom) if sbom else None)) if digest}
    return Verdict(record, content, _checks(record, report), artifacts)


def attach_image(state: ImageState, matrix: Matrix, *, repository: Repository,
                 backend: DockerBackend,
                 key: SigningKey, store: RecordStore, runs: Path, lock: Path,
                 sbom: Path | None = None, referrers: bool = False,
                 say: Callable[[str], None] = lambda line: None) -> AttachOutcome:
    """Sign and attach the newest verdict at each level to every published digest (with
    `referrers`, also as OCI 1.1 referrers)."""
    if not state.built:
        return AttachOutcome(state.id, (), 0, 0, "not built")
    records = newest_per_level(store, state)
    if not records:
        return AttachOutcome(state.id, (), 0, 0, "no check record to attach")
    inspected = backend.inspect(str(state.local_image_id))
    tags = tags_of(state, matrix, repository.name, records)
    published = published_digests(repository, state, tags, inspected, matrix.zstd_suffix)
    digests = [p.digest for p in published]
    if not digests:
        return AttachOutcome(state.id, (), 0, 0,
                             f"not in {repository.name} yet (no candidate or release tag"
                             " serves it): `promote --push` attaches the verdict")
    content = content_of_inspect(inspected) if inspected else None
    subjects = tuple(Subject(repository.name, d) for d in digests)
    attachments = []
    # The same record signed by another key (after a rotation) is a new attachment.
    signer = key.public().fingerprint
    for record in records:
        verdict = verdict_of(record, runs, content, sbom)
        uri = f"file:.torchstack/runs/{record.report}"
        for kind, predicate in ((VERDICT_PREDICATE, verdict_predicate(verdict)),
                                (TEST_RESULT_PREDICATE, test_result_predicate(verdict, uri))):
            envelope = sign(statement(subjects, kind, predicate), key).to_json()
            attachments.append(Attachment(envelope, kind, digest_of(
                (verdict.key + kind + signer).encode())))
    if sbom is not None and sbom.is_file():
        document = json.loads(sbom.read_text(encoding="utf-8"))
        envelope = sign(statement(subjects, SBOM_PREDICATE, document), key).to_json()
        if len(envelope) > MAX_ENVELOPE:  # verify would refuse the whole .att for it
            say(f"the SBOM's envelope is {len(envelope) >> 20} MiB, more than verify reads"
                f" ({MAX_ENVELOPE >> 20} MiB): not attached")
        else:
            attachments.append(Attachment(envelope, SBOM_PREDICATE, digest_of(
                f"sbom:{state.local_image_id}{signer}".encode())))
    added = already = 0
    for image in published:
        done = attach(repository, image.digest, attachments, lock)
        added, already = added + done.added, already + done.already
        say(f"attested {repository.name}@{image.digest[:19]}: {done.added} new,"
            f" {done.already} already there")
        if referrers:
            count = attach_referrers(repository, image, attachments, lock)
            say(f"  OCI 1.1 referrers of {image.digest[:19]}: {count} new")
    return AttachOutcome(state.id, tuple(digests), added, already)

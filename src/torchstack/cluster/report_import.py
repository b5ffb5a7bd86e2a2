"""A framed suite report from elsewhere (a Kubernetes Job's log, a file) -> a check record.

The report is taken out of the text by its frame (checks.frame: markers and a sha256), read
into a typed `SuiteReport`, and only recorded when it is a report of the full suite with
`--gpu required`, by the current suite version, for the very image the record will name: the
digest it echoes must be the digest of that image's candidate tag in the push registry (see
cluster/candidates.py) and, from a Job, the digest the pods ran. Anything else is refused (exit 2)
before a record is written. A genuine report of a failed check is recorded as a failure.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from torchstack.checks.frame import FrameError, unframe
from torchstack.checks.multinode import CHECK_ID as MULTINODE_CHECK
from torchstack.checks.result import Report, ReportError, parse_report
from torchstack.cluster.candidates import Candidate, digest_of_image_id
from torchstack.config.model import ImageSpec, Matrix
from torchstack.errors import ConfigError
from torchstack.names import SHA256_DIGEST
from torchstack.release.attestations import CLOCK_SKEW
from torchstack.resolve.outcome import SuiteDocument
from torchstack.resolve.records import CheckRecord, Scope
from torchstack.workspace.json_types import JSONObject


@dataclass(frozen=True)
class Imported:
    """A suite report read back (checks.result's own parser) with the document it came from."""

    report: Report
    document: SuiteDocument

    @property
    def scope(self) -> Scope:
        """A torchrun run of checks.multinode reports its one NCCL-across-nodes check."""
        ids = [r.id for r in self.report.results]
        return "multinode" if ids == [MULTINODE_CHECK] else "suite"

    @property
    def failures(self) -> list[str]:
        """Why the report is not a pass; empty when it is."""
        if not self.report.results:
            return ["no check ran: a report that proves nothing is not a pass"]
        return [f"{r.id} {r.status}: {r.message}" for r in self.report.results
                if r.status in ("fail", "error")]

    @property
    def figures(self) -> JSONObject:
        """check id -> metrics as the document has them (units kept)."""
        return {c["id"]: c["metrics"] for c in self.document["checks"] if c.get("metrics")}


@dataclass(frozen=True)
class Source:
    """Where a report came from: a file, or a Job's pods (their image IDs are cross-checked)."""

    label: str  # for messages: the file path, or the Job with its namespace and context
    details: JSONObject  # what the record keeps
    pod_image_ids: tuple[tuple[str, str], ...] = ()  # (pod, containerStatuses[].imageID)


def read_report(text: str, where: str) -> Imported:
    """The framed report in `text`, typed; refused when there is none, or it is cut or altered."""
    try:
        document = unframe(text)
        report = parse_report(document)  # its shape checked: the document is a SuiteDocument
        return Imported(report, cast(SuiteDocument, document))
    except FrameError as exc:
        raise ConfigError(f"{where}: {exc}",
                          tip="import the whole output of `python -m checks --json --frame`"
                              " (the Job `torchstack k8s` renders runs it so); nothing was"
                              " recorded") from None
    except ReportError as exc:
        raise ConfigError(f"{where}: not a report of `python -m checks --json`: {exc}",
                          tip="nothing was recorded") from None


def spec_of(report: Report, matrix: Matrix, where: str) -> ImageSpec:
    """The image the report is about, by the id its expect file named."""
    specs = matrix.by_id()
    if report.image_id is None or report.image_id not in specs:
        raise ConfigError(f"{where}: the report is about image {report.image_id!r}, which the"
                          " current matrix does not have",
                          tip="import it with the matrix.yaml the Job was rendered from;"
                              " nothing was recorded")
    return specs[report.image_id]


def verify(report: Report, current_suite: str, where: str) -> None:
    """Refusals that need no registry: suite version, GPU mode, a digest to prove."""
    if report.suite_version != current_suite:
        theirs, ours = _version(report.suite_version), _version(current_suite)
        age = "an older" if theirs and ours and theirs < ours else "another"
        raise ConfigError(f"{where}: the report is from {age} check suite"
                          f" ({report.suite_version}; this torchstack's is {current_suite})",
                          tip="render the Job again with `torchstack k8s` (it ships the current"
                              " checks/) and rerun it; nothing was recorded")
    if report.gpu_mode != "required":
        raise ConfigError(f"{where}: the suite ran with --gpu {report.gpu_mode}; only --gpu"
                          " required proves the GPU level (with auto, a node without a GPU"
                          " skips the GPU checks and still passes)",
                          tip="run the Job `torchstack k8s` renders (it passes --gpu required);"
                              " nothing was recorded")
    if report.image_digest is None or not SHA256_DIGEST.fullmatch(report.image_digest):
        raise ConfigError(f"{where}: the report names no image digest"
                          f" ({report.image_digest!r}), so nothing ties it to an image",
                          tip="render the Job with `torchstack k8s`, which writes image_digest"
                              " into the expect file; nothing was recorded")


def prove(report: Report, candidate: Candidate, source: Source) -> None:
    """The digest the report echoes is one of the candidate's published variants (gzip or
    zstd), and the pods ran one of them."""
    if report.image_digest not in candidate.digests:
        raise ConfigError(f"{source.label}: the report is for image {report.image_digest}, but"
                          f" {candidate.image_id}'s candidate {candidate.ref} is"
                          f" {' or '.join(candidate.digests)}",
                          tip="import the report of a Job rendered for the current build"
                              " (`torchstack k8s` pins the candidate's digest); nothing was"
                              " recorded")
    for pod, image_id in source.pod_image_ids:
        ran = digest_of_image_id(image_id)
        if ran not in (*candidate.digests, candidate.docker_id):
            raise ConfigError(f"{source.label}: pod {pod} ran image {image_id!r}, not"
                              f" {candidate.pinned}",
                              tip="the report and the image the pod ran disagree: render and"
                                  " run the Job again; nothing was recorded")


def run_time(finished_at: float | None, now: float) -> float:
    """When an imported verdict was made: its run's end, so that a later run on a runner stays
    newer than an older cluster run imported after it. A report without one (written before
    the suite recorded it), or one dated in the future, is dated now."""
    # A cluster node's clock may run ahead of this host's by what verify also allows.
    if finished_at is None or not 0 < finished_at <= now + CLOCK_SKEW.total_seconds():
        return now
    return float(finished_at)


def record_for(imported: Imported, candidate: Candidate, source: Source,
               report_path: str, contract: Mapping[str, object] | None = None) -> CheckRecord:
    """A gpu-level record: the newest verdict for this image, pass or fail; `contract` is the
    image's arch contract (Contract.to_json) the run was judged against."""
    report = imported.report
    return CheckRecord(
        image_id=candidate.image_id, docker_id=candidate.docker_id,
        input_hash=candidate.input_hash, suite_version=report.suite_version, level="gpu",
        passed=not imported.failures, facts=report.facts,
        summary=imported.document.get("summary") or {}, report=report_path,
        checked_at=run_time(report.finished_at, time.time()), scope=imported.scope,
        node=report.node.to_dict(),
        source={**source.details, "image_digest": report.image_digest or candidate.digest},
        figures=imported.figures, content_id=candidate.content_id,
        contract=contract or {},
    )


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return ()

"""`torchstack record import REPORT | --from-job NAME`: a GPU verdict from elsewhere counts.

The report (a file, or the logs of the Job `torchstack k8s` rendered) becomes a gpu-level check
record of the image whose candidate digest it carries, and `promote` treats it like one written
by `torchstack check --gpu required`. Refused with exit 2, nothing recorded: a report that is
cut, altered, for another image, of another suite version, or not run with --gpu required.
A genuine report of a failure is recorded as one (the newest verdict decides) and exits 5.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torchstack import api
from torchstack.check.report import write_reports
from torchstack.cluster.candidates import resolve_candidate
from torchstack.cluster.grammar import parse_dns_label, parse_namespace, refuse_unprintable
from torchstack.cluster.report_import import (
    Imported,
    Source,
    prove,
    read_report,
    record_for,
    spec_of,
    verify,
)
from torchstack.commands.common import (
    Subparsers,
    add_step_summary,
    flag_type,
    matrix_of,
    push_repository,
)
from torchstack.commands.signing import add_signing_key, say_attached, signing_key_of
from torchstack.config.contract import contract_for
from torchstack.errors import CheckError, ConfigError
from torchstack.resolve.outcome import ImageCheck, suite_version
from torchstack.resolve.records import RecordStore
from torchstack.workspace.runs import check_workspace, create_run

REPORT_LIMIT_BYTES = 64 << 20  # a report is kilobytes; refuse to read a disk image by mistake
MARKER = "TORCHSTACK-REPORT BEGIN"


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("record", help="check records: import a report from a GPU cluster")
    actions = parser.add_subparsers(dest="record_action", required=True, metavar="ACTION")
    imp = actions.add_parser(
        "import", help="record the framed report of a Kubernetes check Job (or a file)",
        description="Read the report of `python -m checks --json --frame --gpu required` from a"
        " file or from a Job's pod logs, prove its image digest against the push registry"
        " (and the pods' imageID), and store a gpu-level check record for that image.")
    imp.add_argument("report", nargs="?", type=Path, metavar="REPORT",
                     help="a file holding the framed report (other lines are ignored)")
    imp.add_argument("--from-job", metavar="NAME",
                     type=flag_type(lambda text: parse_dns_label(text, "--from-job", "Job name")),
                     help="read the report from this Job's pod logs (kubeconfig: $KUBECONFIG"
                          " or ~/.kube/config)")
    imp.add_argument("--namespace", metavar="NS", type=flag_type(parse_namespace),
                     help="the Job's namespace (default: the context's, else default)")
    imp.add_argument("--context", metavar="CTX",
                     type=flag_type(lambda text: refuse_unprintable(text, "--context")),
                     help="the kubeconfig context (default: the current one)")
    add_signing_key(imp, "the imported verdict")
    imp.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if (args.report is None) == (args.from_job is None):
        raise ConfigError("record import needs REPORT or --from-job NAME, not both or neither",
                          tip="`torchstack record import report.txt` or"
                              " `torchstack record import --from-job ts-check-<image>`")
    if args.from_job is None and (args.namespace or args.context):
        raise ConfigError("--namespace and --context go with --from-job",
                          tip="leave them out when importing a file")
    matrix = matrix_of(args)
    check_workspace(matrix.root)
    key = signing_key_of(args)  # a bad key stops before anything is recorded
    text, source = (_from_job(args.from_job, args.namespace, args.context,
                              args.settings.kubeconfig)
                    if args.from_job else _from_file(args.report))
    imported = read_report(text, source.label)
    report = imported.report
    verify(report, suite_version(), source.label)
    spec = spec_of(report, matrix, source.label)
    repository = push_repository(matrix, args.settings.environ)
    state = api.resolve(matrix, [spec.id], docker=True, repository=repository,
                        settings=args.settings).by_id()[spec.id]
    local = api.content(state.local_image_id) if state.local_image_id else None
    candidate = resolve_candidate(state, matrix, repository, local,
                                  credentials=args.settings.credentials)
    prove(report, candidate, source)
    run_dir = create_run(matrix.root)
    record = record_for(imported, candidate, source, f"{run_dir.name}/report.json",
                        contract_for(spec.torch, spec.cuda).to_json())
    result = ImageCheck(spec, candidate.docker_id, candidate.input_hash,
                        "pass" if record.passed else "fail",
                        "; ".join(imported.failures) or _counts(imported), imported.document,
                        sum(r.duration_s for r in report.results), "gpu")
    write_reports(run_dir.path, [result], run_dir.root)
    add_step_summary(args.settings, "torchstack record import", run_dir.path / "summary.md")
    RecordStore.for_matrix(matrix).add(record)
    node = report.node
    on = (f" on {node.hostname or 'a node'} ({node.device_count}x {node.gpu_model},"
          f" driver {node.driver})")
    kind = "multi-node NCCL record" if record.scope == "multinode" else "gpu-level record"
    print(f"recorded a {'passing' if record.passed else 'FAILED'} {kind} for {spec.id}"
          f" ({candidate.docker_id[:19]}, {candidate.digest[:19]}){on}, from {source.label}")
    if key is not None:
        api.attest(matrix, [spec.id], signing_key=key, repository=repository,
                   say=lambda line: print(f"  {line}"), on_attach=say_attached,
                   settings=args.settings)
    if record.scope == "multinode":
        print("  multi-node figures are kept with the image's records; they do not count for"
              " the gpu level: import the single-node Job's report for that")
    if not record.passed:
        raise CheckError(f"{spec.id} failed its checks on the cluster: "
                         + "; ".join(imported.failures),
                         tip="the failure is recorded, so promote will not release this build;"
                             f" see {run_dir.path.relative_to(matrix.root)}/summary.md")
    return 0


def _from_file(path: Path) -> tuple[str, Source]:
    try:
        with path.open("rb") as handle:
            data = handle.read(REPORT_LIMIT_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the report {path}: {exc.strerror or exc}",
                          tip="pass the file the Job's log was saved to"
                              " (`kubectl logs job/NAME > report.txt`)") from None
    if len(data) > REPORT_LIMIT_BYTES:
        raise ConfigError(f"{path} is larger than {REPORT_LIMIT_BYTES >> 20} MiB: not a report",
                          tip="pass the saved log of one check Job")
    return (data.decode("utf-8", errors="replace"),
            Source(str(path), {"kind": "file", "path": str(path.resolve())}))


def _from_job(job: str, namespace: str | None, context: str | None,
              kubeconfig: str | None) -> tuple[str, Source]:
    from torchstack.cluster.client import (
        read_job_logs,  # the client takes ~2 s to import: only here
    )

    logs = read_job_logs(job, namespace, context, kubeconfig=kubeconfig)
    label = f"Job {logs.job} (namespace {logs.namespace}, context {logs.context})"
    reporting = [p for p in logs.pods if MARKER in p.log]
    if not reporting:
        pods = ", ".join(f"{p.name} ({p.phase})" for p in logs.pods) or "none"
        tip = ("the Job is still running: `kubectl wait --for=condition=complete"
               f" job/{job}` first" if logs.state == "running"
               else "`kubectl logs job/NAME` shows what the suite printed; was it rendered by"
                    " `torchstack k8s` (which passes --frame)?")
        raise ConfigError(f"{label}: no report in the logs of its pods: {pods}; the Job is"
                          f" {logs.state}", tip=tip + "; nothing was recorded")
    if len(reporting) > 1:
        raise ConfigError(f"{label}: {len(reporting)} pods logged a report"
                          f" ({', '.join(p.name for p in reporting)}); expected one",
                          tip="import each pod's log from a file instead; nothing was recorded")
    (pod,) = reporting
    if pod.image_id is None:
        raise ConfigError(f"{label}: pod {pod.name} has no imageID in its status, so the image"
                          " it ran cannot be proven", tip="nothing was recorded")
    return pod.log, Source(
        f"{label}, pod {pod.name}",
        {"kind": "kubernetes", "context": logs.context, "namespace": logs.namespace,
         "job": logs.job, "pod": pod.name, "node": pod.node, "job_state": logs.state,
         "image_id": pod.image_id},
        tuple((p.name, p.image_id) for p in logs.pods if p.image_id))


def _counts(imported: Imported) -> str:
    summary = imported.document.get("summary") or {}
    return ", ".join(f"{summary[k]} {k}" for k in ("pass", "skip", "fail", "error")
                     if summary.get(k))

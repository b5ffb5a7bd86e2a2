"""`torchstack promote [GLOB] [--push]`: tag (and push) what passed, per the promotion policy."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from torchstack import kinds
from torchstack.build import find_built_with_hash
from torchstack.commands.common import add_selection, matrix_of, push_repository
from torchstack.docker_backend import DockerBackend
from torchstack.errors import ConfigError, PromoteError
from torchstack.lock import display, lock_path, read_lock
from torchstack.manifests import inventory, locked_packages, write_manifest
from torchstack.model import ImageSpec, Matrix
from torchstack.promote import Journal, Promoter, TagResult
from torchstack.records import CheckRecord, RecordStore
from torchstack.run_checks import suite_version
from torchstack.runs import create_run
from torchstack.tags import decide


def register(sub: Any) -> None:
    parser = sub.add_parser("promote", help="tag images that passed their checks (and push)")
    add_selection(parser)
    parser.add_argument("--push", action="store_true",
                        help="push the tags and verify the registry serves the checked image")
    parser.add_argument("--registry", metavar="REPO",
                        help="repository to tag into (default: TORCHSTACK_REGISTRY or"
                             " matrix.yaml registry.push)")
    parser.add_argument("--discard-journal", action="store_true",
                        help="move an unreadable (or unwanted) promote journal aside, to"
                             " .torchstack/promote-journal.discarded-<time>.json, and go on")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    matrix = matrix_of(args)
    images = matrix.select(args.globs, everything=args.everything)
    repository = args.registry or push_repository(matrix)
    if args.registry and kinds.repository_problem(args.registry):
        raise ConfigError(f"--registry {args.registry!r}"
                          f" {kinds.repository_problem(args.registry)}",
                          tip="e.g. --registry 127.0.0.1:5000/torchstack")
    journal = Journal(matrix.root / ".torchstack" / "promote-journal.json", root=matrix.root)
    if args.discard_journal:
        aside = journal.discard()
        print(f"promote journal moved aside to {aside.relative_to(matrix.root)}" if aside
              else "no promote journal to discard")
    journal.pending()  # a corrupt journal stops promotion before anything is tagged
    backend = DockerBackend.connect()
    store = RecordStore.for_matrix(matrix)
    run_dir = create_run(matrix.root)
    promoter = Promoter(backend, journal, args.push,
                        lambda line: print(f"  {line}", flush=True))
    failures = [r for r in promoter.resume() if r.error]
    refused: list[str] = []
    memo: dict[str, str | None] = {}
    print(f"promote into {repository} (policy: release needs {matrix.promotion_level} checks)")
    for spec in images:
        built = find_built_with_hash(backend, matrix, spec, memo)
        docker_id, input_hash = built if built else (None, None)
        # The required level decides; below it, the cpu record explains "candidate only".
        record = (store.verdict(*built, suite_version(), matrix.promotion_level)
                  or store.verdict(*built, suite_version(), "cpu")) if built else None
        decision = decide(spec, matrix, repository, input_hash, record, matrix.promotion_level)
        results: list[TagResult] = []
        packages = None
        if built:
            # What is installed must be what the lock says, before any tag moves.
            try:
                packages = _packages(matrix, spec, backend, built[0])
            except PromoteError as exc:
                print(f"{spec.id}: not promoted: {exc.message}")
                refused.append(f"{spec.id} (installed packages differ from its lock)")
                continue
        if docker_id and (decision.candidate or decision.releases):
            results = promoter.promote(decision, docker_id)
        failures += [r for r in results if r.error]
        if not decision.releases:
            print(f"{spec.id}: no release tag: {decision.reason}")
            if decision.refused:
                refused.append(f"{spec.id} ({decision.reason})")
        for result in results:
            state = "pushed" if result.pushed else "tagged"
            print(f"  {state if not result.error else 'FAILED'} {result.ref}"
                  + (f": {result.error}" if result.error else ""))
        if built and packages is not None:
            release = decision.releases[0] if decision.releases else None
            _manifest(backend, run_dir.path / "manifests", spec, built, record, results,
                      release, packages)
    print(f"manifests in {run_dir.path.relative_to(matrix.root)}/manifests/")
    if failures:
        raise PromoteError(
            f"{len(failures)} tags could not be pushed: "
            + "; ".join(f"{r.ref}: {r.error}" for r in failures),
            tip="release tags that users pull were not moved past what the registry holds;"
                " fix the registry and run `torchstack promote --push` again")
    if refused:
        raise PromoteError("not promoted: " + "; ".join(refused),
                           tip="build and check these images; their previous tags are untouched")
    return 0


def _packages(matrix: Matrix, spec: ImageSpec, backend: DockerBackend,
              docker_id: str) -> dict[str, Any]:
    """The image's inventory, its Python part from the lock once cross-checked."""
    packages = inventory(backend, docker_id)
    lock = read_lock(matrix, spec)
    if lock is None:
        return packages
    return locked_packages(spec.id, display(matrix, lock_path(matrix, spec)), lock, packages)


def _manifest(backend: DockerBackend, folder: Path, spec: ImageSpec, built: tuple[str, str],
              record: CheckRecord | None, results: list[TagResult], release: str | None,
              packages: dict[str, Any]) -> None:
    docker_id, input_hash = built
    inspected = backend.inspect(docker_id) or {}
    summary = {
        "image_id": spec.id,
        "docker_id": docker_id,
        "repo_digests": inspected.get("RepoDigests", []),
        "size_bytes": inspected.get("Size"),
        "input_hash": input_hash,
        "checks": {"level": record.level, "passed": record.passed, "summary": record.summary,
                   "suite_version": record.suite_version, "facts": record.facts}
        if record else None,
        "tags": [{"ref": r.ref, "pushed": r.pushed, "digest": r.digest, "error": r.error}
                 for r in results],
        "release_tag": release,
    }
    write_manifest(folder, spec.id, summary, packages, spec.os, spec.base_image)

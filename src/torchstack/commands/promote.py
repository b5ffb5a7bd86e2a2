"""`torchstack promote [GLOB] [--push]`: tag (and push) what passed, per the promotion policy."""

from __future__ import annotations

import argparse

from torchstack import api
from torchstack.commands.common import (
    Subparsers,
    add_selection,
    matrix_of,
    push_repository,
    stage_reporter,
)
from torchstack.commands.signing import add_signing_key, say_attached, signing_key_of
from torchstack.config import kinds
from torchstack.config.expand import zstd_tag_problem
from torchstack.config.matrix import ZSTD_TAGS_TIP
from torchstack.config.model import COMPRESSIONS
from torchstack.errors import ConfigError
from torchstack.progress import StageReporter
from torchstack.release.stage import ImagePromotion, journal_of


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("promote", help="tag images that passed their checks (and push)")
    add_selection(parser)
    parser.add_argument("--push", action="store_true",
                        help="push the tags and verify the registry serves the checked image")
    parser.add_argument("--registry", metavar="REPO",
                        help="repository to tag into (default: TORCHSTACK_REGISTRY or"
                             " matrix.yaml registry.push)")
    parser.add_argument("--compression", choices=COMPRESSIONS,
                        help="layer compression of what --push publishes: gzip (every runtime),"
                             " zstd (containerd >= 1.5, Docker >= 23), or both (zstd under the"
                             " tags + registry.zstd_suffix); default: matrix.yaml"
                             " registry.compression (docs/registry.md)")
    parser.add_argument("--discard-journal", action="store_true",
                        help="move an unreadable (or unwanted) promote journal aside, to"
                             " .torchstack/promote-journal.discarded-<time>.json, and go on")
    add_signing_key(parser, "each image's newest verdict at each level (with --push)")
    parser.add_argument("--referrers", action="store_true",
                        help="with --signing-key, also write each attestation as an OCI 1.1"
                             " referrer (and the sha256-<hex> fallback index tag where the"
                             " registry has no referrers API)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    matrix = matrix_of(args)
    matrix.select(args.globs, everything=args.everything)  # no match: exit 2 before anything
    if args.registry and kinds.repository_problem(args.registry):
        raise ConfigError(f"--registry {args.registry!r}"
                          f" {kinds.repository_problem(args.registry)}",
                          tip="e.g. --registry 127.0.0.1:5000/torchstack")
    repository = args.registry or push_repository(matrix, args.settings.environ)
    compression = args.compression or matrix.compression
    if compression == "both" and matrix.compression != "both":  # the matrix checked its own
        problem = zstd_tag_problem(matrix.images, matrix.tags.candidate, matrix.zstd_suffix)
        if problem:
            raise ConfigError(f"--compression both: {problem}", tip=ZSTD_TAGS_TIP)
    key = signing_key_of(args)
    if key is not None and not args.push:
        print("--signing-key: nothing is attached without --push")
    if args.discard_journal:
        aside = journal_of(matrix).discard()
        print(f"promote journal moved aside to {aside.relative_to(matrix.root)}" if aside
              else "no promote journal to discard")
    pushed = f", pushing {compression}" if args.push else ""
    print(f"promote into {repository} (policy: release needs {matrix.promotion_level} checks"
          f"{pushed})")
    progress = stage_reporter(args, "promote")
    outcome = api.promote(matrix, args.globs, everything=args.everything, push=args.push,
                          repository=repository, compression=compression, say=progress.line,
                          on_image=lambda image: _say(progress, image), signing_key=key,
                          on_attach=say_attached, referrers=args.referrers,
                          settings=args.settings)
    progress.end(f"{len(outcome.images)} images")
    print(f"manifests in {outcome.run.path.relative_to(matrix.root)}/manifests/")
    error = outcome.error()
    if error is not None:
        raise error
    return 0


def _say(progress: StageReporter, image: ImagePromotion) -> None:
    for result in image.results:
        state = f"pushed ({result.compression})" if result.pushed else "tagged"
        progress.line(f"  {state if not result.error else 'FAILED'} {result.ref}"
                      + (f": {result.error}" if result.error else ""))
    if image.lock_problem is not None:
        progress.finish(image.state.id, f"not promoted: {image.lock_problem}", ok=False)
    elif any(r.error for r in image.results):
        progress.finish(image.state.id, "some tags failed; the next promote resumes", ok=False)
    elif not image.state.decision.releases:
        progress.finish(image.state.id, f"no release tag: {image.state.decision.reason}")
    else:
        progress.finish(image.state.id, f"{len(image.results)} tags")

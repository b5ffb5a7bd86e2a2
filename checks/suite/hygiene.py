"""hygiene: the image runs as a non-root user and ships no world-writable files.

Scanned: /opt and every site-packages directory (site.getsitepackages() plus sysconfig's
purelib/platlib). Symlinks are skipped (their mode bits mean nothing). Mount points below a
root are not entered, nor is the folder this suite was loaded from: the host mounts the suite
and the expect file under /opt, and those files are not part of the image. Up to MAX_SHOWN
offending paths are named in the message, with the total count.
"""

from __future__ import annotations

import os
import site
import stat
import sysconfig
from collections.abc import Collection, Iterable, Iterator

from .. import SEARCH_ROOT
from ..result import Metric, Outcome, failed, passed
from ..spec import CheckContext, CheckSpec

MAX_SHOWN = 10
ROOT_FIX = "set `USER <name>` in the Dockerfile (Kubernetes: securityContext.runAsNonRoot: true)"
WRITABLE_FIX = "remove the o+w bit in the Dockerfile (e.g. `chmod -R o-w <dir>`)"


def scan_roots() -> list[str]:
    """/opt and the site-packages dirs that exist, without roots nested inside another."""
    candidates = ["/opt", *site.getsitepackages()]
    candidates += [sysconfig.get_paths()[key] for key in ("purelib", "platlib")]
    return distinct_roots(candidates)


def distinct_roots(paths: Iterable[str]) -> list[str]:
    real = sorted({os.path.realpath(p) for p in paths if os.path.isdir(p)})
    kept: list[str] = []
    for path in real:
        if not any(path == k or path.startswith(k.rstrip(os.sep) + os.sep) for k in kept):
            kept.append(path)
    return kept


def world_writable(roots: Iterable[str], skip: Collection[str] = ()) -> Iterator[str]:
    """Every path under `roots` (roots included) with the o+w bit, symlinks excepted; `skip`
    paths and mount points below a root are not entered."""
    skipped = {os.path.realpath(path) for path in skip}
    for root in roots:
        if _is_world_writable(root):
            yield root
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = [d for d in dirnames if not _foreign(os.path.join(dirpath, d), skipped)]
            for name in (*dirnames, *filenames):
                path = os.path.join(dirpath, name)
                if _is_world_writable(path):
                    yield path


def _foreign(path: str, skipped: Collection[str]) -> bool:
    return os.path.realpath(path) in skipped or os.path.ismount(path)


def _is_world_writable(path: str) -> bool:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False  # vanished while scanning
    return not stat.S_ISLNK(mode) and bool(mode & stat.S_IWOTH)


def judge(uid: int, roots: list[str], skip: Collection[str] = ()) -> Outcome:
    problems = []
    if uid == 0:
        problems.append(f"runs as root (uid 0); {ROOT_FIX}")
    offenders = list(world_writable(roots, skip))
    if offenders:
        shown = ", ".join(offenders[:MAX_SHOWN])
        more = f" and {len(offenders) - MAX_SHOWN} more" if len(offenders) > MAX_SHOWN else ""
        problems.append(
            f"{len(offenders)} world-writable path(s) under {', '.join(roots)}: {shown}{more}; "
            f"{WRITABLE_FIX}"
        )
    metrics = {"uid": Metric(uid, "uid"), "world_writable_paths": Metric(len(offenders), "paths")}
    if problems:
        return failed("; ".join(problems), metrics)
    return passed(
        f"runs as uid {uid}; no world-writable files under {', '.join(roots) or '(nothing)'}",
        metrics,
    )


def run(ctx: CheckContext) -> Outcome:
    # SEARCH_ROOT holds the mounted suite, which is not image content.
    return judge(os.getuid(), scan_roots(), skip=[SEARCH_ROOT])


CHECK = CheckSpec(
    id="hygiene",
    layers=("torch",),
    needs_gpu=False,
    timeout_s=120,
    run=run,
    summary="non-root user, no world-writable files under /opt and site-packages",
)

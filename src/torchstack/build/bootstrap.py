"""OS base images without a registry: debootstrap a minimal root filesystem and `docker import` it.

The image gets the exact name the matrix expects (`os_bases.<os>.image`, e.g.
debian:bookworm-slim) and labels saying it was bootstrapped, from which suite and mirror.
Like the official -slim images, documentation, man pages and locales are left out (and dpkg is
told to keep leaving them out), and apt caches and lists are emptied.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from torchstack.config.model import Matrix, OsBase
from torchstack.errors import BuildError, ConfigError
from torchstack.names import LABEL_PREFIX

WORK_ROOT = Path("/var/tmp")  # debootstrap needs a filesystem that allows exec and device nodes
SLIM_EXCLUDES = """\
# Written by `torchstack base bootstrap`: keep the image slim, as the official -slim images do.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
"""
APT_CLEAN = """\
# Written by `torchstack base bootstrap`: no package cache kept in image layers.
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
"""
# Emptied (contents only) after debootstrap.
EMPTIED = ("var/cache/apt", "var/lib/apt/lists", "var/log", "tmp", "usr/share/man",
           "usr/share/info", "usr/share/lintian")
STD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Runner = Callable[[list[str], Path], None]  # (command, log file): raises CalledProcessError


@dataclass(frozen=True)
class Bootstrapped:
    os: str
    image: str
    image_id: str
    created: bool  # False: the image existed and --force was not given


class ImportEngine(Protocol):
    """What bootstrapping asks the Docker Engine (backend.docker.DockerBackend)."""

    def image_id(self, ref: str) -> str | None: ...
    def import_image(self, tarball: Path, ref: str, changes: list[str]) -> str: ...


def bootstrap(backend: ImportEngine, os_base: OsBase, *, force: bool = False,
              runner: Runner | None = None, now: datetime | None = None,
              announce: Callable[[str], None] = lambda _text: None) -> Bootstrapped:
    suite = _require_bootstrap(os_base)
    existing = backend.image_id(os_base.image)
    if existing is not None and not force:
        return Bootstrapped(os_base.name, os_base.image, existing, created=False)
    if shutil.which("debootstrap") is None:
        raise BuildError(f"cannot bootstrap {os_base.image}: debootstrap is not installed",
                         tip="apt-get install debootstrap (or `bash scripts/start-services.sh`)")
    with tempfile.TemporaryDirectory(prefix="torchstack-bootstrap-", dir=_work_root()) as tmp:
        work = Path(tmp)
        rootfs, log = work / "rootfs", work / "debootstrap.log"
        run = runner or _run
        announce(f"debootstrap {suite} from {os_base.bootstrap_mirror} (a minute or more;"
                 " on failure the end of its log is shown)")
        command = ["debootstrap", "--variant=minbase", suite, str(rootfs),
                   os_base.bootstrap_mirror]
        try:
            run(command, log)
            slim(rootfs)
            run(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf",
                 str(work / "rootfs.tar"), "."], log)
        except (subprocess.CalledProcessError, OSError) as exc:
            tail = _tail(log)
            raise BuildError(
                f"bootstrapping {os_base.image} failed: {exc}" + (f"\n{tail}" if tail else ""),
                tip="debootstrap needs root and network access to "
                f"{os_base.bootstrap_mirror} (set http_proxy if it needs a proxy)") from None
        image_id = backend.import_image(work / "rootfs.tar", os_base.image,
                                        changes=import_changes(os_base, now or datetime.now(UTC)))
    return Bootstrapped(os_base.name, os_base.image, image_id, created=True)


def import_changes(os_base: OsBase, now: datetime) -> list[str]:
    """Dockerfile instructions `docker import` applies: labels, PATH and the default command."""
    labels = {
        f"{LABEL_PREFIX}.bootstrapped": "true",
        f"{LABEL_PREFIX}.bootstrap.suite": str(os_base.bootstrap_suite),
        f"{LABEL_PREFIX}.bootstrap.mirror": os_base.bootstrap_mirror,
        f"{LABEL_PREFIX}.bootstrap.variant": "minbase",
        f"{LABEL_PREFIX}.bootstrap.created": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return [
        "LABEL " + " ".join(f'{key}="{value}"' for key, value in labels.items()),
        f"ENV PATH={STD_PATH}",
        'CMD ["bash"]',
    ]


def slim(rootfs: Path) -> None:
    """Drop caches, lists, logs and docs from a fresh root filesystem; keep dpkg dropping docs."""
    for relative in EMPTIED:
        folder = rootfs / relative
        if folder.is_dir():
            for child in folder.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    docs = rootfs / "usr/share/doc"
    if docs.is_dir():
        for path in docs.rglob("*"):
            if path.is_file() and path.name != "copyright":
                path.unlink()
    locales = rootfs / "usr/share/locale"
    if locales.is_dir():
        for child in locales.iterdir():
            if child.name != "locale.alias":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/dpkg/dpkg.cfg.d/torchstack-slim").write_text(SLIM_EXCLUDES, encoding="utf-8")
    (rootfs / "etc/apt/apt.conf.d/torchstack-clean").write_text(APT_CLEAN, encoding="utf-8")


def bases_to_bootstrap(matrix: Matrix, names: list[str]) -> list[OsBase]:
    """The named OS bases; when none is named, those the images use that can be bootstrapped."""
    unknown = [n for n in names if n not in matrix.os_bases]
    if unknown:
        raise ConfigError(f"unknown OS base {', '.join(unknown)}",
                          tip=f"os_bases in {matrix.file}: {', '.join(matrix.os_bases)}")
    if names:
        chosen = [matrix.os_bases[n] for n in dict.fromkeys(names)]
        for os_base in chosen:
            _require_bootstrap(os_base)
        return chosen
    used = [matrix.os_bases[n] for n in dict.fromkeys(image.os for image in matrix.images)]
    bootstrappable = [b for b in used if b.bootstrap_suite]
    if not bootstrappable:
        raise ConfigError(f"no OS base used by {matrix.file} has a `bootstrap:` entry",
                          tip="name one explicitly, or add bootstrap: {suite: ...} to it")
    return bootstrappable


def _require_bootstrap(os_base: OsBase) -> str:
    """The debootstrap suite of an OS base; a ConfigError when it has none."""
    if os_base.bootstrap_suite is None:
        raise ConfigError(
            f"OS base '{os_base.name}' ({os_base.image}) has no `bootstrap:` entry in the matrix,"
            " so it cannot be built locally",
            tip=f"`docker pull {os_base.image}` or `docker load` it, or add `bootstrap: {{suite:"
            " ..., mirror: ...}` under os_bases." + os_base.name)
    return os_base.bootstrap_suite


def _run(command: list[str], log: Path) -> None:
    with log.open("a", encoding="utf-8") as out:
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=True)


def _tail(log: Path, lines: int = 15) -> str:
    if not log.is_file():
        return ""
    return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def _work_root() -> Path | None:
    return WORK_ROOT if WORK_ROOT.is_dir() else None

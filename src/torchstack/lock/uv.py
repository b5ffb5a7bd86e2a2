"""Resolve image locks with uv: each image's pins plus its parent's lock as constraints.

One `uv pip compile` per image, parents first, for the image's exact Python and platform,
wheels only. A child is resolved with every package of its parent's lock as a requirement and
a constraint (name==version), so it may add packages and never change its parent's; the
parent's entries are then copied into the child's lock verbatim. Without --upgrade the
versions already locked are handed to uv as preferences (a version-only pylock.toml at the
output path, which uv reads as the previous resolution), so a version changes only when a pin
needs it. Preferences carry no URLs or hashes: every hash comes from the index asked now.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Required, TypedDict, cast
from urllib.parse import unquote

from packaging import tags
from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from torchstack.config.inputs import (
    PIP_INDEX_ENV,
    TORCH_INDEX_ENV,
    BuildInputs,
    probe_index,
    redact_url,
)
from torchstack.config.kinds import normalize
from torchstack.config.model import ImageSpec, Matrix
from torchstack.errors import ConfigError, IndexUnreachableError, TorchstackError
from torchstack.lock.pylock import (
    LOCK_NAME,
    PLATFORM,
    ImageLock,
    LockedDist,
    lock_inputs,
    lock_path,
    lock_status,
    read_lock,
    validate_lock,
    write_lock,
)
from torchstack.workspace.paths import shown

# uv settings that would change what it resolves; the lock's inputs are the only ones.
UV_ENV_KEEP = ("UV_CACHE_DIR", "UV_HTTP_TIMEOUT", "UV_HTTP_RETRIES", "UV_NATIVE_TLS",
               "UV_CONCURRENT_DOWNLOADS", "UV_OFFLINE")
UNREACHABLE = re.compile(r"Failed to fetch: `?(\S+?)`?$|error sending request for url \((\S+)\)",
                         re.MULTILINE)
REQUIREMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Uv:
    path: Path
    version: str


def find_uv() -> Uv:
    """uv beside this Python (the venv torchstack runs in), else on PATH."""
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.is_file() else shutil.which("uv")
    if found is None:
        raise ConfigError("uv is not installed; `torchstack lock` resolves with uv",
                          tip=f"{sys.executable} -m pip install uv")
    run = subprocess.run([found, "--version"], capture_output=True, text=True, check=False)
    match = re.match(r"uv (\S+)", run.stdout)
    if run.returncode != 0 or match is None:
        raise ConfigError(f"{found} --version failed: {run.stderr.strip()[-300:]}")
    return Uv(Path(found), match.group(1))


@dataclass(frozen=True)
class LockRequest:
    # uv's environment, from Settings (PATH to find an interpreter, proxies, HOME); its own UV_*
    # settings are dropped. No default: an empty one leaves uv without an interpreter.
    environ: Mapping[str, str] = field(repr=False)
    upgrade: bool = False  # forget every locked version
    upgrade_packages: tuple[str, ...] = ()  # forget these only
    inputs: BuildInputs = field(default_factory=BuildInputs)  # --index overrides, CA bundle


@dataclass(frozen=True)
class LockOutcome:
    image_id: str
    path: str  # images/<id>/pylock.toml
    changed: bool = False
    dists: int = 0
    error: TorchstackError | None = None
    seconds: float = 0.0


def images_to_lock(matrix: Matrix, selected: list[ImageSpec]) -> list[ImageSpec]:
    """The selection plus the ancestors whose lock is missing or stale, parents first."""
    chosen = {s.id for s in selected}
    # A stale ancestor would make its children stale again at once: lock it first.
    return [spec for spec in matrix.with_ancestors(selected)
            if spec.id in chosen or lock_status(matrix, spec) != "fresh"]


def lock_images(matrix: Matrix, images: list[ImageSpec], request: LockRequest, uv: Uv,
                on_done: Callable[[LockOutcome], None] = lambda _o: None) -> list[LockOutcome]:
    """Lock each image (parents first); a failure fails its descendants, not its siblings."""
    outcomes: dict[str, LockOutcome] = {}
    reachable: dict[str, str | None] = {}  # index URL -> why it cannot be reached
    for spec in images:
        start = time.monotonic()
        path = shown(matrix.root, lock_path(matrix, spec))
        try:
            changed, count = _lock_one(matrix, spec, request, uv, outcomes, reachable)
            outcome = LockOutcome(spec.id, path, changed, count,
                                  seconds=time.monotonic() - start)
        except TorchstackError as exc:
            outcome = LockOutcome(spec.id, path, error=exc, seconds=time.monotonic() - start)
        outcomes[spec.id] = outcome
        on_done(outcome)
    return list(outcomes.values())


def _lock_one(matrix: Matrix, spec: ImageSpec, request: LockRequest, uv: Uv,
              outcomes: dict[str, LockOutcome],
              reachable: dict[str, str | None]) -> tuple[bool, int]:
    parent: ImageLock | None = None
    if spec.parent_id is not None:
        failed = outcomes.get(spec.parent_id)
        if failed is not None and failed.error is not None:
            kind = type(failed.error) if isinstance(failed.error, IndexUnreachableError) \
                else ConfigError
            raise kind(f"{spec.id}: its parent {spec.parent_id} could not be locked:"
                       f" {failed.error.message}", tip=failed.error.tip)
        parent_spec = matrix.by_id()[spec.parent_id]
        parent = read_lock(matrix, parent_spec)
        if parent is None:
            raise ConfigError(f"{spec.id}: its parent {spec.parent_id} has no lock",
                              tip=f"run `torchstack lock {spec.parent_id}` first")
    index = request.inputs.torch_index_for(spec)
    extra = request.inputs.pip_index_for(spec)
    urls = [index] if extra == index else [index, extra]
    for url in urls:
        if url not in reachable:
            reachable[url] = probe_index(url, request.inputs.ca_bundle)
        if reachable[url] is not None:
            raise _unreachable(spec, url, str(reachable[url]), index)
    wanted = lock_inputs(matrix, spec)
    previous = {} if request.upgrade else _previous(matrix, spec)
    resolved = _compile(uv, spec, parent, previous, request, index, extra if extra != index
                        else None)
    dists = _dists(resolved, spec, parent, request.inputs)
    mirrors = [redact_url(u) for u, stock in ((index, spec.torch_index), (extra, spec.pip_index))
               if u != stock]
    lock = ImageLock(
        image_id=spec.id, dists=dists, python=wanted.python, platform=wanted.platform,
        index=wanted.index, pins=wanted.pins, parent_sha256=wanted.parent_sha256,
        uv_version=uv.version, resolved_from=wanted.resolved_from,
        extra_index=wanted.extra_index, mirror=" ".join(dict.fromkeys(mirrors)) or None,
    )
    validate_lock(matrix, spec, lock)
    return write_lock(matrix, spec, lock), len(dists)


def _previous(matrix: Matrix, spec: ImageSpec) -> dict[str, str]:
    try:
        lock = read_lock(matrix, spec)
    except ConfigError:
        return {}  # a broken lock is resolved afresh and overwritten
    return {d.name: d.version for d in lock.dists} if lock else {}


def uv_command(uv: Uv, spec: ImageSpec, index: str, extra_index: str | None,
               upgrade_packages: tuple[str, ...]) -> list[str]:
    command = [str(uv.path), "pip", "compile", "--quiet", "--no-config", "--no-header",
               "--generate-hashes", "--format", "pylock.toml", "--python-version", spec.python,
               "--python-platform", PLATFORM, "--only-binary", ":all:",
               "--index-strategy", "first-index", "--index-url", extra_index or index]
    if extra_index:
        # uv asks --extra-index-url first: torch and what its index has come from there.
        command += ["--extra-index-url", index]
    for name in upgrade_packages:
        command += ["--upgrade-package", name]
    return [*command, "requirements.in", "-c", "constraints.txt", "-o", LOCK_NAME]


class UvWheel(TypedDict, total=False):
    """A wheel of a package in the pylock.toml uv writes (PEP 751)."""

    name: str
    url: Required[str]
    size: int
    hashes: dict[str, str]  # algorithm -> hex digest


class UvPackage(TypedDict, total=False):
    name: Required[str]
    version: Required[str]
    marker: str
    wheels: list[UvWheel]


class UvLock(TypedDict, total=False):
    """The part of uv's pylock.toml torchstack reads."""

    packages: list[UvPackage]


def _compile(uv: Uv, spec: ImageSpec, parent: ImageLock | None, previous: dict[str, str],
             request: LockRequest, index: str, extra_index: str | None) -> UvLock:
    inherited = [f"{d.name}=={d.version}" for d in parent.dists] if parent else []
    own = [*spec.torch_requirements, *spec.requirements]
    env = {k: v for k, v in request.environ.items()
           if not k.startswith("UV_") or k in UV_ENV_KEEP}
    if request.inputs.ca_bundle is not None:
        env["SSL_CERT_FILE"] = str(request.inputs.ca_bundle)
    with tempfile.TemporaryDirectory(prefix="torchstack-lock-") as tmp:
        folder = Path(tmp)
        (folder / "requirements.in").write_text("".join(f"{r}\n" for r in [*own, *inherited]))
        (folder / "constraints.txt").write_text("".join(f"{r}\n" for r in inherited))
        if previous:
            (folder / LOCK_NAME).write_text(_preferences(previous))
        command = uv_command(uv, spec, index, extra_index, request.upgrade_packages)
        run = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True,
                             check=False)
        if run.returncode != 0:
            raise _uv_error(spec, run.stderr, [*own, *inherited], parent, index, extra_index,
                            request.inputs)
        text = (folder / LOCK_NAME).read_text(encoding="utf-8")
    return cast(UvLock, tomllib.loads(text))  # uv writes PEP 751's layout


def _preferences(versions: Mapping[str, str]) -> str:
    """A pylock.toml with versions only: uv prefers them, and takes nothing else from it."""
    body = "".join(f'\n[[packages]]\nname = "{n}"\nversion = "{v}"\n'
                   for n, v in sorted(versions.items()))
    return f'lock-version = "1.0"\ncreated-by = "torchstack"\n{body}'


def _dists(resolved: UvLock, spec: ImageSpec, parent: ImageLock | None,
           inputs: BuildInputs) -> tuple[LockedDist, ...]:
    inherited = parent.by_name() if parent else {}
    dists: dict[str, LockedDist] = {}
    for raw in resolved.get("packages", []):
        name = normalize(raw["name"])
        if name in inherited:
            if inherited[name].version != raw["version"]:
                raise ConfigError(f"{spec.id}: uv changed {name} {inherited[name].version} of"
                                  f" the parent's lock to {raw['version']}")
            dists[name] = inherited[name]
            continue
        wheel = _best_wheel(raw.get("wheels") or [], spec.python)
        if wheel is None:
            found = ", ".join(_filename(w) for w in raw.get("wheels") or []) or "none"
            raise ConfigError(f"{spec.id}: {name} {raw['version']} has no wheel for {PLATFORM}"
                              f" Python {spec.python} (found: {found})",
                              tip="images install wheels only: pin a version that ships one")
        url = redact_url(wheel["url"])
        dists[name] = LockedDist(
            name=name, version=raw["version"],
            filename=_filename(wheel),
            sha256=wheel["hashes"]["sha256"], size=int(wheel["size"]), url=url,
            marker=raw.get("marker"))
    missing = sorted(set(inherited) - set(dists))
    if missing:
        raise ConfigError(f"{spec.id}: uv dropped the parent's {', '.join(missing)}")
    return tuple(dists[n] for n in sorted(dists))


def target_tags(python: str) -> dict[Tag, int]:
    """The wheel tags the target accepts, best first (as an installer on it would rank them)."""
    major, minor = (int(p) for p in python.split(".")[:2])
    # manylinux_2_28 down to manylinux1, each with its legacy alias, like an installer lists them.
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    platforms: list[str] = []
    for glibc in range(28, 4, -1):
        platforms.append(f"manylinux_2_{glibc}_x86_64")
        if glibc in legacy:
            platforms.append(f"{legacy[glibc]}_x86_64")
    interpreter = f"cp{major}{minor}"
    ordered = [*tags.cpython_tags((major, minor), [interpreter], platforms),
               *tags.compatible_tags((major, minor), interpreter, platforms)]
    ranks: dict[Tag, int] = {}
    for rank, tag in enumerate(ordered):
        ranks.setdefault(tag, rank)
    return ranks


def _best_wheel(wheels: list[UvWheel], python: str) -> UvWheel | None:
    """The one wheel the target installs: uv may list several that all fit (manylinux2014 and
    manylinux_2_28 builds of one version); the image keeps the one ranked first."""
    accepted = target_tags(python)
    ranked = []
    for wheel in wheels:
        try:
            wheel_tags = parse_wheel_filename(_filename(wheel))[3]
        except InvalidWheelFilename:
            continue
        ranks = [accepted[t] for t in wheel_tags if t in accepted]
        if ranks:
            ranked.append((min(ranks), _filename(wheel), wheel))
    return min(ranked, key=lambda r: (r[0], r[1]))[2] if ranked else None


def _filename(wheel: UvWheel) -> str:
    return str(wheel.get("name") or unquote(str(wheel.get("url", "?")).rsplit("/", 1)[-1]))


def _unreachable(spec: ImageSpec, url: str, why: str, torch_index: str) -> IndexUnreachableError:
    key, env = ((spec.cuda_tag, TORCH_INDEX_ENV) if url == torch_index and
                spec.index_kind == "pytorch" else ("pypi", PIP_INDEX_ENV))
    return IndexUnreachableError(
        f"{spec.id}: the index {redact_url(url)} cannot be reached ({why}); nothing was locked"
        " for this image",
        tip=f"point at a reachable mirror with `--index {key}=URL` (or {env}), or run"
            f" `torchstack lock {spec.id}` where {redact_url(url)} is reachable")


def _uv_error(spec: ImageSpec, stderr: str, requirements: list[str], parent: ImageLock | None,
              index: str, extra_index: str | None, inputs: BuildInputs) -> TorchstackError:
    text = inputs.redact(stderr)
    fetch = UNREACHABLE.search(text)
    if fetch:
        failed = fetch.group(1) or fetch.group(2) or index
        url = next((u for u in (index, extra_index) if u and failed.startswith(u)), failed)
        return _unreachable(spec, url, _last_cause(text), index)
    if "No solution found" in text:
        return _conflict(spec, text, requirements, parent)
    return ConfigError(f"{spec.id}: uv could not resolve the pins: {_paragraph(text)}",
                       tip=f"fix the pins in layers/{spec.layer}/layer.yaml")


def _conflict(spec: ImageSpec, text: str, requirements: list[str],
              parent: ImageLock | None) -> ConfigError:
    """One paragraph: the layer file, the pins uv's explanation names, and that explanation."""
    reason = _paragraph(text.split("cause:", 1)[-1]) if "cause:" in text else _paragraph(text)
    reason = reason.replace("you require", "the pins require")
    inherited = {d.name for d in parent.dists} if parent else set()
    mentioned = []
    for requirement in requirements:
        match = REQUIREMENT_NAME.match(requirement)
        name = normalize(match.group(0)) if match else requirement
        if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", normalize_text(reason)):
            mentioned.append(requirement + (f" (from {spec.parent_id}'s lock)"
                                            if name in inherited else ""))
    where = f"layers/{spec.layer}/layer.yaml"
    pins = f" ({', '.join(dict.fromkeys(mentioned))})" if mentioned else ""
    return ConfigError(
        f"{where}: the pins of {spec.id} cannot be satisfied together{pins}: {reason}",
        tip=f"change the conflicting pins in {where}"
            + (f" or in its parent's layer (then `torchstack lock {spec.parent_id}`)"
               if spec.parent_id else ""))


def normalize_text(text: str) -> str:
    """Package names in uv's prose as PEP 503 names, so `opencv_python` finds `opencv-python`."""
    return re.sub(r"[A-Za-z0-9][A-Za-z0-9._-]*", lambda m: normalize(m.group(0)), text)


def _paragraph(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines()]
    lines = [re.sub(r"^(error|cause|hint):\s*", "", line) for line in lines if line]
    return " ".join(lines)


def _last_cause(text: str) -> str:
    causes = re.findall(r"cause:\s*(.+)", text)
    return causes[-1].strip() if causes else _paragraph(text)[-200:]


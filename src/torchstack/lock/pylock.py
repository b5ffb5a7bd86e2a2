"""Each image's lock, `images/<id>/pylock.toml`: reading, writing, staleness and validation.

The file is PEP 751 as `uv pip compile --format pylock.toml` writes it, restricted to one wheel
per distribution, plus `[tool.torchstack]`: what it was resolved from. `resolved_from` is a
sha256 over those inputs (Python, platform, index, the layer's pins, the parent lock's sha256),
so staleness is a comparison with a fresh computation and needs no network. Resolving a lock
(running uv) lives in `lockresolve`.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from packaging.markers import InvalidMarker, Marker
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from torchstack.config.compat import COMPANIONS, CompatError, load_compat
from torchstack.config.inputs import redact_url
from torchstack.config.kinds import EXACT_PIN, normalize, text_problem, url_problem
from torchstack.config.located import read_config_text
from torchstack.config.model import ImageSpec, Matrix
from torchstack.errors import ConfigError
from torchstack.names import SHA256_HEX
from torchstack.workspace.files import ensure_inside, write_text
from torchstack.workspace.paths import shown

LOCK_NAME = "pylock.toml"
# The matrix has no architecture axis yet; manylinux_2_28 is what torch's own wheels need.
PLATFORM = "x86_64-manylinux_2_28"
TOOL_KEYS = ("image", "python", "platform", "index", "extra_index", "mirror", "pins",
             "parent_sha256", "uv_version", "resolved_from")
# PEP 508 names; a lock holds them PEP 503-normalised (lower case, runs of -_. as one -).
NAME = re.compile(r"[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]")
PYTHON = re.compile(r"[0-9]{1,2}\.[0-9]{1,3}")
PLATFORM_WORD = re.compile(r"[a-z0-9_]{1,40}-[a-z0-9_]{1,40}")
# A lock is data, not code: bounded, so that a hostile one cannot exhaust the machine.
MAX_LOCK_BYTES = 1 << 20  # the repository's largest lock is about 21 KiB
MAX_PACKAGES = 2000
MAX_WHEEL_BYTES = 1 << 40
HEADER = ("# Written by `torchstack lock` from matrix.yaml and layers/*/layer.yaml; do not edit.\n"
          "# Every distribution this image installs, its parent's included, one wheel each.\n")

LockStatus = Literal["fresh", "stale", "unlocked"]


@dataclass(frozen=True)
class LockedDist:
    name: str  # PEP 503-normalised
    version: str
    filename: str  # the one wheel's file name
    sha256: str
    size: int  # bytes of the wheel
    url: str = ""  # where the wheel was found (credentials removed)
    marker: str | None = None  # as the resolver wrote it; true on the lock's platform


@dataclass(frozen=True)
class LockInputs:
    """What a lock is resolved from; equal inputs give an equal `resolved_from`."""

    python: str
    platform: str
    index: str  # the image's index: where torch comes from
    extra_index: str | None  # where packages the index lacks come from (PyPI), if different
    pins: tuple[str, ...]  # the image's own layer pins, sorted
    parent_sha256: str | None

    @property
    def resolved_from(self) -> str:
        doc = {"python": self.python, "platform": self.platform, "index": self.index,
               "extra_index": self.extra_index, "pins": list(self.pins),
               "parent_sha256": self.parent_sha256}
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ImageLock:
    image_id: str
    dists: tuple[LockedDist, ...]  # sorted by name
    python: str
    platform: str
    index: str  # URL, credentials never written
    pins: tuple[str, ...]
    parent_sha256: str | None
    uv_version: str
    resolved_from: str  # sha256 of the inputs above (LockInputs.resolved_from)
    extra_index: str | None = None
    mirror: str | None = None  # the URL actually asked, when an --index override replaced one

    def by_name(self) -> dict[str, LockedDist]:
        return {d.name: d for d in self.dists}


def lock_path(matrix: Matrix, spec: ImageSpec) -> Path:
    return matrix.images_dir / spec.id / LOCK_NAME


def lock_inputs(matrix: Matrix, spec: ImageSpec) -> LockInputs:
    """The inputs as the matrix and the parent's lock file say now (no network)."""
    parent_sha256 = None
    if spec.parent_id is not None:
        parent_file = lock_path(matrix, matrix.by_id()[spec.parent_id])
        if parent_file.is_file():
            parent_sha256 = hashlib.sha256(parent_file.read_bytes()).hexdigest()
    return LockInputs(
        python=spec.python,
        platform=PLATFORM,
        index=redact_url(spec.torch_index),
        extra_index=redact_url(spec.pip_index) if spec.pip_index != spec.torch_index else None,
        pins=tuple(sorted((*spec.torch_requirements, *spec.requirements))),
        parent_sha256=parent_sha256,
    )


def lock_status(matrix: Matrix, spec: ImageSpec) -> LockStatus:
    lock = read_lock(matrix, spec)
    if lock is None:
        return "unlocked"
    return "fresh" if lock.resolved_from == lock_inputs(matrix, spec).resolved_from else "stale"


def stale_message(matrix: Matrix, spec: ImageSpec) -> str:
    return f"{shown(matrix.root, lock_path(matrix, spec))}: stale; run torchstack lock {spec.id}"


def checked_status(matrix: Matrix, spec: ImageSpec) -> LockStatus:
    """The lock's status, read once; a fresh lock is also validated (a wrong one raises)."""
    lock = read_lock(matrix, spec)
    if lock is None:
        return "unlocked"
    if lock.resolved_from != lock_inputs(matrix, spec).resolved_from:
        return "stale"
    validate_lock(matrix, spec, lock)
    return "fresh"


def check_locks(matrix: Matrix) -> tuple[list[str], list[str]]:
    """(stale lines, unlocked lines) for every image; a fresh lock that is wrong raises."""
    stale, unlocked = [], []
    for spec in matrix.images:
        status = checked_status(matrix, spec)
        if status == "unlocked":
            unlocked.append(f"unlocked: {spec.id} (index {redact_url(spec.torch_index)})")
        elif status == "stale":
            stale.append(stale_message(matrix, spec))
    return stale, unlocked


# --- reading ---------------------------------------------------------------------------------

def read_lock(matrix: Matrix, spec: ImageSpec) -> ImageLock | None:
    """The image's lock; None when it has none. A malformed file is a ConfigError."""
    path = lock_path(matrix, spec)
    if not (path.exists() or path.is_symlink()):
        return None
    where = shown(matrix.root, path)
    ensure_inside(matrix.root, path)  # a symlinked lock is refused, not read through
    text = read_config_text(path, where, MAX_LOCK_BYTES, "a pylock.toml file")
    return parse_lock(text, where, spec.id)


def parse_lock(text: str, where: str, image_id: str) -> ImageLock:
    """The strict model: every value that can reach a rendered file is checked here first."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_LOCK_BYTES:
        raise ConfigError(f"{where}: larger than the {MAX_LOCK_BYTES >> 20} MiB a lock may be",
                          tip=_relock(image_id))
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}", tip=_relock(image_id)) from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply for a lock file",
                          tip=_relock(image_id)) from None
    lines = text.splitlines()

    def fail(message: str, key: str, index: int | None = None) -> ConfigError:
        line = _line_of(lines, index)
        return ConfigError(f"{where}:{line}: {key}: {message}", tip=_relock(image_id))

    if doc.get("lock-version") != "1.0":
        raise fail(f"expected \"1.0\", found {_shown_value(doc.get('lock-version'))}",
                   "lock-version")
    tool_table = doc.get("tool", {})
    tool = tool_table.get("torchstack") if isinstance(tool_table, dict) else None
    if not isinstance(tool, dict):
        raise fail("missing; this lock was not written by `torchstack lock`", "tool.torchstack")
    if tool.get("image") != image_id:
        raise fail(f"names image {_shown_value(tool.get('image'))}, not {image_id!r}",
                   "tool.torchstack.image")
    for key in ("python", "platform", "index", "uv_version", "resolved_from"):
        if not isinstance(tool.get(key), str):
            raise fail("missing or not a string", f"tool.torchstack.{key}")
    for key, kind in (("python", PYTHON), ("platform", PLATFORM_WORD),
                      ("resolved_from", SHA256_HEX)):
        if not kind.fullmatch(tool[key]):
            raise fail(f"{_shown_value(tool[key])} is not a valid value here",
                       f"tool.torchstack.{key}")
    if _version_problem(tool["uv_version"]):
        raise fail(f"{_shown_value(tool['uv_version'])} is not a version",
                   "tool.torchstack.uv_version")
    indexes = []
    for key in ("index", "extra_index", "mirror"):
        value = tool.get(key)
        if value is None and key != "index":
            continue
        urls = value.split(" ") if isinstance(value, str) and key == "mirror" else [value]
        for url in urls:
            if not isinstance(url, str):
                raise fail("missing or not a string", f"tool.torchstack.{key}")
            problem = url_problem(url)
            if problem:
                raise fail(f"{_shown_value(url)} {problem}", f"tool.torchstack.{key}")
            indexes.append(url)
    pins = tool.get("pins")
    if not isinstance(pins, list) or not all(isinstance(p, str) for p in pins):
        raise fail("missing or not a list of strings", "tool.torchstack.pins")
    if len(pins) > MAX_PACKAGES:
        raise fail(f"more than {MAX_PACKAGES} pins", "tool.torchstack.pins")
    for pin in pins:
        if not EXACT_PIN.fullmatch(pin) or text_problem(pin):
            raise fail(f"{_shown_value(pin)} is not an exact pin (name==version)",
                       "tool.torchstack.pins")
    parent_sha256 = tool.get("parent_sha256")
    if parent_sha256 is not None and not (isinstance(parent_sha256, str)
                                          and SHA256_HEX.fullmatch(parent_sha256)):
        raise fail("not a sha256 (64 lower-case hex digits)", "tool.torchstack.parent_sha256")
    packages = doc.get("packages")
    if not isinstance(packages, list):
        raise fail("missing; a lock lists its distributions as [[packages]]", "packages")
    if len(packages) > MAX_PACKAGES:
        raise fail(f"{len(packages)} packages; a lock holds at most {MAX_PACKAGES}", "packages")
    origins = {_origin(url) for url in indexes}
    dists = [_dist(raw, i, fail, origins) for i, raw in enumerate(packages)]
    names = [d.name for d in dists]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise fail(f"{name} is listed twice", f"packages[{i}]", i)
    return ImageLock(
        image_id=image_id,
        dists=tuple(sorted(dists, key=lambda d: d.name)),
        python=tool["python"],
        platform=tool["platform"],
        index=tool["index"],
        pins=tuple(pins),
        parent_sha256=parent_sha256,
        uv_version=tool["uv_version"],
        resolved_from=tool["resolved_from"],
        extra_index=_optional_str(tool.get("extra_index")),
        mirror=_optional_str(tool.get("mirror")),
    )


def _dist(raw: object, i: int, fail: Callable[..., ConfigError],
          origins: set[str]) -> LockedDist:
    key = f"packages[{i}]"
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) \
            or not isinstance(raw.get("version"), str):
        raise fail("needs a name and a version", key, i)
    name, version = raw["name"], raw["version"]
    if not NAME.fullmatch(name) or normalize(name) != name:
        raise fail(f"the name {_shown_value(name)} is not a PEP 503-normalised distribution"
                   " name (lower case, digits, single '-')", key, i)
    key = f"{key} ({name})"
    problem = _version_problem(version)
    if problem:
        raise fail(f"the version {_shown_value(version)} {problem}", key, i)
    if "sdist" in raw or "archive" in raw or "vcs" in raw or "directory" in raw:
        raise fail("only wheels are locked; images never build from source", key, i)
    wheels = raw.get("wheels")
    if not isinstance(wheels, list) or len(wheels) != 1 or not isinstance(wheels[0], dict):
        raise fail("needs exactly one wheel (the one for the lock's platform)", key, i)
    wheel = wheels[0]
    url, size = wheel.get("url"), wheel.get("size")
    hashes = wheel.get("hashes")
    sha256 = hashes.get("sha256") if isinstance(hashes, dict) else None
    if not isinstance(sha256, str) or not SHA256_HEX.fullmatch(sha256):
        raise fail("the wheel has no sha256 (64 lower-case hex digits)", key, i)
    if not isinstance(url, str) or not url.endswith(".whl"):
        raise fail("the wheel has no .whl url", key, i)
    problem = url_problem(url)
    if problem is None and not url.startswith("https://") and _origin(url) not in origins:
        problem = "is neither https nor on the lock's index"
    if problem:
        raise fail(f"the wheel url {_shown_value(url)} {problem}", key, i)
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_WHEEL_BYTES:
        raise fail("the wheel has no size in bytes", key, i)
    from_url = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    filename = wheel.get("name", from_url)
    if filename != from_url:
        raise fail(f"the wheel name {_shown_value(filename)} is not the url's file"
                   f" {_shown_value(from_url)}", key, i)
    try:
        wheel_name, wheel_version, _, _ = parse_wheel_filename(filename)
    except (InvalidWheelFilename, InvalidVersion):
        raise fail(f"{_shown_value(filename)} is not a wheel file name", key, i) from None
    if wheel_name != name or wheel_version != Version(version):
        raise fail(f"the wheel {_shown_value(filename)} is not {name} {version}", key, i)
    marker = raw.get("marker")
    if marker is not None:
        if not isinstance(marker, str) or text_problem(marker) or len(marker) > 1000:
            raise fail("the marker is not one line of text", key, i)
        try:
            Marker(marker)
        except InvalidMarker as exc:
            raise fail(f"the marker {_shown_value(marker)} is not a PEP 508 marker ({exc})",
                       key, i) from None
    return LockedDist(name=name, version=version, filename=filename, sha256=sha256, size=size,
                      url=url, marker=marker)


def _version_problem(version: str) -> str | None:
    """None for a PEP 440 version written the way `packaging` writes it back."""
    try:
        parsed = Version(version)
    except InvalidVersion:
        return "is not a PEP 440 version"
    if str(parsed) != version:  # Version() strips whitespace, newlines included
        return f"is not written in its normal form ({parsed})"
    return None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _shown_value(value: object) -> str:
    """A value from the file for a message: repr (so a newline shows as \\n), cut short."""
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _line_of(lines: list[str], package_index: int | None) -> int:
    """1-based line of the n-th [[packages]] header (or of [tool.torchstack])."""
    wanted = "[[packages]]" if package_index is not None else "[tool.torchstack]"
    seen = -1
    for number, line in enumerate(lines, start=1):
        if line.strip() == wanted:
            seen += 1
            if package_index is None or seen == package_index:
                return number
    return 1


def _relock(image_id: str) -> str:
    return f"run `torchstack lock {image_id}` to write it again"


# --- writing ---------------------------------------------------------------------------------

def lock_text(lock: ImageLock) -> str:
    """The file's bytes: a fixed layout, sorted, no timestamps, so equal locks are equal files."""
    out = [HEADER, 'lock-version = "1.0"\n', f"requires-python = {_s('==' + lock.python + '.*')}\n",
           'created-by = "torchstack"\n']
    for dist in sorted(lock.dists, key=lambda d: d.name):
        out.append(f"\n[[packages]]\nname = {_s(dist.name)}\nversion = {_s(dist.version)}\n")
        if dist.marker:
            out.append(f"marker = {_s(dist.marker)}\n")
        out.append(f"wheels = [{{ name = {_s(dist.filename)}, url = {_s(dist.url)},"
                   f" size = {dist.size}, hashes = {{ sha256 = {_s(dist.sha256)} }} }}]\n")
    tool: dict[str, str | list[str] | None] = {
        "image": lock.image_id, "python": lock.python, "platform": lock.platform,
        "index": lock.index, "extra_index": lock.extra_index, "mirror": lock.mirror,
        "pins": list(lock.pins), "parent_sha256": lock.parent_sha256,
        "uv_version": lock.uv_version, "resolved_from": lock.resolved_from,
    }
    out.append("\n[tool.torchstack]\n")
    for key in TOOL_KEYS:
        value = tool[key]
        if value is None:
            continue
        if isinstance(value, list):
            items = "".join(f"  {_s(v)},\n" for v in value)
            out.append(f"{key} = [\n{items}]\n")
        else:
            out.append(f"{key} = {_s(value)}\n")
    return "".join(out)


def _s(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's for these characters)."""
    return json.dumps(value, ensure_ascii=False)


def write_lock(matrix: Matrix, spec: ImageSpec, lock: ImageLock) -> bool:
    """Write the lock; False when the file already held exactly these bytes."""
    path = lock_path(matrix, spec)
    text = lock_text(lock)
    # What is written must read back through the strict model: the writer is checked too.
    parse_lock(text, shown(matrix.root, path), spec.id)
    ensure_inside(matrix.root, path)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    write_text(matrix.root, path, text)
    return True


# --- validation ------------------------------------------------------------------------------

def torch_wheel_version(spec: ImageSpec) -> str:
    """torch's version as its wheel names it: no local tag on PyPI, +cuXYZ on the PyTorch index."""
    return spec.torch if spec.index_kind == "pypi" else f"{spec.torch}+{spec.cuda_tag}"


def validate_lock(matrix: Matrix, spec: ImageSpec, lock: ImageLock) -> None:
    """Refuse a lock that cannot be the image's: wrong target, torch, pairing or parent set."""
    where = shown(matrix.root, lock_path(matrix, spec))
    tip = _relock(spec.id)
    if (lock.python, lock.platform) != (spec.python, PLATFORM):
        raise ConfigError(f"{where}: resolved for Python {lock.python} on {lock.platform}, the"
                          f" image needs Python {spec.python} on {PLATFORM}", tip=tip)
    found = lock.by_name()
    torch = found.get("torch")
    expected = torch_wheel_version(spec)
    installs_torch = any("torch" in matrix.layers[name].torch_packages for name in spec.layers)
    if (torch is not None or installs_torch) and (torch is None or torch.version != expected):
        have = torch.version if torch else "none"
        raise ConfigError(f"{where}: torch {have} is locked; the image is torch {expected}",
                          tip=tip)
    public_torch = torch.version.split("+")[0] if torch else spec.torch
    for package in COMPANIONS:
        dist = found.get(package)
        if dist is None or torch is None:
            continue
        try:
            paired = load_compat().paired_version(public_torch, package)
        except CompatError as exc:
            raise ConfigError(f"{where}: {package} {dist.version} is locked, but {exc}",
                              tip=tip) from None
        if dist.version.split("+")[0] != paired:
            raise ConfigError(
                f"{where}: {package} {dist.version} is locked with torch {torch.version}, but"
                f" compat data pairs torch {public_torch} with {package} {paired}",
                tip=f"fix the pin in layers/ (its version follows torch) and {tip}")
    if spec.parent_id is not None:
        parent = read_lock(matrix, matrix.by_id()[spec.parent_id])
        if parent is not None:
            changed = [f"{d.name} {d.version} (parent) vs "
                       + (f"{found[d.name].version}" if d.name in found else "missing")
                       for d in parent.dists
                       if d.name not in found or (found[d.name].version, found[d.name].sha256)
                       != (d.version, d.sha256)]
            if changed:
                raise ConfigError(f"{where}: a child lock must keep its parent's packages as"
                                  f" they are: {'; '.join(changed)}", tip=tip)

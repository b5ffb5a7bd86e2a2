"""Per-image manifests in the run directory: what is inside, and a CycloneDX SBOM.

`<id>.manifest.json`: Python packages and Debian packages (dpkg), image ID and digests, size,
input hash, the checks summary and the tags given. `<id>.cdx.json`: the same packages as a
CycloneDX 1.5 SBOM (cyclonedx-python-lib, the library under cyclonedx-bom).

The Python packages come from the image's lock (with each wheel's sha256), after a cross-check
against what the image's Python lists (importlib.metadata): any extra, missing or other version
refuses the promotion. Debian packages are not locked; their exact versions are read from dpkg.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Required, TypedDict

from cyclonedx.model import HashAlgorithm, HashType
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot5
from packageurl import PackageURL
from packaging.version import InvalidVersion, Version

from torchstack.backend.docker import DockerBackend
from torchstack.config.kinds import normalize
from torchstack.errors import PromoteError
from torchstack.lock.pylock import ImageLock
from torchstack.workspace.files import write_text

# One container run prints both lists; a marker line separates them. The Python list comes
# from the interpreter's own metadata, so an image without pip is listed all the same.
INVENTORY_SCRIPT = (
    "python -c 'import json, importlib.metadata as m; print(json.dumps(sorted("
    "({\"name\": d.metadata[\"Name\"], \"version\": d.version} for d in m.distributions()),"
    " key=lambda p: p[\"name\"].lower())))'; echo '--dpkg--';"
    " dpkg-query -W -f '${Package}\\t${Version}\\t${Architecture}\\n'"
)


class PythonPackage(TypedDict, total=False):
    name: Required[str]
    version: Required[str]
    wheel: str  # from the lock
    sha256: str  # from the lock


class DebianPackage(TypedDict):
    name: str
    version: str
    architecture: str


class LockNote(TypedDict):
    file: str  # the lock file, relative to the project
    resolved_from: str


class Packages(TypedDict, total=False):
    """What an image holds: its Python distributions and Debian packages."""

    python: Required[list[PythonPackage]]
    debian: Required[list[DebianPackage]]
    lock: LockNote  # when the Python part comes from the lock


def inventory(backend: DockerBackend, docker_id: str) -> Packages:
    run = backend.run_container(docker_id, ["sh", "-c", INVENTORY_SCRIPT], mounts={}, env={},
                                shm_size="64m", gpus=False, timeout_s=120)
    pip_part, _, dpkg_part = run.stdout.partition("--dpkg--")
    try:
        listed: object = json.loads(pip_part)
    except ValueError:
        listed = None
    if not isinstance(listed, list):
        raise PromoteError(f"cannot list the Python packages of {docker_id[:19]}:"
                           f" {run.stderr.strip()[-300:]}")
    python_packages: list[PythonPackage] = [
        {"name": p["name"], "version": p["version"]} for p in listed
        if isinstance(p, dict) and isinstance(p.get("name"), str)
        and isinstance(p.get("version"), str)]
    debian_packages: list[DebianPackage] = []
    for line in dpkg_part.strip().splitlines():
        name, version, arch = [*line.split("\t"), "", ""][:3]
        debian_packages.append({"name": name, "version": version, "architecture": arch})
    return {"python": python_packages, "debian": debian_packages}


def lock_differences(lock: ImageLock, installed: list[PythonPackage]) -> list[str]:
    """What pip lists inside the image against the lock; empty when they are the same set."""
    locked = {d.name: d.version for d in lock.dists}
    found = {normalize(str(p["name"])): str(p["version"]) for p in installed}
    extra = [f"{n} {found[n]} is installed but not locked"
             for n in sorted(set(found) - set(locked))]
    missing = [f"{n} {locked[n]} is locked but not installed"
               for n in sorted(set(locked) - set(found))]
    other = [f"{n} {found[n]} is installed, the lock has {locked[n]}"
             for n in sorted(set(found) & set(locked)) if not _same_version(found[n], locked[n])]
    return extra + missing + other


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)  # "0.5" is "0.5.0"
    except InvalidVersion:
        return a == b


def locked_packages(image_id: str, lock_file: str, lock: ImageLock,
                    packages: Packages) -> Packages:
    """The inventory with its Python part from the lock; PromoteError when they differ."""
    differences = lock_differences(lock, packages["python"])
    if differences:
        raise PromoteError(
            f"{image_id}: the Python packages installed differ from {lock_file}"
            f" ({len(differences)}): " + "; ".join(differences),
            tip="the image was not built from this lock; rebuild it (`torchstack build`) and"
                " check it again before promoting")
    python: list[PythonPackage] = [
        {"name": d.name, "version": d.version, "wheel": d.filename, "sha256": d.sha256}
        for d in lock.dists]
    return {**packages, "python": python,
            "lock": {"file": lock_file, "resolved_from": lock.resolved_from}}


def cyclonedx_sbom(image_name: str, version: str, packages: Packages, os_name: str,
                   base_image: str) -> str:
    bom = Bom()
    root = Component(name=image_name, version=version, type=ComponentType.CONTAINER,
                     bom_ref=f"container:{image_name}")
    bom.metadata.component = root
    components = []
    for package in packages["python"]:
        purl = PackageURL("pypi", None, normalize(package["name"]), package["version"])
        hashes = [HashType(alg=HashAlgorithm.SHA_256, content=package["sha256"])] \
            if package.get("sha256") else []
        components.append(Component(name=package["name"], version=package["version"],
                                    type=ComponentType.LIBRARY, purl=purl, bom_ref=str(purl),
                                    hashes=hashes))
    # The purl namespace is the distribution ("debian", "ubuntu"), named by the base image.
    distribution = base_image.rsplit("/", 1)[-1].split(":")[0].split("@")[0]
    for deb in packages["debian"]:
        purl = PackageURL("deb", distribution, deb["name"], deb["version"],
                          qualifiers={"arch": deb["architecture"], "distro": os_name})
        components.append(Component(name=deb["name"], version=deb["version"],
                                    type=ComponentType.LIBRARY, purl=purl, bom_ref=str(purl)))
    for component in components:
        bom.components.add(component)
    bom.register_dependency(root, components)
    text: str = JsonV1Dot5(bom).output_as_string(indent=2)
    return text


def write_manifest(folder: Path, image_id: str, record: dict[str, object], packages: Packages,
                   os_name: str, base_image: str) -> list[Path]:
    manifest = {**record, "packages": packages}
    paths = [folder / f"{image_id}.manifest.json", folder / f"{image_id}.cdx.json"]
    write_text(folder.parent, paths[0], json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    write_text(folder.parent, paths[1],
               cyclonedx_sbom(image_id, str(record.get("release_tag") or image_id), packages,
                              os_name, base_image) + "\n")
    return paths

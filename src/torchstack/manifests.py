"""Per-image manifests in the run directory: what is inside, and a CycloneDX SBOM.

`<id>.manifest.json`: Python packages (pip list) and Debian packages (dpkg), image ID and
digests, size, input hash, the checks summary and the tags given. `<id>.cdx.json`: the same
packages as a CycloneDX 1.5 SBOM (cyclonedx-python-lib, the library under cyclonedx-bom).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot5
from packageurl import PackageURL

from torchstack.docker_backend import DockerBackend
from torchstack.errors import PromoteError

# One container run prints both lists; a marker line separates them.
INVENTORY_SCRIPT = (
    "python -m pip list --format json --disable-pip-version-check; echo '--dpkg--';"
    " dpkg-query -W -f '${Package}\\t${Version}\\t${Architecture}\\n'"
)


def inventory(backend: DockerBackend, docker_id: str) -> dict[str, Any]:
    run = backend.run_container(docker_id, ["sh", "-c", INVENTORY_SCRIPT], mounts={}, env={},
                                shm_size="64m", gpus=False, timeout_s=120)
    pip_part, _, dpkg_part = run.stdout.partition("--dpkg--")
    try:
        python_packages = json.loads(pip_part)
    except ValueError:
        raise PromoteError(f"cannot list the Python packages of {docker_id[:19]}:"
                           f" {run.stderr.strip()[-300:]}") from None
    debian_packages = []
    for line in dpkg_part.strip().splitlines():
        name, version, arch = [*line.split("\t"), "", ""][:3]
        debian_packages.append({"name": name, "version": version, "architecture": arch})
    return {"python": python_packages, "debian": debian_packages}


def cyclonedx_sbom(image_name: str, version: str, packages: dict[str, Any], os_name: str,
                   base_image: str) -> str:
    bom = Bom()
    root = Component(name=image_name, version=version, type=ComponentType.CONTAINER,
                     bom_ref=f"container:{image_name}")
    bom.metadata.component = root
    components = []
    for package in packages["python"]:
        purl = PackageURL("pypi", None, package["name"].lower(), package["version"])
        components.append(Component(name=package["name"], version=package["version"],
                                    type=ComponentType.LIBRARY, purl=purl, bom_ref=str(purl)))
    # The purl namespace is the distribution ("debian", "ubuntu"), named by the base image.
    distribution = base_image.rsplit("/", 1)[-1].split(":")[0].split("@")[0]
    for package in packages["debian"]:
        purl = PackageURL("deb", distribution, package["name"], package["version"],
                          qualifiers={"arch": package["architecture"], "distro": os_name})
        components.append(Component(name=package["name"], version=package["version"],
                                    type=ComponentType.LIBRARY, purl=purl, bom_ref=str(purl)))
    for component in components:
        bom.components.add(component)
    bom.register_dependency(root, components)
    text: str = JsonV1Dot5(bom).output_as_string(indent=2)
    return text


def write_manifest(folder: Path, image_id: str, record: dict[str, Any], packages: dict[str, Any],
                   os_name: str, base_image: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {**record, "packages": packages}
    paths = [folder / f"{image_id}.manifest.json", folder / f"{image_id}.cdx.json"]
    paths[0].write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    paths[1].write_text(cyclonedx_sbom(image_id, str(record.get("release_tag") or image_id),
                                       packages, os_name, base_image) + "\n")
    return paths

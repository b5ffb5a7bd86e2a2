"""Write an image's zstd variant to a registry: the field's own tools, run as subprocesses.

Only two sources write zstd layers (a registry-to-registry copy keeps gzip blobs as they are):
- BuildKit's image exporter (`docker buildx build`, BuildKit >= 0.10) with
  `compression=zstd,force-compression=true,oci-mediatypes=true`. buildx builders cannot see the
  Engine's images, so it rebuilds `FROM` the gzip variant already in the registry, by digest.
- skopeo from the Engine (`docker-daemon:`), which compresses the uncompressed layers it reads.
buildx is preferred where its plugin answers; with neither, DockerUnavailableError (exit 3)
says what to install. What either wrote is proven by registry.prove_content before use.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from torchstack.backend.credentials import ANONYMOUS, Credentials
from torchstack.backend.registry import is_loopback, split_reference
from torchstack.config import kinds
from torchstack.errors import DockerUnavailableError, PromoteError

Tool = Literal["buildx", "skopeo"]
# skopeo took 261 s to write the 7.5 GB base from the Engine on 2 cores; allow for bigger ones.
PUBLISH_TIMEOUT_S = 3 * 3600
INSTALL_TIP = ("install skopeo (`apt-get install skopeo`; scripts/start-services.sh does) or"
               " Docker's buildx plugin (BuildKit >= 0.10), or push gzip only"
               " (--compression gzip)")


@dataclass(frozen=True)
class ZstdPublisher:
    tool: Tool
    executable: str  # the docker CLI that has buildx, or skopeo

    def argv(self, docker_id: str, ref: str, source: str | None, folder: Path) -> list[str]:
        """The command that writes `docker_id` to `ref` with zstd layers; `source` is the gzip
        variant in the registry (`repo@sha256:…`), which buildx builds from. It leaves the
        manifest digest in folder/digest (skopeo) or folder/metadata.json (buildx)."""
        host = split_reference(ref)[0]
        if self.tool == "buildx":
            if source is None:
                raise PromoteError(f"{ref}: buildx writes zstd from an image in the registry,"
                                   " and no gzip variant was pushed first")
            output = ("type=image,name=" + ref + ",push=true,compression=zstd,"
                      "force-compression=true,oci-mediatypes=true"
                      + (",registry.insecure=true" if is_loopback(host) else ""))
            return [self.executable, "buildx", "build", "--provenance=false", "--sbom=false",
                    "--file", str(folder / "Dockerfile"), "--output", output,
                    "--metadata-file", str(folder / "metadata.json"), str(folder)]
        argv = [self.executable, "copy", "--dest-compress-format", "zstd",
                "--digestfile", str(folder / "digest")]
        if is_loopback(host):
            argv.append("--dest-tls-verify=false")  # loopback registries speak plain HTTP
        if (folder / "auth.json").exists():
            argv += ["--dest-authfile", str(folder / "auth.json")]
        return [*argv, f"docker-daemon:{docker_id}", f"docker://{ref}"]

    def publish(self, docker_id: str, ref: str, source: str | None,
                credentials: Credentials = ANONYMOUS) -> str:
        """Write the variant; returns the manifest digest the tool reports."""
        with tempfile.TemporaryDirectory(prefix="torchstack-zstd-") as temp:
            folder = Path(temp)
            if self.tool == "buildx":
                (folder / "Dockerfile").write_text(f"FROM {source}\n", encoding="utf-8")
            else:
                _write_authfile(folder / "auth.json", split_reference(ref)[0], credentials)
            argv = self.argv(docker_id, ref, source, folder)
            try:
                done = subprocess.run(argv, capture_output=True, text=True, check=False,
                                      timeout=PUBLISH_TIMEOUT_S, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                raise PromoteError(f"{self.tool} did not finish writing {ref} in"
                                   f" {PUBLISH_TIMEOUT_S} s") from None
            if done.returncode != 0:
                detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                raise PromoteError(f"{self.tool} could not write {ref} with zstd layers"
                                   f" (exit {done.returncode}): {' | '.join(detail)}")
            return _reported_digest(self.tool, folder, ref)


def _reported_digest(tool: Tool, folder: Path, ref: str) -> str:
    try:
        if tool == "buildx":
            metadata = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
            digest = metadata.get("containerimage.digest") if isinstance(metadata, dict) else None
        else:
            digest = (folder / "digest").read_text(encoding="utf-8").strip()
    except (OSError, ValueError):
        digest = None
    if not isinstance(digest, str) or not kinds.DIGEST.fullmatch(digest):
        raise PromoteError(f"{tool} wrote {ref} but reported no manifest digest")
    return digest


def _write_authfile(path: Path, host: str, credentials: Credentials) -> None:
    """The registry login for skopeo, in a private file, never in argv."""
    token = credentials.basic_token()
    if token is None:
        return
    path.touch(mode=0o600)
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}), encoding="utf-8")


def find_zstd_publisher(gzip_first: bool,
                        which: Callable[[str], str | None] = shutil.which,
                        run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
                        ) -> ZstdPublisher:
    """buildx where `docker buildx version` answers and a gzip variant is pushed first
    (`gzip_first`: buildx builds FROM it, as its builders cannot read the Engine's images),
    else skopeo; exit 3 with neither."""
    docker = which("docker")
    if docker and gzip_first:
        try:
            answer = run([docker, "buildx", "version"], capture_output=True, text=True,
                         check=False, timeout=30)
            if answer.returncode == 0:
                return ZstdPublisher("buildx", docker)
        except (OSError, subprocess.TimeoutExpired):
            pass
    skopeo = which("skopeo")
    if skopeo:
        return ZstdPublisher("skopeo", skopeo)
    if not gzip_first:
        raise DockerUnavailableError(
            "pushing zstd layers alone needs skopeo, which writes them from the Engine (buildx"
            " builds from a gzip variant in the registry, and zstd alone pushes none)",
            tip="install skopeo (`apt-get install skopeo`), or publish both forms"
                " (--compression both)")
    raise DockerUnavailableError(
        "pushing zstd layers needs docker buildx or skopeo, and neither is installed"
        " (docker push writes gzip only)", tip=INSTALL_TIP)

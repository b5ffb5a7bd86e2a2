"""The only module that runs BuildKit: through `docker buildx build`, or the Engine's built-in
BuildKit (`DOCKER_BUILDKIT=1 docker build`) with a docker CLI that still has it.

Which CLI is used is found by probing what each candidate can do (TORCHSTACK_DOCKER_CLI first),
and it is pointed at the same Engine as the SDK through DOCKER_HOST. Images are built untagged;
the image ID comes from --iidfile (buildx: --metadata-file), never from log text. Secrets reach
BuildKit by file (the CA bundle, where it already lies) or by environment variable (index
URLs), so nothing secret is written to disk; on Ctrl-C or SIGTERM the CLI is stopped, which
cancels the build, and nothing was tagged.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from torchstack.errors import DockerUnavailableError
from torchstack.names import SHA256_DIGEST

CLI_ENV = "TORCHSTACK_DOCKER_CLI"
DEFAULT_HOST = "unix:///var/run/docker.sock"
# The docker.io package's CLI, which keeps the Engine's built-in BuildKit, when the first
# `docker` on PATH is a newer client without buildx.
FALLBACK_CLIS = ("/usr/bin/docker", "/usr/local/bin/docker")
PROBE_TIMEOUT_S = 20
NO_BUILDKIT_TIP = (
    "install the buildx plugin (`apt-get install docker-buildx` or docker-buildx-plugin from"
    " Docker's repository), or a docker CLI with the built-in BuildKit (Debian's docker.io"
    f" package); or point {CLI_ENV} at one"
)
Mode = Literal["buildx", "builtin"]
ERROR_STARTS = ("ERROR:", "error:", "executor failed running")


@dataclass(frozen=True)
class Secret:
    """One BuildKit secret: from a file, or from an environment variable of the CLI only."""

    id: str
    src: Path | None = None
    value: str | None = None

    @property
    def env_name(self) -> str:
        return "TORCHSTACK_SECRET_" + self.id.upper().replace("-", "_")


@dataclass(frozen=True)
class BuildRequest:
    context: Path
    build_args: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[Secret, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildResult:
    image_id: str | None  # sha256:... when the build succeeded
    error: str | None  # BuildKit's error line when it failed


@dataclass(frozen=True)
class BuildkitCli:
    path: str
    mode: Mode
    docker_host: str
    # The environment it was found in (Settings.environ), which its builds start from: PATH,
    # proxies, docker config. It may hold credentials, so it is neither shown nor compared.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def describe(self) -> str:
        how = "docker buildx build" if self.mode == "buildx" else "DOCKER_BUILDKIT=1 docker build"
        return f"{how} ({self.path})"

    def command(self, request: BuildRequest, iidfile: Path, metadata: Path) -> list[str]:
        args = [self.path, *(["buildx", "build", "--load", "--metadata-file", str(metadata)]
                             if self.mode == "buildx" else ["build"]),
                "--progress=plain", "--iidfile", str(iidfile)]
        for name, value in sorted(request.build_args.items()):
            args += ["--build-arg", f"{name}={value}"]
        for secret in request.secrets:
            source = f"src={secret.src}" if secret.src else f"env={secret.env_name}"
            args += ["--secret", f"id={secret.id},{source}"]
        for name, value in sorted(request.labels.items()):
            args += ["--label", f"{name}={value}"]
        return [*args, str(request.context)]

    def environment(self, request: BuildRequest, base: Mapping[str, str]) -> dict[str, str]:
        env = {**base, "DOCKER_HOST": self.docker_host, "DOCKER_BUILDKIT": "1"}
        env |= {s.env_name: s.value for s in request.secrets if s.value is not None}
        return env

    def build(self, request: BuildRequest, on_line: Callable[[str], None]) -> BuildResult:
        with tempfile.TemporaryDirectory(prefix="torchstack-build-") as scratch:
            iidfile, metadata = Path(scratch, "iid"), Path(scratch, "metadata.json")
            process = subprocess.Popen(
                self.command(request, iidfile, metadata), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                env=self.environment(request, self.environ), start_new_session=True)
            error = None
            try:
                assert process.stdout is not None
                for raw in process.stdout:
                    line = raw.rstrip("\n")
                    # buildx: "ERROR: failed to solve: ..."; the built-in BuildKit of a
                    # docker 20.10 CLI ends with a bare "executor failed running [...]: ...".
                    if line.startswith(ERROR_STARTS) or "failed to solve" in line:
                        error = line.split("ERROR:", 1)[-1].strip()
                    on_line(line)
                code = process.wait()
            except BaseException:
                _stop(process)  # the client going away cancels the build in BuildKit
                raise
            image_id = _image_id(iidfile, metadata) if code == 0 else None
        if image_id is None:
            return BuildResult(None, error or f"the build exited with status {code}")
        return BuildResult(image_id, None)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _image_id(iidfile: Path, metadata: Path) -> str | None:
    """The built image's ID: buildx's metadata names the config digest; else the iidfile."""
    if metadata.is_file():
        data = json.loads(metadata.read_text() or "{}")
        digest = data.get("containerimage.config.digest")
        if isinstance(digest, str) and SHA256_DIGEST.fullmatch(digest):
            return digest
    text = iidfile.read_text().strip() if iidfile.is_file() else ""
    return text if SHA256_DIGEST.fullmatch(text) else None


def probe(path: str, env: Mapping[str, str]) -> Mode | None:
    """What BuildKit front end a CLI offers: buildx, the built-in one, or none."""
    def answers(*args: str, **extra: str) -> str | None:
        try:
            done = subprocess.run([path, *args], capture_output=True, text=True,
                                  timeout=PROBE_TIMEOUT_S, env={**env, **extra}, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout + done.stderr if done.returncode == 0 else None

    if answers("buildx", "version") is not None:
        return "buildx"
    # A client without buildx that has dropped its built-in BuildKit fails this with
    # "BuildKit is enabled but the buildx component is missing or broken".
    help_text = answers("build", "--help", DOCKER_BUILDKIT="1")
    return "builtin" if help_text is not None and "--secret" in help_text else None


def find_cli(environ: Mapping[str, str]) -> BuildkitCli:
    """The first candidate CLI that can drive BuildKit; exit 3 (no engine) when none can."""
    docker_host = environ.get("DOCKER_HOST") or DEFAULT_HOST
    override = environ.get(CLI_ENV)
    on_path = shutil.which("docker", path=environ.get("PATH"))  # the PATH it was given
    candidates = [override] if override else [c for c in (on_path, *FALLBACK_CLIS) if c]
    tried = []
    for candidate in dict.fromkeys(candidates):
        if not (override or os.access(candidate, os.X_OK)):
            continue
        mode = probe(candidate, {**environ, "DOCKER_HOST": docker_host})
        if mode is not None:
            return BuildkitCli(candidate, mode, docker_host, environ)
        tried.append(candidate)
    where = f"{CLI_ENV}={override}" if override else ", ".join(tried) or "no docker CLI on PATH"
    raise DockerUnavailableError(f"no docker CLI here can build with BuildKit (tried {where})",
                                 tip=NO_BUILDKIT_TIP)

"""What a build receives besides its rendered context: CA bundle, index URLs, proxies.

None of these change an image's input hash (a mirror does not change the image), and none may
reach the shipped image: the CA bundle and index URL overrides become BuildKit secrets
(build.secrets_for), and proxies BuildKit's predefined proxy args, which `docker history`
leaves out.
"""

from __future__ import annotations

import base64
import re
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from torchstack.config import kinds
from torchstack.config.located import read_config_text
from torchstack.config.model import ImageSpec
from torchstack.errors import ConfigError

CA_ENV = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
# BuildKit's predefined proxy args: usable in every RUN, left out of `docker history`.
PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "FTP_PROXY", "ALL_PROXY")
PIP_INDEX_ENV = "TORCHSTACK_PIP_INDEX_URL"
TORCH_INDEX_ENV = "TORCHSTACK_TORCH_INDEX_URL"
INDEX_KEY = re.compile(r"^(pypi|pytorch|cu\d+)$")
PROBE_TIMEOUT_S = 10.0
# A CA bundle is a few hundred KiB (Debian's ca-certificates.crt: ~220 KiB); larger is a mistake.
CA_MAX_BYTES = 16 << 20
# An index given at build time may also be a local mirror folder (file://), unlike matrix.yaml's.
OVERRIDE_INDEX_SCHEMES = ("http", "https", "file")
MIRROR_TIP = ("point at a reachable mirror with `--index {key}=URL` or {env}"
              " (may contain {{cuda_tag}}), or build another CUDA variant")


@dataclass(frozen=True)
class BuildInputs:
    ca_bundle: Path | None = None
    pip_index: str | None = None  # replaces the matrix's PyPI index (and PyPI torch wheels)
    torch_indexes: Mapping[str, str] = field(default_factory=dict)  # cu126 / pytorch -> URL
    proxies: Mapping[str, str] = field(default_factory=dict)

    def pip_index_for(self, spec: ImageSpec) -> str:
        return self.pip_index or spec.pip_index

    def torch_index_for(self, spec: ImageSpec) -> str:
        if spec.cuda_tag in self.torch_indexes:
            return self.torch_indexes[spec.cuda_tag].format(cuda_tag=spec.cuda_tag)
        if spec.index_kind == "pytorch" and "pytorch" in self.torch_indexes:
            return self.torch_indexes["pytorch"].format(cuda_tag=spec.cuda_tag)
        return self.pip_index if spec.index_kind == "pypi" and self.pip_index else spec.torch_index

    def indexes_to_probe(self, spec: ImageSpec) -> list[str]:
        """Index URLs this image installs from that are not the matrix's stock PyPI index."""
        urls = []
        if spec.torch_requirements:
            torch_index = self.torch_index_for(spec)
            if spec.index_kind == "pytorch" or torch_index != spec.torch_index:
                urls.append(torch_index)
        if spec.requirements and self.pip_index:
            urls.append(self.pip_index)
        return list(dict.fromkeys(urls))

    def secrets(self) -> list[str]:
        """Credentials (user:password, each part) in index and proxy URLs: never shown or logged.

        pip masks the password but prints the user, which is often a token: both are hidden.
        """
        urls = [self.pip_index or "", *self.torch_indexes.values(), *self.proxies.values()]
        found: set[str] = set()
        for url in urls:
            userinfo = urlsplit(url).netloc.rpartition("@")[0]
            if userinfo:
                found |= {userinfo, *(part for part in userinfo.split(":", 1) if len(part) > 2)}
        return sorted(found, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text


def resolve_inputs(ca_option: Path | None, index_options: list[str],
                   environ: Mapping[str, str]) -> BuildInputs:
    """Options win over the environment; a file or URL that is wrong is a ConfigError."""
    if ca_option is not None and not ca_option.is_file():
        raise ConfigError(f"--ca-bundle {ca_option}: no such file",
                          tip="pass a PEM file, e.g. /etc/ssl/certs/ca-certificates.crt")
    if ca_option is not None:
        ca_bundle: Path | None = _pem(ca_option, "--ca-bundle")
    else:
        found = next(((k, Path(environ[k])) for k in CA_ENV
                      if environ.get(k) and Path(environ[k]).is_file()), None)
        ca_bundle = _pem(found[1], found[0]) if found else None
    indexes: dict[str, str] = {}
    if environ.get(PIP_INDEX_ENV):
        indexes["pypi"] = _url(environ[PIP_INDEX_ENV], PIP_INDEX_ENV, torch=False)
    if environ.get(TORCH_INDEX_ENV):
        indexes["pytorch"] = _url(environ[TORCH_INDEX_ENV], TORCH_INDEX_ENV, torch=True)
    for option in index_options:
        key, sep, url = option.partition("=")
        if not sep or not INDEX_KEY.fullmatch(key):
            raise ConfigError(f"--index {option!r}: expected KEY=URL with KEY pypi, pytorch or a"
                              " CUDA tag such as cu126",
                              tip="e.g. --index cu126=https://mirror/whl/cu126")
        indexes[key] = _url(url, f"--index {key}", torch=key != "pypi")
    proxies = {name: environ[name] for upper in PROXY_ENV
               for name in (upper, upper.lower()) if environ.get(name)}
    pip_index = indexes.pop("pypi", None)
    return BuildInputs(ca_bundle, pip_index, indexes, proxies)


def _url(url: str, where: str, *, torch: bool) -> str:
    """An index URL; a torch index may name its variant as {cuda_tag}, nothing else."""
    allowed = {"cuda_tag"} if torch else set()
    problem = kinds.placeholder_problem(url, allowed)
    if problem is None:
        filled = url.format(cuda_tag="cu128") if torch else url
        problem = kinds.url_problem(filled, OVERRIDE_INDEX_SCHEMES)
    if problem:
        tip = ("e.g. https://mirror.example/whl/{cuda_tag}" if torch
               else "e.g. https://mirror.example/simple")
        raise ConfigError(f"{where}: {redact_url(url)!r} is not a usable index URL: it {problem}",
                          tip=tip)
    return url.rstrip("/")


def _pem(path: Path, where: str) -> Path:
    """A CA bundle that OpenSSL reads as PEM certificates (a DER file or a key is refused)."""
    text = read_config_text(path, f"{where} {path}", limit=CA_MAX_BYTES, kind="a PEM file")
    tip = ("pass the PEM bundle your proxy's CA is in, e.g. /etc/ssl/certs/ca-certificates.crt;"
           " convert DER with `openssl x509 -inform der -in ca.der -out ca.pem`")
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ConfigError(f"{where} {path}: not a PEM CA bundle (no BEGIN CERTIFICATE block)",
                          tip=tip)
    try:
        ssl.create_default_context().load_verify_locations(cadata=text)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"{where} {path}: not a PEM CA bundle OpenSSL can read"
                          f" ({getattr(exc, 'reason', None) or exc})", tip=tip) from None
    return path


def probe_index(url: str, ca_bundle: Path | None, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """GET <index>/torch/ from the host; None when it answers, else why it does not."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return None if Path(parts.path).is_dir() else f"{parts.path} is not a folder"
    userinfo, _, host = parts.netloc.rpartition("@")
    request = urllib.request.Request(urlunsplit(parts._replace(netloc=host)) + "/torch/")
    if userinfo:
        token = base64.b64encode(unquote(userinfo).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"cannot reach it ({reason})"
    return None if status < 400 else f"it answers HTTP {status}"


def redact_url(url: str) -> str:
    """The URL without its user:password, for messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def mirror_tip(spec: ImageSpec) -> str:
    key = spec.cuda_tag if spec.index_kind == "pytorch" else "pypi"
    env = TORCH_INDEX_ENV if spec.index_kind == "pytorch" else PIP_INDEX_ENV
    return MIRROR_TIP.format(key=key, env=env)

"""CA bundle, index and proxy resolution; the context tar; the index probe (against localhost)."""

from __future__ import annotations

import base64
import http.server
import io
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import certifi
import pytest

from tests.integration.fixture_matrix import rerender
from tests.paths import REPO
from torchstack.config.inputs import (
    BuildInputs,
    probe_index,
    redact_url,
    resolve_inputs,
)
from torchstack.config.model import ImageSpec
from torchstack.errors import ConfigError


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ImageSpec]:
    root = tmp_path_factory.mktemp("repo")
    shutil.copytree(REPO / "layers", root / "layers")
    shutil.copy2(REPO / "matrix.yaml", root / "matrix.yaml")
    return rerender(root).by_id()


def files(tmp_path: Path, *names: str) -> list[Path]:
    """CA bundles, each a real certificate (certifi's first) under its own comment."""
    bundle = Path(certifi.where()).read_text(encoding="utf-8")
    start = bundle.index("-----BEGIN CERTIFICATE-----")
    end = bundle.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    paths = [tmp_path / n for n in names]
    for path in paths:
        path.write_text(f"# {path.name}\n{bundle[start:end]}\n")
    return paths


def test_ca_bundle_option_wins_then_env_in_order_skipping_missing(tmp_path: Path) -> None:
    option, ssl_file, requests_file = files(tmp_path, "opt.pem", "ssl.pem", "req.pem")
    env = {"PIP_CERT": str(tmp_path / "missing.pem"), "SSL_CERT_FILE": str(ssl_file),
           "REQUESTS_CA_BUNDLE": str(requests_file)}
    assert resolve_inputs(option, [], env).ca_bundle == option
    assert resolve_inputs(None, [], env).ca_bundle == ssl_file
    assert resolve_inputs(None, [], {"REQUESTS_CA_BUNDLE": str(requests_file)}).ca_bundle \
        == requests_file
    assert resolve_inputs(None, [], {}).ca_bundle is None
    with pytest.raises(ConfigError, match=r"--ca-bundle .*no such file"):
        resolve_inputs(tmp_path / "nope.pem", [], env)


def test_index_overrides_from_env_and_options(specs: dict[str, ImageSpec]) -> None:
    env = {"TORCHSTACK_PIP_INDEX_URL": "https://env.example/simple/",
           "TORCHSTACK_TORCH_INDEX_URL": "https://env.example/whl/{cuda_tag}"}
    inputs = resolve_inputs(None, ["cu130=https://opt.example/cu130"], env)
    cu126, cu128, cu130 = (specs[f"torch2.9.1-{c}-py3.11-base"] for c in ("cu126", "cu128",
                                                                           "cu130"))
    assert inputs.pip_index_for(cu126) == "https://env.example/simple"
    assert inputs.torch_index_for(cu126) == "https://env.example/whl/cu126"
    assert inputs.torch_index_for(cu130) == "https://opt.example/cu130"
    assert inputs.torch_index_for(cu128) == "https://env.example/simple"  # PyPI's torch wheels
    option_wins = resolve_inputs(None, ["pypi=https://opt.example/simple"], env)
    assert option_wins.pip_index == "https://opt.example/simple"
    plain = resolve_inputs(None, [], {})
    assert plain.torch_index_for(cu126) == "https://download.pytorch.org/whl/cu126"
    assert plain.torch_index_for(cu128) == plain.pip_index_for(cu128) == "https://pypi.org/simple"


@pytest.mark.parametrize("option", ["cuda126=https://x", "pypi", "pypi=ftp://x", "=https://x"])
def test_bad_index_options_are_config_errors(option: str) -> None:
    with pytest.raises(ConfigError):
        resolve_inputs(None, [option], {})


def test_which_indexes_are_probed(specs: dict[str, ImageSpec]) -> None:
    plain = BuildInputs()
    assert plain.indexes_to_probe(specs["torch2.9.1-cu128-py3.11-base"]) == []
    assert plain.indexes_to_probe(specs["torch2.9.1-cu126-py3.11-vision"]) == [
        "https://download.pytorch.org/whl/cu126"]
    mirror = BuildInputs(pip_index="https://m.example/simple")
    assert mirror.indexes_to_probe(specs["torch2.9.1-cu128-py3.11-base"]) == [
        "https://m.example/simple"]


def test_proxies_are_the_ones_buildkit_predefines_in_both_spellings() -> None:
    env = {"HTTPS_PROXY": "http://p:3128", "https_proxy": "http://p:3128", "NO_PROXY": ".org",
           "ALL_PROXY": "socks5://x:1", "FTP_PROXY": "http://f:21", "SOCKS_PROXY": "s:1"}
    assert resolve_inputs(None, [], env).proxies == {
        "HTTPS_PROXY": "http://p:3128", "https_proxy": "http://p:3128", "NO_PROXY": ".org",
        "FTP_PROXY": "http://f:21", "ALL_PROXY": "socks5://x:1"}


def test_credentials_are_redacted_everywhere() -> None:
    inputs = BuildInputs(pip_index="https://tok3n:pa55@m.example/simple",
                         torch_indexes={"cu126": "https://only-token@t.example/whl"},
                         proxies={"HTTPS_PROXY": "http://pu:pp99@proxy:3128"})
    text = ("https://tok3n:pa55@m.example pip shows tok3n:**** ; https://only-token@t.example;"
            " pu:pp99@proxy")
    redacted = inputs.redact(text)
    for secret in ("tok3n", "pa55", "only-token", "pp99"):
        assert secret not in redacted
    assert redact_url("https://a:b@host/x") == "https://***@host/x"
    assert redact_url("https://host/x") == "https://host/x"


class Index(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        Index.seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(200 if self.path.startswith("/good/") else 404)
        self.end_headers()
        self.wfile.write(b"<html></html>")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def index_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Index)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_probe_index(index_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    Index.seen.clear()
    assert probe_index(f"http://{index_server}/good", None) is None
    assert probe_index(f"http://{index_server}/bad", None) == "it answers HTTP 404"
    assert probe_index(f"http://user:pw@{index_server}/good", None) is None
    token = base64.b64encode(b"user:pw").decode()
    assert Index.seen == [("/good/torch/", None), ("/bad/torch/", None),
                          ("/good/torch/", f"Basic {token}")]
    closed = probe_index("http://127.0.0.1:9/whl", None, timeout=2)
    assert closed is not None and closed.startswith("cannot reach it")
    assert probe_index(f"file://{io.__file__}", None) is not None

"""`torchstack promote --push --compression zstd|both` on the small fixture image, against the
real local registry, with the real skopeo writing zstd from the Engine.

What the registry holds is read here with urllib and the `zstandard` package, not through
torchstack's client. A tampered variant is staged by making the zstd writer push something
else (another image, or the right image under a manifest with its layers swapped): promote
must refuse it (exit 6) before any release tag moves.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import zstandard

from tests.integration.dockerutil import run_cli
from tests.integration.fixture_matrix import ALPHA, BASE
from tests.integration.promoteutil import ACCEPT, built, http_manifest, local_id, write_record
from torchstack.backend.credentials import Credentials
from torchstack.backend.docker import DockerBackend
from torchstack.backend.identity import content_of_inspect
from torchstack.backend.recompress import ZstdPublisher
from torchstack.cluster.candidates import resolve_candidate
from torchstack.config.matrix import load_matrix
from torchstack.resolve.state import ImageState, resolve

pytestmark = [pytest.mark.docker, pytest.mark.registry,
              pytest.mark.skipif(shutil.which("skopeo") is None,
                                 reason="skopeo writes zstd here (scripts/start-services.sh)")]
RELEASE = "it-2.9.1-cuda12.8-base"
ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def blob(ref: str, digest: str) -> bytes:
    name = ref.rpartition(":")[0]
    host, _, repository = name.partition("/")
    request = urllib.request.Request(f"http://{host}/v2/{repository}/blobs/{digest}",
                                     headers={"Accept": ACCEPT})
    with urllib.request.urlopen(request, timeout=60) as response:
        data: bytes = response.read()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
    return data


def served(ref: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(manifest, config blob, manifest digest) of a tag, straight from the Registry API."""
    status, manifest, digest = http_manifest(ref)
    assert status == 200 and manifest is not None, f"{ref}: HTTP {status}"
    config = json.loads(blob(ref, manifest["config"]["digest"]))
    return manifest, config, digest


def test_zstd_promote_publishes_oci_zstd_layers_that_hold_the_checked_image(
        fixture_copy: Path, it_repository: str, docker_api: Any, capsys: Any) -> None:
    docker_id, input_hash = built(docker_api, fixture_copy, BASE)
    write_record(fixture_copy, BASE, docker_id, input_hash, "cpu")
    code, output = run_cli(capsys, fixture_copy, "promote", BASE, "--push",
                           "--compression", "zstd")
    assert code == 0, output
    diff_ids = docker_api.inspect_image(docker_id)["RootFS"]["Layers"]
    candidate = f"{it_repository}:{BASE}-{input_hash[:12]}"
    digests = set()
    for ref in (candidate, f"{it_repository}:{RELEASE}"):
        manifest, config, digest = served(ref)
        digests.add(digest)
        assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        assert [layer["mediaType"] for layer in manifest["layers"]] == [ZSTD] * len(diff_ids)
        assert config["rootfs"]["diff_ids"] == diff_ids
        # An OCI conversion: the config digest is no longer the local image ID.
        assert manifest["config"]["digest"] != docker_id
    assert len(digests) == 1  # the release tag names the proven candidate manifest
    (digest,) = digests
    # An independent decompression of the top layer gives its diff ID.
    top = manifest["layers"][-1]
    plain = zstandard.ZstdDecompressor().stream_reader(
        blob(candidate, top["digest"]), read_across_frames=True).read()
    assert "sha256:" + hashlib.sha256(plain).hexdigest() == diff_ids[-1]
    assert local_id(docker_api, f"{it_repository}:{RELEASE}") == docker_id
    summary = json.loads((fixture_copy / ".torchstack/runs/latest/manifests"
                          / f"{BASE}.manifest.json").read_text())
    assert summary["published"] == [
        {"compression": "zstd", "ref": ref, "digest": digest}
        for ref in (candidate, f"{it_repository}:{RELEASE}")]
    assert summary["content_id"] == content_of_inspect(docker_api.inspect_image(docker_id)).id


def test_both_publishes_zstd_beside_gzip_and_lookup_finds_either(
        fixture_copy: Path, it_repository: str, docker_api: Any, capsys: Any) -> None:
    docker_id, input_hash = built(docker_api, fixture_copy, BASE)
    write_record(fixture_copy, BASE, docker_id, input_hash, "cpu")
    code, output = run_cli(capsys, fixture_copy, "promote", BASE, "--push",
                           "--compression", "both")
    assert code == 0, output
    gzip_manifest, gzip_config, gzip_digest = served(f"{it_repository}:{RELEASE}")
    zstd_manifest, zstd_config, zstd_digest = served(f"{it_repository}:{RELEASE}-zstd")
    assert {layer["mediaType"] for layer in gzip_manifest["layers"]} == {GZIP}
    assert {layer["mediaType"] for layer in zstd_manifest["layers"]} == {ZSTD}
    assert gzip_manifest["config"]["digest"] == docker_id  # docker push keeps the config
    assert gzip_config["rootfs"] == zstd_config["rootfs"]
    assert gzip_digest != zstd_digest

    # Candidate lookup (k8s --compression, record import) sees both forms of the candidate.
    matrix = load_matrix(fixture_copy / "matrix.yaml")
    state: ImageState = resolve(matrix, [BASE], backend=DockerBackend(docker_api),
                                repository=it_repository).by_id()[BASE]
    local = content_of_inspect(docker_api.inspect_image(docker_id))
    zstd = resolve_candidate(state, matrix, it_repository, local, "zstd")
    plain = resolve_candidate(state, matrix, it_repository, local, "gzip")
    candidate = f"{it_repository}:{BASE}-{input_hash[:12]}"
    assert (zstd.ref, zstd.digest) == (candidate + "-zstd", http_manifest(candidate + "-zstd")[2])
    assert (plain.ref, plain.digest) == (candidate, http_manifest(candidate)[2])
    assert set(zstd.digests) == set(plain.digests) == {zstd.digest, plain.digest}
    # Without a choice, Kubernetes gets the zstd variant where one was published.
    assert resolve_candidate(state, matrix, it_repository, local).digest == zstd.digest


def _swap_layers(ref: str) -> str:
    """Put the manifest at `ref` back with its first and last layers swapped; its digest."""
    _, manifest, _ = http_manifest(ref)
    assert manifest is not None and len(manifest["layers"]) >= 2
    layers = manifest["layers"]
    layers[0], layers[-1] = layers[-1], layers[0]
    body = json.dumps(manifest).encode()
    name, _, tag = ref.rpartition(":")
    host, _, repository = name.partition("/")
    request = urllib.request.Request(
        f"http://{host}/v2/{repository}/manifests/{tag}", data=body, method="PUT",
        headers={"Content-Type": manifest["mediaType"]})
    with urllib.request.urlopen(request, timeout=30):
        pass
    return "sha256:" + hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("tamper", ["other-image", "swapped-layers"])
def test_a_zstd_variant_with_other_content_is_refused_before_any_release_tag_moves(
        tamper: str, fixture_copy: Path, it_repository: str, docker_api: Any, capsys: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    docker_id, input_hash = built(docker_api, fixture_copy, BASE)
    other, _ = built(docker_api, fixture_copy, ALPHA)
    write_record(fixture_copy, BASE, docker_id, input_hash, "cpu")
    publish = ZstdPublisher.publish

    def tampered(self: ZstdPublisher, image: str, ref: str, source: str | None,
                 credentials: Credentials) -> str:
        if tamper == "other-image":  # a real skopeo push of another image under the tag
            return publish(self, other, ref, source, credentials)
        publish(self, image, ref, source, credentials)
        return _swap_layers(ref)

    monkeypatch.setattr(ZstdPublisher, "publish", tampered)
    release = f"{it_repository}:{RELEASE}"
    code, output = run_cli(capsys, fixture_copy, "promote", BASE, "--push",
                           "--compression", "zstd")
    assert code == 6, output
    reason = ("not the checked image: its config" if tamper == "other-image"
              else "layer 0")
    assert "refused" in output and reason in output, output
    if tamper == "swapped-layers":
        assert "decompresses to" in output, output
    assert http_manifest(release)[0] == 404  # no release tag in the registry
    assert local_id(docker_api, release) is None  # nor on this host
    assert not (fixture_copy / ".torchstack/promote-journal.json").exists()

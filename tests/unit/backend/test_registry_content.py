"""registry.prove_content against a real HTTP server holding really compressed blobs.

Each layer is a tar made here, compressed with gzip (two members), zstd (two frames) or not at
all; the server answers the Registry API paths from a dict, so a test can serve a wrong blob,
a wrong config or a truncated layer, and the proof must name what is wrong.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
import zstandard

from tests.httpserver import serving
from torchstack.backend.identity import content_of_blob
from torchstack.backend.registry import RegistryError, RemoteImage, prove_content, put_manifest

GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
TAR = "application/vnd.oci.image.layer.v1.tar"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_of(name: str, size: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size = size
        archive.addfile(info, io.BytesIO(bytes(range(256)) * (size // 256) + b"x" * (size % 256)))
    return out.getvalue()


def compress(data: bytes, media: str) -> bytes:
    half = len(data) // 2
    if media == GZIP:  # two members: a reader that stops after the first gets a wrong diff ID
        return gzip.compress(data[:half]) + gzip.compress(data[half:])
    if media == ZSTD:  # two frames, as a streaming writer may produce
        zstd = zstandard.ZstdCompressor()
        return zstd.compress(data[:half]) + zstd.compress(data[half:])
    return data


class Blobs:
    def __init__(self) -> None:
        self.paths: dict[str, tuple[bytes, str]] = {}
        self.host = ""

    def image(self, medias: list[str]) -> tuple[str, dict[str, object], list[bytes]]:
        """Serve an image with one layer per media type; (ref, config, uncompressed tars)."""
        tars = [tar_of(f"file{i}", 300_000 + i) for i in range(len(medias))]
        config: dict[str, object] = {"architecture": "amd64", "os": "linux",
                                     "config": {"Cmd": ["bash"]},
                                     "rootfs": {"type": "layers",
                                                "diff_ids": [sha(t) for t in tars]}}
        config_bytes = json.dumps(config).encode()
        layers = []
        for tar, media in zip(tars, medias, strict=True):
            packed = compress(tar, media)
            self.paths[f"/v2/repo/blobs/{sha(packed)}"] = (packed, "application/octet-stream")
            layers.append({"mediaType": media, "digest": sha(packed), "size": len(packed)})
        self.paths[f"/v2/repo/blobs/{sha(config_bytes)}"] = (config_bytes, "application/json")
        self.set_manifest({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": sha(config_bytes), "size": len(config_bytes)},
                           "layers": layers})
        return f"{self.host}/repo:v1", config, tars

    def set_manifest(self, manifest: dict[str, object]) -> None:
        body = json.dumps(manifest).encode()
        self.paths["/v2/repo/manifests/v1"] = (body, str(manifest["mediaType"]))

    def manifest(self) -> dict[str, object]:
        result: dict[str, object] = json.loads(self.paths["/v2/repo/manifests/v1"][0])
        return result


@pytest.fixture
def blobs() -> Iterator[Blobs]:
    store = Blobs()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in store.paths:
                self.send_response(404)
                self.end_headers()
                return
            body, media = store.paths[self.path]
            self.send_response(200)
            self.send_header("Content-Type", media)
            self.send_header("Content-Length", str(len(body)))
            if "/manifests/" in self.path:
                self.send_header("Docker-Content-Digest", sha(body))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            store.paths[self.path] = (body, self.headers["Content-Type"])
            self.send_response(201)
            self.send_header("Docker-Content-Digest", sha(body))
            self.end_headers()

        def log_message(self, *args: object) -> None: ...

    with serving(Handler) as server:
        store.host = f"127.0.0.1:{server.server_port}"
        yield store


@pytest.mark.parametrize("medias", [[GZIP, GZIP], [ZSTD, ZSTD], [TAR, ZSTD, GZIP]])
def test_a_faithful_image_is_proven_in_any_compression(blobs: Blobs, medias: list[str]) -> None:
    ref, config, _ = blobs.image(medias)
    image = prove_content(ref, content_of_blob(config))
    assert [layer.media_type for layer in image.layers] == medias
    assert image.compression == ("mixed" if len(set(medias)) > 1 else
                                 {GZIP: "gzip", ZSTD: "zstd"}[medias[0]])


def test_a_config_with_other_content_is_refused(blobs: Blobs) -> None:
    ref, config, _ = blobs.image([ZSTD])
    checked = content_of_blob({**config, "config": {"Cmd": ["bash"], "User": "1000"}})
    with pytest.raises(RegistryError, match=r"is not the checked image: its config differs"
                                            r" in User"):
        prove_content(ref, checked)


def test_layers_in_the_wrong_order_are_refused(blobs: Blobs) -> None:
    ref, config, tars = blobs.image([ZSTD, ZSTD])
    manifest = blobs.manifest()
    layers = manifest["layers"]
    assert isinstance(layers, list)
    layers.reverse()
    blobs.set_manifest(manifest)
    with pytest.raises(RegistryError, match=rf"layer 0 .* decompresses to {sha(tars[1])[:19]},"
                                            rf" but the image's diff ID there is"
                                            rf" {sha(tars[0])[:19]}"):
        prove_content(ref, content_of_blob(config))


def test_a_blob_that_is_not_its_digest_is_refused(blobs: Blobs) -> None:
    ref, config, tars = blobs.image([GZIP])
    layer = blobs.manifest()["layers"][0]  # type: ignore[index]
    # The same uncompressed bytes compressed again: decompresses right, but is another blob.
    blobs.paths[f"/v2/repo/blobs/{layer['digest']}"] = (gzip.compress(tars[0], 1), "x")
    with pytest.raises(RegistryError, match=r"hash to .*, not its descriptor's digest"):
        prove_content(ref, content_of_blob(config))


def test_a_truncated_or_garbled_layer_is_refused(blobs: Blobs) -> None:
    ref, config, _ = blobs.image([ZSTD])
    path = f"/v2/repo/blobs/{blobs.manifest()['layers'][0]['digest']}"  # type: ignore[index]
    packed, media = blobs.paths[path]
    blobs.paths[path] = (packed[:-7], media)
    with pytest.raises(RegistryError, match=r"does not decompress as zstd|decompresses to|hash to"):
        prove_content(ref, content_of_blob(config))
    blobs.paths[path] = (b"not zstd at all" * 10, media)
    with pytest.raises(RegistryError, match=r"does not decompress as zstd"):
        prove_content(ref, content_of_blob(config))


def test_a_missing_layer_or_unknown_media_type_is_refused(blobs: Blobs) -> None:
    ref, config, _ = blobs.image([ZSTD, ZSTD])
    manifest = blobs.manifest()
    layers = manifest["layers"]
    assert isinstance(layers, list)
    blobs.set_manifest({**manifest, "layers": layers[:1]})
    with pytest.raises(RegistryError, match=r"lists 1 layers, but its config names 2 diff IDs"):
        prove_content(ref, content_of_blob(config))
    layers[0] = {**layers[0], "mediaType": "application/vnd.oci.image.layer.v1.tar+lz4"}
    blobs.set_manifest({**manifest, "layers": layers})
    with pytest.raises(RegistryError, match=r"not an image layer media type"):
        prove_content(ref, content_of_blob(config))


def test_put_manifest_tags_the_same_bytes(blobs: Blobs) -> None:
    ref, config, _ = blobs.image([ZSTD])
    image = prove_content(ref, content_of_blob(config))
    assert put_manifest(f"{blobs.host}/repo:v1-zstd", image) == image.digest
    assert blobs.paths["/v2/repo/manifests/v1-zstd"][0] == image.raw
    with pytest.raises(RegistryError, match="stored the manifest as"):
        put_manifest(f"{blobs.host}/repo:other",
                     RemoteImage("sha256:" + "0" * 64, image.config_digest, image.media_type,
                                 image.layers, image.raw))

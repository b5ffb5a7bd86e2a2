"""Image identity on both image stores (backend/identity.py). The containerd store cannot run here:
its inspect answers below are written from the Engine API reference (ImageInspect, API 1.48+:
`Descriptor` is present only when the daemon has a multi-platform, containerd, image store)."""

from __future__ import annotations

from torchstack.backend.identity import ImageInspect, is_same_image, remote_key, store_of
from torchstack.backend.registry import RemoteImage

CONFIG = "sha256:" + "c" * 64
MANIFEST = "sha256:" + "m" * 64
OTHER = "sha256:" + "0" * 64

CLASSIC: ImageInspect = {"Id": CONFIG, "RepoTags": ["torchstack:x"], "RootFS": {"Layers": []}}
CONTAINERD: ImageInspect = {"Id": MANIFEST, "RepoTags": ["torchstack:x"],
              "Descriptor": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                             "digest": MANIFEST, "size": 1234}}
REMOTE = RemoteImage(digest=MANIFEST, config_digest=CONFIG)


def test_the_store_is_told_by_the_descriptor() -> None:
    assert store_of(CLASSIC) == "classic"
    assert store_of(CONTAINERD) == "containerd"
    assert store_of({**CLASSIC, "Descriptor": None}) == "classic"


def test_classic_ids_are_config_digests_containerd_ids_manifest_digests() -> None:
    assert remote_key("classic", REMOTE) == CONFIG
    assert remote_key("containerd", REMOTE) == MANIFEST
    assert is_same_image(CLASSIC, REMOTE)
    assert is_same_image(CONTAINERD, REMOTE)


def test_a_different_image_under_the_tag_is_not_the_checked_one() -> None:
    assert not is_same_image(CLASSIC, RemoteImage(digest=MANIFEST, config_digest=OTHER))
    assert not is_same_image(CONTAINERD, RemoteImage(digest=OTHER, config_digest=CONFIG))
    # The wrong kind of digest never matches by accident of equal IDs elsewhere.
    assert not is_same_image(CONTAINERD, RemoteImage(digest=OTHER, config_digest=MANIFEST))

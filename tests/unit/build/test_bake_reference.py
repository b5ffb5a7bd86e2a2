"""The bake file against buildx's bake file reference (docs/bake-reference.md, docker/buildx
at 461836b, Aug 2026): buildx is not installed here, so the file is checked statically."""

from __future__ import annotations

import json
from typing import Any

from tests.paths import REPO
from torchstack.build.bake import bake_file, to_json
from torchstack.config.matrix import load_matrix
from torchstack.render.dockerfile import SECRET_IDS
from torchstack.resolve.state import resolve

# The `target.*` attributes the reference documents.
TARGET_ATTRIBUTES = {
    "args", "annotations", "attest", "cache-from", "cache-to", "call", "context", "contexts",
    "description", "dockerfile-inline", "dockerfile", "entitlements", "extra-hosts", "inherits",
    "labels", "matrix", "name", "network", "no-cache-filter", "no-cache", "output", "policy",
    "platforms", "pull", "resources", "secret", "shm-size", "ssh", "tags", "target", "ulimits",
}
SECRET_KEYS = {"type", "id", "src", "env"}  # util/buildflags/secrets.go


def document() -> dict[str, Any]:
    matrix = load_matrix(REPO / "matrix.yaml")
    text = to_json(bake_file(resolve(matrix, everything=True), "registry.example/staging",
                             [i.id for i in matrix.select([])]))
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def test_every_target_attribute_is_one_the_reference_documents() -> None:
    doc = document()
    assert set(doc) == {"group", "target"}
    for name, target in doc["target"].items():
        assert set(target) <= TARGET_ATTRIBUTES, (name, set(target) - TARGET_ATTRIBUTES)


def test_the_same_secrets_as_torchstack_build_spelled_as_the_reference_does() -> None:
    for name, target in document()["target"].items():
        entries = target["secret"]
        assert [e["id"] for e in entries] == list(SECRET_IDS), name
        for entry in entries:
            assert set(entry) <= SECRET_KEYS and entry["type"] == "env"
            # torchstack build passes the same values under the same variable names.
            assert entry["env"] == "TORCHSTACK_SECRET_" + entry["id"].upper().replace("-", "_")


def test_no_release_tag_only_staging_tags() -> None:
    matrix = load_matrix(REPO / "matrix.yaml")
    releases = {t for i in matrix.images for t in (i.release_tag, *i.aliases)}
    for name, target in document()["target"].items():
        for tag in target["tags"]:
            repository, _, tag_name = tag.rpartition(":")
            assert tag_name not in releases, (name, tag)
            assert "-stage-" in tag_name and len(tag_name.rpartition("-stage-")[2]) == 12
            assert repository in ("torchstack", "registry.example/staging")
        assert set(target["labels"]) == {"io.torchstack.chain-hash"}

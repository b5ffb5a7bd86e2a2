"""Which digest identifies an image: the one records, tags and promotion key on.

Records key on the Engine's image ID: the image the checks ran on, as `docker run` took it.
What that ID is depends on the Engine's image store:
- the classic store (graph drivers; Docker up to 28 by default, this project's CI): the ID is
  the **config digest**, which a registry lists as the manifest's `config.digest`. The local
  image has no manifest until a push compresses its layers.
- the containerd image store (the default on fresh Docker 29 installs): the ID is the digest
  of the image's **manifest** (or of its index, for a multi-platform image), which a push
  preserves, since the store keeps the compressed layers: the registry's manifest digest.
BuildKit reports both (`--metadata-file`: containerimage.config.digest and
containerimage.digest); `docker image inspect` says which store answered by carrying a
`Descriptor` only on the containerd store. A pushed tag is proven to be the checked image when
the registry's digest of the same kind equals the record's ID.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypedDict

from torchstack.workspace.json_types import JSON, JSONObject

if TYPE_CHECKING:  # registry proves content with this module: a runtime import is a cycle
    from torchstack.backend.registry import RemoteImage

Store = Literal["classic", "containerd"]


class InspectRootFS(TypedDict, total=False):
    Type: str
    Layers: list[str]  # the diff IDs, base layer first


class ImageInspect(TypedDict, total=False):
    """The keys torchstack reads of the Engine's `/images/{name}/json` answer (Docker Engine
    API, ImageInspect); the Engine sends more, and null where a list is empty."""

    Id: str  # the image ID (see the module docstring for which digest)
    RepoTags: list[str] | None
    RepoDigests: list[str] | None
    Size: int
    Created: str
    Architecture: str
    Os: str
    Variant: str
    Config: JSONObject | None  # the runtime config: User, Env, Cmd, Labels, ...
    RootFS: InspectRootFS
    Descriptor: JSONObject | None  # only on the containerd image store


def store_of(inspected: ImageInspect) -> Store:
    """The image store behind an `/images/{name}/json` answer."""
    return "containerd" if inspected.get("Descriptor") else "classic"


def remote_key(store: Store, remote: RemoteImage) -> str:
    """The registry digest that equals the local image ID on this store."""
    return remote.config_digest if store == "classic" else remote.digest


def is_same_image(inspected: ImageInspect, remote: RemoteImage) -> bool:
    """Whether a registry's tag holds exactly the local image `inspected` describes."""
    return str(inspected.get("Id", "")) == remote_key(store_of(inspected), remote)


# An image's content, whatever manifest published it: its ordered layer diff IDs plus its config
# projected onto the fields the OCI image spec defines. Recompression (gzip -> zstd) and a
# conversion to an OCI manifest change the manifest and config digests, never these.
CONTENT_ID_SCHEME = "torchstack-content-v1"
OCI_RUNTIME_FIELDS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir",
                      "Labels", "StopSignal", "ArgsEscaped")


@dataclass(frozen=True)
class Content:
    """The projection that identifies an image; `id` is its digest (CONTENT_ID_SCHEME)."""

    platform: tuple[tuple[str, str], ...]  # architecture, os, variant (those present)
    config: tuple[tuple[str, str], ...]  # OCI runtime field -> canonical JSON of its value
    diff_ids: tuple[str, ...]

    @property
    def id(self) -> str:
        document = {"scheme": CONTENT_ID_SCHEME, "platform": dict(self.platform),
                    "config": {k: json.loads(v) for k, v in self.config},
                    "diff_ids": list(self.diff_ids)}
        return "sha256:" + hashlib.sha256(_canonical(document).encode()).hexdigest()


def content_difference(expected: Content, actual: Content) -> str | None:
    """How `actual` differs from `expected`, in words (None: the same content)."""
    if expected.platform != actual.platform:
        return (f"is for {_platform(actual)}, not {_platform(expected)}")
    if expected.diff_ids != actual.diff_ids:
        if len(expected.diff_ids) != len(actual.diff_ids):
            return (f"has {len(actual.diff_ids)} layers (diff IDs), not"
                    f" {len(expected.diff_ids)}")
        index = next(i for i, (a, b) in enumerate(zip(expected.diff_ids, actual.diff_ids,
                                                        strict=True)) if a != b)
        return (f"layer {index} is {actual.diff_ids[index][:19]}, not"
                f" {expected.diff_ids[index][:19]}")
    wanted, got = dict(expected.config), dict(actual.config)
    fields = sorted(k for k in wanted.keys() | got.keys() if wanted.get(k) != got.get(k))
    if fields:
        return "differs in " + ", ".join(fields)
    return None


def _platform(content: Content) -> str:
    return "/".join(v for _, v in content.platform) or "no platform"


def content_of_blob(blob: Mapping[str, object]) -> Content:
    """From an image config blob as a registry serves it (Docker or OCI media type)."""
    rootfs, config = blob.get("rootfs"), blob.get("config")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    return _content(blob.get("architecture"), blob.get("os"), blob.get("variant"),
                    config if isinstance(config, dict) else {},
                    diff_ids if isinstance(diff_ids, list) else [])


def content_of_inspect(inspected: ImageInspect) -> Content:
    """From the Engine's `/images/{name}/json` answer for the same image."""
    return _content(inspected.get("Architecture"), inspected.get("Os"),
                    inspected.get("Variant"), inspected.get("Config") or {},
                    inspected.get("RootFS", {}).get("Layers") or [])


def _content(arch: object, os_name: object, variant: object, config: Mapping[str, JSON],
             diff_ids: Sequence[object]) -> Content:
    platform = tuple((k, str(v)) for k, v in
                     (("architecture", arch), ("os", os_name), ("variant", variant)) if v)
    # Empty and absent mean the same to a runtime; the Engine writes null where OCI omits.
    fields = tuple((k, _canonical(config[k])) for k in OCI_RUNTIME_FIELDS if config.get(k))
    return Content(platform, fields, tuple(str(d) for d in diff_ids))


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)

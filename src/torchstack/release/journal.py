"""Move release tags to images that passed, and push them; lose nothing on failure.

Order matters. A candidate tag (`<id>-<hash12>`, unique to one build) is pushed first: that
uploads every layer and the manifest while no tag a user pulls has moved. Only then do the
release tags move, locally and remotely, which is quick (no layer uploads). That short stretch
runs with SIGINT/SIGTERM deferred and behind a journal: a kill -9 leaves the journal, and the
next `torchstack promote` finishes the move before doing anything else. When the registry
refuses a release tag, the local release tags go back to the images they named before, and
the journal entry stays so that the next run finishes the move in the registry too.

Compression (docs/registry.md): each tag is published as gzip (`docker push`), zstd
(backend.recompress) or both (zstd under tag+suffix). Every variant of the candidate is proven
(registry.prove_content: config projection, diff IDs, each layer decompressed) before any
release tag moves; the release tags then name the proven manifests: gzip by `docker push`
again (no uploads), zstd by putting the proven manifest's bytes under each name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, Required, TypedDict

from torchstack.backend.credentials import ANONYMOUS, Credentials
from torchstack.backend.identity import (
    Content,
    ImageInspect,
    content_of_inspect,
    is_same_image,
)
from torchstack.backend.registry import (
    RegistryError,
    RemoteImage,
    fetch_manifest,
    prove_content,
    put_manifest,
)
from torchstack.config import kinds
from torchstack.config.located import read_config_text
from torchstack.config.model import (
    COMPRESSIONS,
    Compression,
    Variant,
    variant_ref,
    variants_of,
)
from torchstack.errors import ConfigError, EngineError, PromoteError
from torchstack.resolve.tags import TagDecision
from torchstack.signals import deferred_signals
from torchstack.workspace.files import ensure_inside, write_text
from torchstack.workspace.paths import shown

RETRIES = 4
BACKOFF_S = 2.0


@dataclass(frozen=True)
class TagResult:
    ref: str
    pushed: bool
    digest: str | None  # registry manifest digest when pushed
    error: str | None
    compression: Variant = "gzip"  # the form the registry holds under ref (when pushed)


@dataclass(frozen=True)
class PublishedVariant:
    """One manifest promote published and proved: what attestations list as subjects."""

    compression: Variant
    ref: str  # repository:tag
    digest: str  # the manifest digest, sha256:...


# A journal holds a handful of entries; a larger file is not one.
JOURNAL_MAX_BYTES = 1 << 20
DISCARD_TIP = ("look at it (it names the image and the release tags whose move was cut short),"
               " then run `torchstack promote --discard-journal` to move it aside and go on;"
               " the tags it names stay where they are until promote moves them again")


class JournalEntry(TypedDict, total=False):
    """One release move in the journal file (older files lack the optional keys)."""

    image: Required[str]  # the torchstack image id
    refs: Required[list[str]]  # the release tags being moved
    docker_id: str  # the image they move to
    push: bool
    compression: Compression
    suffix: str  # zstd_suffix, for `compression: both`
    variants: dict[str, str]  # gzip|zstd -> the candidate's proven manifest digest
    previous: dict[str, str | None]  # ref -> the image it pointed at before (None: no tag)


class JournalError(PromoteError):
    """The journal cannot be read: nothing is tagged until it is looked at (exit 6)."""


class Journal:
    """Release moves in progress, one JSON file written atomically.

    A corrupt or truncated file is never guessed at or overwritten: it stays where it is and
    every promote stops (JournalError) until `discard` moves it aside.
    """

    def __init__(self, path: Path, root: Path | None = None) -> None:
        self.path = path
        self.root = root or path.parent  # writes stay inside this folder (no symlink out)

    def pending(self) -> list[JournalEntry]:
        if not (self.path.exists() or self.path.is_symlink()):
            return []
        shown = self._shown()
        try:
            text = read_config_text(self.path, shown, limit=JOURNAL_MAX_BYTES,
                                    kind="a JSON file")
        except ConfigError as exc:
            raise JournalError(f"the promote journal {exc.message}", tip=DISCARD_TIP) from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise JournalError(f"the promote journal {shown} is corrupt or truncated ({exc});"
                               " it is left in place", tip=DISCARD_TIP) from None
        problem = _journal_problem(data)
        if problem:
            raise JournalError(f"the promote journal {shown} is not one torchstack wrote"
                               f" ({problem}); it is left in place", tip=DISCARD_TIP)
        entries: list[JournalEntry] = data  # checked just above
        return entries

    def write(self, entries: list[JournalEntry]) -> None:
        write_text(self.root, self.path, json.dumps(entries, indent=2))

    def clear(self) -> None:
        ensure_inside(self.root, self.path)
        self.path.unlink(missing_ok=True)

    def discard(self) -> Path | None:
        """Move the journal aside (kept for inspection); returns where it went, or None."""
        if not (self.path.exists() or self.path.is_symlink()):
            return None
        ensure_inside(self.root, self.path.parent)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = self.path.with_name(f"{self.path.stem}.discarded-{stamp}{self.path.suffix}")
        self.path.replace(aside)
        return aside

    def _shown(self) -> str:
        return shown(self.root, self.path)

    def add(self, entry: JournalEntry) -> None:
        """Record a move (replacing an unfinished one of the same image)."""
        self.write([e for e in self.pending() if e["image"] != entry["image"]] + [entry])

    def remove(self, image: str) -> None:
        """Forget a finished move; the file goes with the last one."""
        rest = [e for e in self.pending() if e["image"] != image]
        if rest:
            self.write(rest)
        else:
            self.clear()


def _journal_problem(data: object) -> str | None:
    """Why `data` is not a list of move entries, or None."""
    if not isinstance(data, list):
        return "expected a list of moves"
    for index, entry in enumerate(data):
        where = f"entry {index}"
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
            return f"{where} has no image id"
        refs = entry.get("refs")
        if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
            return f"{where} has no list of refs"
        bad = next((r for r in refs if kinds.reference_problem(r)), None)
        if bad is not None:
            return f"{where}: {bad!r} is not an image reference"
        if "docker_id" in entry and not (isinstance(entry["docker_id"], str)
                                         and kinds.DIGEST.fullmatch(entry["docker_id"])):
            return f"{where} has a docker_id that is not an image id"
        if "push" in entry and not isinstance(entry["push"], bool):
            return f"{where}: push is not true or false"
        if entry.get("compression", "gzip") not in COMPRESSIONS:
            return f"{where}: compression is not one of {', '.join(COMPRESSIONS)}"
        if not isinstance(entry.get("suffix", ""), str) or (
                entry.get("suffix") and not kinds.TAG_SUFFIX.fullmatch(entry["suffix"])):
            return f"{where}: suffix cannot end a tag"
        variants = entry.get("variants", {})
        if not isinstance(variants, dict) or not all(
                k in ("gzip", "zstd") and isinstance(v, str) and kinds.DIGEST.fullmatch(v)
                for k, v in variants.items()):
            return f"{where}: variants is not a map of gzip|zstd -> manifest digest"
        previous = entry.get("previous") or {}
        if not isinstance(previous, dict) or not all(
                isinstance(k, str) and (v is None or isinstance(v, str))
                for k, v in previous.items()):
            return f"{where}: previous is not a map of ref -> image id"
    return None


class TagEngine(Protocol):
    """What moving tags asks the Docker Engine (backend.docker.DockerBackend; fakes in tests)."""

    def image_id(self, ref: str) -> str | None: ...
    def inspect(self, ref: str) -> ImageInspect | None: ...
    def tag(self, image_id: str, ref: str) -> None: ...
    def remove_image(self, ref: str) -> None: ...
    def push(self, ref: str) -> str | None: ...


class ZstdWriter(Protocol):
    """What writes an image's zstd variant (backend.recompress.ZstdPublisher; fakes in tests)."""

    def publish(self, docker_id: str, ref: str, source: str | None,
                credentials: Credentials) -> str: ...


class Promoter:
    def __init__(self, backend: TagEngine, journal: Journal, push: bool,
                 on_event: Callable[[str], None], compression: Compression = "gzip",
                 suffix: str = "-zstd", zstd: ZstdWriter | None = None, *,
                 credentials: Credentials = ANONYMOUS, pause_s: float = 0.0) -> None:
        self.backend, self.journal, self.push, self.say = backend, journal, push, on_event
        self.compression, self.suffix, self.zstd = compression, suffix, zstd
        self.credentials = credentials
        self.pause_s = pause_s  # between two release tags (a test hook: Settings.tag_pause_s)
        self._proven: dict[str, RemoteImage] = {}  # manifest digest -> proven this run
        self._content: dict[str, Content] = {}  # docker id -> its content

    def resume(self) -> list[TagResult]:
        """Finish the moves a killed run, or a registry outage, left half done (their images
        had passed)."""
        results = []
        for entry in self.journal.pending():
            if "docker_id" not in entry:
                raise JournalError(f"the promote journal {self.journal.path} has an entry for"
                                   f" {entry['image']} without its image id", tip=DISCARD_TIP)
            if self.backend.image_id(entry["docker_id"]) is None:
                # Its image was deleted since: nothing to finish; the old tags stay.
                self.journal.remove(entry["image"])
                gone = f"image {entry['docker_id'][:19]} no longer exists; move abandoned"
                results += [TagResult(ref, False, None, gone) for ref in entry["refs"]]
                continue
            self.say(f"resuming the interrupted promotion of {entry['image']}")
            results += self._finish(entry)
        return results

    def promote(self, decision: TagDecision, docker_id: str) -> list[TagResult]:
        results = []
        variants: dict[str, str] = {}  # variant -> proven manifest digest of the candidate
        if decision.candidate:
            self._tag(docker_id, decision.candidate)
            if not self.push:
                results.append(TagResult(decision.candidate, False, None, None))
            for variant in variants_of(self.compression) if self.push else ():
                result = self._publish_candidate(docker_id, decision.candidate, variant,
                                                 variants.get("gzip"))
                results.append(result)
                if result.error or result.digest is None:
                    return results  # not in the registry as checked: no release tag may move
                variants[variant] = result.digest
        if decision.releases:
            refs = list(decision.releases)
            entry: JournalEntry = {"image": decision.image_id, "docker_id": docker_id, "refs": refs,
                                   "push": self.push, "compression": self.compression,
                                   "suffix": self.suffix, "variants": variants,
                                   "previous": {ref: self.backend.image_id(ref)
                                                for ref in refs}}
            with deferred_signals("the tag move in progress"):
                self.journal.add(entry)
                results += self._finish(entry)
        return results

    def _finish(self, entry: JournalEntry) -> list[TagResult]:
        """Move an entry's tags; forget the entry once the registry holds them too."""
        results = self._move(entry)
        if not any(r.error for r in results):
            self.journal.remove(entry["image"])
            return results
        # Users pulling from the registry still get the previous images: so does this host.
        for ref, image in (entry.get("previous") or {}).items():
            if image:
                self._tag(image, ref)
            else:
                self.backend.remove_image(ref)
        self.say(f"{entry['image']}: the registry did not take every release tag; the local"
                 " release tags are back on their previous images and the next"
                 " `torchstack promote --push` finishes the move")
        return results

    def _move(self, entry: JournalEntry) -> list[TagResult]:
        docker_id, refs = str(entry["docker_id"]), list(entry["refs"])
        for index, ref in enumerate(refs):
            if index and self.pause_s:
                time.sleep(self.pause_s)
            self._tag(docker_id, ref)
        if not entry["push"]:
            return [TagResult(ref, False, None, None) for ref in refs]
        compression: Compression = entry.get("compression", "gzip")
        suffix, proven = str(entry.get("suffix", "")), dict(entry.get("variants") or {})
        results = []
        for ref in refs:
            for variant in variants_of(compression):
                target = variant_ref(ref, variant, compression, suffix)
                if variant == "gzip":
                    results.append(self._publish_gzip(docker_id, target, proven.get("gzip")))
                elif "zstd" in proven:
                    results.append(self._put_proven(target, proven["zstd"]))
                else:
                    results.append(TagResult(target, False, None, "no proven zstd variant to"
                                             " tag (push the candidate again)", "zstd"))
        return results

    def _tag(self, docker_id: str, ref: str) -> None:
        """A local tag; the daemon refusing it is a promotion failure (exit 6), not a crash."""
        try:
            self.backend.tag(docker_id, ref)
        except EngineError as exc:
            raise PromoteError(exc.message,
                               tip="release tags already moved stay recorded in the promote"
                                   " journal; the next `torchstack promote` finishes") from None

    def _publish_candidate(self, docker_id: str, ref: str, variant: Variant,
                           gzip_digest: str | None) -> TagResult:
        """Write one variant of the candidate and prove its content."""
        target = variant_ref(ref, variant, self.compression, self.suffix)
        problem = kinds.reference_problem(target)
        if problem:
            return TagResult(target, False, None, f"{target!r} {problem} (zstd_suffix makes"
                             " the tag too long?)", variant)
        if variant == "gzip":
            return self._publish_gzip(docker_id, target, None)
        if self.zstd is None:
            return TagResult(target, False, None, "no tool to write zstd layers", variant)
        source = f"{ref.rpartition(':')[0]}@{gzip_digest}" if gzip_digest else None
        try:  # minutes for a big image; Ctrl-C stops it (the candidate tag is no release)
            reported = self.zstd.publish(docker_id, target, source, self.credentials)
        except PromoteError as exc:
            return TagResult(target, False, None, exc.message, variant)
        return self._prove(docker_id, target, variant, reported)

    def _prove(self, docker_id: str, ref: str, variant: Variant,
               expected_digest: str | None) -> TagResult:
        """Whether the manifest at `ref` holds the checked image, layer by layer."""
        try:
            image = prove_content(ref, self._content_of(docker_id),
                                  credentials=self.credentials)
        except RegistryError as exc:
            return TagResult(ref, True, None, f"refused: {exc.message}", variant)
        if expected_digest and image.digest != expected_digest:
            return TagResult(ref, True, image.digest,
                             f"refused: the registry serves {image.digest[:19]}, not the"
                             f" {expected_digest[:19]} just pushed", variant)
        if variant == "zstd" and image.compression != "zstd":
            return TagResult(ref, True, image.digest, f"refused: its layers are"
                             f" {image.compression}, not zstd", variant)
        self._proven[image.digest] = image
        self.say(f"pushed {ref} ({variant}, {image.digest}): content proven,"
                 f" {len(image.layers)} layers")
        return TagResult(ref, True, image.digest, None, variant)

    def _content_of(self, docker_id: str) -> Content:
        if docker_id not in self._content:
            self._content[docker_id] = content_of_inspect(
                self.backend.inspect(docker_id) or {"Id": docker_id})
        return self._content[docker_id]

    def _publish_gzip(self, docker_id: str, ref: str, proven: str | None) -> TagResult:
        """`docker push` with retries, confirmed through the registry's own API; a manifest
        not proven this run is proven (config projection and every layer)."""
        last_error = ""
        for attempt in range(RETRIES):
            if attempt:
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))
            try:
                pushed = self.backend.push(ref)
                remote = fetch_manifest(ref, credentials=self.credentials)
            except (EngineError, PromoteError, RegistryError) as exc:
                last_error = str(exc)
                self.say(f"push {ref}: attempt {attempt + 1} of {RETRIES} failed: {last_error}")
                continue
            local = self.backend.inspect(docker_id) or {"Id": docker_id}
            same = is_same_image(local, remote)
            if not same or (pushed and remote.digest != pushed):
                # Not pushed: the tag serves another image, whose digest is not this one's.
                return TagResult(ref, False, None,
                                 f"the registry's {ref} is {remote.config_digest[:19]}"
                                 f" ({remote.digest}), not the local {docker_id[:19]}")
            if remote.digest in self._proven or remote.digest == proven:
                self.say(f"pushed {ref} ({remote.digest})")
                return TagResult(ref, True, remote.digest, None)
            return self._prove(docker_id, ref, "gzip", remote.digest)
        return TagResult(ref, False, None, last_error)

    def _put_proven(self, ref: str, digest: str) -> TagResult:
        """Name a proven zstd manifest `ref`: its bytes put again, nothing uploaded."""
        last_error = ""
        repository = ref.rpartition(":")[0]
        for attempt in range(RETRIES):
            if attempt:
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))
            try:
                image = self._proven.get(digest) or fetch_manifest(
                    f"{repository}@{digest}", credentials=self.credentials)
                put_manifest(ref, image, credentials=self.credentials)
                served = fetch_manifest(ref, credentials=self.credentials).digest
            except RegistryError as exc:
                last_error = exc.message
                self.say(f"tag {ref}: attempt {attempt + 1} of {RETRIES} failed: {last_error}")
                continue
            if served != digest:
                return TagResult(ref, True, served, f"the registry serves {served[:19]} under"
                                 f" {ref}, not the proven {digest[:19]}", "zstd")
            self.say(f"pushed {ref} (zstd, {digest})")
            return TagResult(ref, True, digest, None, "zstd")
        return TagResult(ref, False, None, last_error, "zstd")

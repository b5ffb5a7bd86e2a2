"""Move release tags to images that passed, and push them; lose nothing on failure.

Order matters. A candidate tag (`<id>-<hash12>`, unique to one build) is pushed first: that
uploads every layer and the manifest while no tag a user pulls has moved. Only then do the
release tags move, locally and remotely, which is quick (no layer uploads). That short stretch
runs with SIGINT/SIGTERM deferred and behind a journal: a kill -9 leaves the journal, and the
next `torchstack promote` finishes the move before doing anything else. When the registry
refuses a release tag, the local release tags go back to the images they named before, and
the journal entry stays so that the next run finishes the move in the registry too.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchstack.docker_backend import DockerBackend
from torchstack.errors import PromoteError
from torchstack.registry import RegistryError, fetch_manifest
from torchstack.signals import deferred_signals
from torchstack.tags import TagDecision

RETRIES = 4
BACKOFF_S = 2.0
# Test hook: seconds to sleep between two release tags, so a test can kill us mid-move.
PAUSE_ENV = "TORCHSTACK_TEST_PAUSE_BETWEEN_TAGS"


@dataclass(frozen=True)
class TagResult:
    ref: str
    pushed: bool
    digest: str | None  # registry manifest digest when pushed
    error: str | None


class Journal:
    """Release moves in progress, one JSON file written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def pending(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        entries: list[dict[str, Any]] = json.loads(self.path.read_text())
        return entries

    def write(self, entries: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(entries, indent=2))
        os.replace(partial, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def add(self, entry: dict[str, Any]) -> None:
        """Record a move (replacing an unfinished one of the same image)."""
        self.write([e for e in self.pending() if e["image"] != entry["image"]] + [entry])

    def remove(self, image: str) -> None:
        """Forget a finished move; the file goes with the last one."""
        rest = [e for e in self.pending() if e["image"] != image]
        if rest:
            self.write(rest)
        else:
            self.clear()


class Promoter:
    def __init__(self, backend: DockerBackend, journal: Journal, push: bool,
                 on_event: Callable[[str], None]) -> None:
        self.backend, self.journal, self.push, self.say = backend, journal, push, on_event

    def resume(self) -> list[TagResult]:
        """Finish the moves a killed run, or a registry outage, left half done (their images
        had passed)."""
        results = []
        for entry in self.journal.pending():
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
        if decision.candidate:
            self.backend.tag(docker_id, decision.candidate)
            results.append(self._publish(docker_id, decision.candidate) if self.push
                           else TagResult(decision.candidate, False, None, None))
            if results[-1].error:
                return results  # layers are not in the registry: no release tag may move
        if decision.releases:
            refs = list(decision.releases)
            entry = {"image": decision.image_id, "docker_id": docker_id, "refs": refs,
                     "push": self.push,
                     "previous": {ref: self.backend.image_id(ref) for ref in refs}}
            with deferred_signals("the tag move in progress"):
                self.journal.add(entry)
                results += self._finish(entry)
        return results

    def _finish(self, entry: dict[str, Any]) -> list[TagResult]:
        """Move an entry's tags; forget the entry once the registry holds them too."""
        results = self._move(entry["docker_id"], entry["refs"], bool(entry["push"]))
        if not any(r.error for r in results):
            self.journal.remove(entry["image"])
            return results
        # Users pulling from the registry still get the previous images: so does this host.
        for ref, image in (entry.get("previous") or {}).items():
            if image:
                self.backend.tag(image, ref)
            else:
                self.backend.remove_image(ref)
        self.say(f"{entry['image']}: the registry did not take every release tag; the local"
                 " release tags are back on their previous images and the next"
                 " `torchstack promote --push` finishes the move")
        return results

    def _move(self, docker_id: str, refs: list[str], push: bool) -> list[TagResult]:
        pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
        for index, ref in enumerate(refs):
            if index and pause:
                time.sleep(pause)
            self.backend.tag(docker_id, ref)
        if not push:
            return [TagResult(ref, False, None, None) for ref in refs]
        return [self._publish(docker_id, ref) for ref in refs]

    def _publish(self, docker_id: str, ref: str) -> TagResult:
        """Push with retries, then confirm through the registry's own API."""
        last_error = ""
        for attempt in range(RETRIES):
            if attempt:
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))
            try:
                pushed = self.backend.push(ref)
                remote = fetch_manifest(ref)
            except (PromoteError, RegistryError) as exc:
                last_error = str(exc)
                self.say(f"push {ref}: attempt {attempt + 1} of {RETRIES} failed: {last_error}")
                continue
            if remote.config_digest != docker_id or (pushed and remote.digest != pushed):
                return TagResult(ref, True, remote.digest,
                                 f"the registry's {ref} is {remote.config_digest[:19]},"
                                 f" not the local {docker_id[:19]}")
            self.say(f"pushed {ref} ({remote.digest})")
            return TagResult(ref, True, remote.digest, None)
        return TagResult(ref, False, None, last_error)

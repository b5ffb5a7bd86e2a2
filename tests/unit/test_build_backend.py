"""DockerBackend's /build stream handling with a fake low-level API (no Docker)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest

from torchstack.docker_backend import DockerBackend, _chunks, unavailable


class FakeAPI:
    def __init__(self, chunks: list[dict[str, Any]], interrupt_after: int | None = None) -> None:
        self.chunks, self.interrupt_after = chunks, interrupt_after
        self.removed: list[str] = []
        self.closed = False
        self.build_kwargs: dict[str, Any] = {}

    def build(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.build_kwargs = kwargs
        return self._stream()

    def _stream(self) -> Iterator[dict[str, Any]]:
        try:
            for n, chunk in enumerate(self.chunks):
                if n == self.interrupt_after:
                    raise KeyboardInterrupt
                yield chunk
        finally:
            self.closed = True

    def inspect_image(self, ref: str) -> dict[str, Any]:
        return {"Id": "sha256:" + ref.removeprefix("sha256:").ljust(64, "0"), "Size": 1}

    def remove_container(self, container: str, force: bool = False) -> None:
        self.removed.append(container)

    def images(self, filters: dict[str, Any], quiet: bool) -> list[str]:
        assert filters == {"dangling": True} and quiet
        return ["sha256:" + "a" * 64, "sha256:" + "b" * 64]

    def remove_image(self, image: str, force: bool, noprune: bool) -> None:
        assert not force and not noprune
        self.removed.append(image)


def collect(api: FakeAPI) -> tuple[Any, list[str]]:
    lines: list[str] = []
    outcome = DockerBackend(api).build(io.BytesIO(b""), {"A": "1"}, lines.append)
    return outcome, lines


def test_lines_are_reassembled_and_the_image_id_found() -> None:
    api = FakeAPI([{"stream": "Step 1/2 : FROM x\n ---> abc"}, {"stream": "def012345678\n"},
                   {"stream": "Downloading 10%\rDownloading 100%\n"},
                   {"aux": {"ID": "sha256:feed"}}, {"stream": "Successfully built feed00000000\n"}])
    outcome, lines = collect(api)
    assert lines == ["Step 1/2 : FROM x", " ---> abcdef012345678", "Downloading 100%",
                     "Successfully built feed00000000"]
    assert outcome.steps == ("abcdef012345678",)
    assert outcome.image_id == "sha256:feed" + "0" * 60 and outcome.error is None
    kwargs = api.build_kwargs
    assert kwargs["custom_context"] and kwargs["rm"] and kwargs["forcerm"]
    assert kwargs["pull"] is False and "tag" not in kwargs and kwargs["buildargs"] == {"A": "1"}


def test_an_error_chunk_ends_the_build_after_its_lines() -> None:
    api = FakeAPI([{"stream": "Step 3/9 : RUN false\n"},
                   {"error": "short", "errorDetail": {"message": "The command returned 1"}},
                   {"stream": "never seen\n"}])
    outcome, lines = collect(api)
    assert outcome.image_id is None and outcome.error == "The command returned 1"
    assert lines == ["Step 3/9 : RUN false"]


def test_no_image_id_is_a_failure() -> None:
    outcome, _ = collect(FakeAPI([{"stream": "Step 1/1 : FROM x\n"}]))
    assert outcome.image_id is None and "without producing an image" in str(outcome.error)


def test_interrupt_removes_the_running_step_container_and_closes_the_stream() -> None:
    api = FakeAPI([{"stream": "Step 5/9 : RUN sleep 600\n"},
                   {"stream": " ---> Running in 0123456789ab\n"}, {"stream": "more\n"}],
                  interrupt_after=2)
    backend = DockerBackend(api)
    with pytest.raises(KeyboardInterrupt):
        backend.build(io.BytesIO(b""), {}, lambda line: None)
    assert api.removed == ["0123456789ab"] and api.closed
    assert backend.builds == 1


def test_remove_dangling_touches_only_the_builds_own_dangling_images() -> None:
    api = FakeAPI([])
    removed = DockerBackend(api).remove_dangling(("aaaaaaaaaaaa", "cccccccccccc"))
    assert removed == 1 and api.removed == ["sha256:" + "a" * 64]


def test_chunks_flush_a_last_partial_line() -> None:
    assert list(_chunks(iter([{"stream": "no newline"}]))) == [([], None, None),
                                                               (["no newline"], None, None)]


def test_unavailable_is_one_paragraph_on_starting_or_installing() -> None:
    error = unavailable(ConnectionError("Connection refused\nmore"))
    assert error.exit_code == 3
    assert error.message == ("cannot reach a Docker Engine (Connection refused); nothing was"
                             " built.")
    for how in ("sudo systemctl start docker", "dockerd &", "apt-get install docker.io"):
        assert how in str(error.tip)
    assert "\n" not in str(error.tip)

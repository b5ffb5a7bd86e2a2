"""Every check, in run order, and the rule that picks which ones run.

Selection, first rule that applies:
1. `--only a,b`: exactly those ids (in suite order), whatever the layers.
2. the expect file's "checks": exactly those ids (the host merged the ancestors' lists).
3. the expect file's "layers": every check with a layer in that list.
4. nothing given: every check whose layer is present here. "torch" is always present (every
   image is a torch image, and a missing torch must fail the checks, not select none);
   vision/nlp are present when their probe module can be found (vision -> torchvision,
   nlp -> transformers; importlib.util.find_spec, so nothing is imported).
An id that is not a check is a usage error (exit 2) with a "did you mean".
"""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Callable, Iterable, Sequence

from .expect import Expect
from .spec import CheckSpec
from .suite import (
    audio,
    base,
    compile,
    cuda,
    driver,
    hygiene,
    matmul,
    nccl,
    nlp,
    shm,
    train,
    versions,
    vision,
)

ALL_CHECKS: tuple[CheckSpec, ...] = (
    versions.CHECK,
    cuda.CHECK,
    driver.CHECK,
    matmul.CHECK,
    nccl.CHECK,
    shm.CHECK,
    base.CHECK,
    hygiene.CHECK,
    compile.CHECK,
    train.CHECK,
    vision.CHECK,
    nlp.CHECK,
    audio.CHECK,
)

CHECK_IDS: tuple[str, ...] = tuple(spec.id for spec in ALL_CHECKS)

LAYER_PROBES = {"vision": "torchvision", "nlp": "transformers"}


class SelectionError(Exception):
    """An unknown check id (CLI exit code 2)."""


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def present_layers(findable: Callable[[str], bool] = _findable) -> tuple[str, ...]:
    found = (layer for layer, probe in LAYER_PROBES.items() if findable(probe))
    return ("torch", *found)


def by_ids(specs: Sequence[CheckSpec], ids: Iterable[str], origin: str) -> list[CheckSpec]:
    known = {spec.id for spec in specs}
    wanted = [i.strip() for i in ids if i.strip()]
    for check_id in wanted:
        if check_id not in known:
            close = difflib.get_close_matches(check_id, sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            listing = ", ".join(sorted(known))
            raise SelectionError(
                f"unknown check id '{check_id}' in {origin}{hint} (known: {listing})"
            )
    return [spec for spec in specs if spec.id in wanted]


def by_layers(specs: Sequence[CheckSpec], layers: Iterable[str]) -> list[CheckSpec]:
    wanted = set(layers)
    return [spec for spec in specs if wanted.intersection(spec.layers)]


def select(
    expect: Expect,
    only: Sequence[str] | None = None,
    specs: Sequence[CheckSpec] = ALL_CHECKS,
    layers_here: Callable[[], tuple[str, ...]] = present_layers,
) -> list[CheckSpec]:
    if only:
        return by_ids(specs, only, "--only")
    if expect.checks is not None:
        return by_ids(specs, expect.checks, f"{expect.source or 'the expect file'} (checks)")
    if expect.layers is not None:
        return by_layers(specs, expect.layers)
    return by_layers(specs, layers_here())

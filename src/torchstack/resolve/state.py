"""The resolve stage: each planned ImageSpec -> one frozen ImageState, once per run.

An ImageState says what the matrix resolves an image to on this host: its rendered context's
hash, its chain hash (resolve/staging.py), the exact image it builds FROM, the local image carrying
its input hash (built by torchstack, or staged by `docker buildx bake`), its check records and the
tag decision. `plan`, `build`, `check`, `promote`, `bake` and `k8s` all read it; none works it
out again. Without a Docker Engine (`backend=None`, e.g. `plan`) no image ID is known, so no
input hash, record or release either.

A child's input hash needs the image ID its parent has, which a build may just have produced:
`Resolved.after_build` returns the states updated from a build's results, not a new resolve.
Each image renders once per run: the `Resolution` holds the rendered contexts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol, TypedDict

from torchstack.backend.identity import ImageInspect
from torchstack.config import kinds
from torchstack.config.contract import contract_for
from torchstack.config.model import CheckLevel, ImageSpec, Matrix, template_fields
from torchstack.errors import ConfigError
from torchstack.names import CHAIN_LABEL, HASH_LABEL
from torchstack.render.dockerfile import render_image
from torchstack.render.groups import LayerGroup
from torchstack.resolve.order import (
    BuildPlan,
    PlannedImage,
    PlanRow,
    context_hash,
    input_hash,
    make_plan,
    plan_rows,
)
from torchstack.resolve.outcome import suite_version
from torchstack.resolve.records import CheckRecord, RecordStore
from torchstack.resolve.staging import chain_hash, staging_tag
from torchstack.resolve.tags import TagDecision, decide

REGISTRY_ENV = "TORCHSTACK_REGISTRY"


class Images(Protocol):
    """What resolving asks the Docker Engine (docker_backend.DockerBackend; fakes in tests)."""

    def image_id(self, ref: str) -> str | None: ...
    def images_with_label(self, key: str, value: str) -> list[tuple[str, list[str]]]: ...
    def inspect(self, ref: str) -> ImageInspect | None: ...


class Resolution:
    """The rendered contexts of one run: each image is rendered (and hashed) once."""

    def __init__(self, matrix: Matrix) -> None:
        self.matrix = matrix
        self._files: dict[str, dict[str, str]] = {}
        self._hashes: dict[str, str] = {}
        self.renders = 0  # how many images were rendered (a test counts them)

    def files(self, spec: ImageSpec) -> dict[str, str]:
        if spec.id not in self._files:
            self._files[spec.id] = render_image(spec, self.matrix)
            self.renders += 1
        return self._files[spec.id]

    def context_hash(self, spec: ImageSpec) -> str:
        if spec.id not in self._hashes:
            self._hashes[spec.id] = context_hash(self.files(spec))
        return self._hashes[spec.id]

    def chain_hash(self, spec: ImageSpec) -> str:
        return chain_hash(self.matrix, spec, self.context_hash)

    def plan(self, globs: Iterable[str] = (), *, everything: bool = False) -> BuildPlan:
        return make_plan(self.matrix, list(globs), everything=everything,
                         context_of=self.context_hash)


@dataclass(frozen=True)
class Records:
    """The newest check record of the exact local image at each level (None: none)."""

    cpu: CheckRecord | None = None  # at cpu level or above
    gpu: CheckRecord | None = None

    def at(self, level: CheckLevel) -> CheckRecord | None:
        return self.gpu if level == "gpu" else self.cpu


@dataclass(frozen=True)
class ImageState:
    spec: ImageSpec
    requested: bool  # selected by the user, not only pulled in as an ancestor
    context_hash: str
    chain_hash: str
    groups: tuple[LayerGroup, ...] | None  # install layers from the lock; None: unlocked
    parent_image_id: str | None  # the exact image it builds FROM (a root: its OS base image)
    local_image_id: str | None  # the local image the matrix resolves it to; None: not built
    input_hash: str | None  # None while the parent's image ID is unknown
    records: Records
    decision: TagDecision

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def built(self) -> bool:
        return self.local_image_id is not None and self.input_hash is not None

    def release_record(self, required: CheckLevel) -> CheckRecord | None:
        """The record promotion decides on: the required level's, else the cpu one (which
        explains "candidate only")."""
        return self.records.at(required) or self.records.cpu


@dataclass(frozen=True)
class Resolved:
    """The states of one run, parents before children."""

    matrix: Matrix
    resolution: Resolution
    states: tuple[ImageState, ...]
    repository: str | None  # where tags go; None: not needed yet (read when first needed)
    # The environment push_repository reads then (Settings.environ): TORCHSTACK_REGISTRY.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def requested(self) -> list[ImageState]:
        return [s for s in self.states if s.requested]

    def by_id(self) -> dict[str, ImageState]:
        return {s.id: s for s in self.states}

    @property
    def plan(self) -> BuildPlan:
        return BuildPlan(tuple(PlannedImage(s.spec, s.context_hash, s.requested, s.groups)
                               for s in self.states))

    def after_build(self, built: Mapping[str, tuple[str | None, str | None]],
                    store: RecordStore | None, backend: Images | None = None) -> Resolved:
        """The states once a build ran: `built` maps ids to (image ID, input hash) of what the
        build produced or reused (None: failed or skipped); `backend` names a root's OS base
        image ID when the states were resolved without one."""
        states: dict[str, ImageState] = {}
        for state in self.states:
            if state.id not in built:
                states[state.id] = state
                continue
            image_id, wanted = built[state.id]
            parent = (states[state.spec.parent_id].local_image_id if state.spec.parent_id
                      else state.parent_image_id)
            if parent is None and state.spec.parent_id is None and backend is not None:
                parent = backend.image_id(state.spec.base_image)
            local = image_id if wanted else None
            states[state.id] = _finish(self.matrix, replace(
                state, parent_image_id=parent, local_image_id=local,
                input_hash=wanted if local else None), store, self._repository)
        return replace(self, states=tuple(states.values()))

    def _repository(self) -> str:
        return self.repository or push_repository(self.matrix, self.environ)


def push_repository(matrix: Matrix, environ: Mapping[str, str]) -> str:
    """Where candidates and releases go: $TORCHSTACK_REGISTRY, else matrix.yaml's registry.push."""
    repository = environ.get(REGISTRY_ENV) or matrix.push_repository
    problem = kinds.repository_problem(repository)
    if problem:  # matrix.yaml's was checked when loaded: this is the environment's
        raise ConfigError(f"{REGISTRY_ENV}={repository!r} {problem}",
                          tip=f"e.g. {REGISTRY_ENV}=127.0.0.1:5000/torchstack")
    return repository


def resolve(matrix: Matrix, globs: Iterable[str] = (), *, everything: bool = False,
            backend: Images | None = None, store: RecordStore | None = None,
            repository: str | None = None, resolution: Resolution | None = None,
            environ: Mapping[str, str] | None = None) -> Resolved:
    """The selected images and their ancestors, resolved against `backend` (None: no Engine).

    `store` (default: the matrix's record store) gives the check records; `repository` the
    push repository of the tag decision (default: push_repository, read only when an image is
    built, so that `plan` never needs it, from `environ`: Settings.environ).
    """
    resolution = resolution or Resolution(matrix)
    store = store if store is not None else RecordStore.for_matrix(matrix)
    plan = resolution.plan(globs, everything=everything)
    resolved = Resolved(matrix, resolution, (), repository, environ or {})
    states: dict[str, ImageState] = {}
    for planned in plan.images:
        spec = planned.spec
        chain = resolution.chain_hash(spec)
        parent = None
        if backend is not None:
            parent = (backend.image_id(spec.base_image) if spec.parent_id is None
                      else states[spec.parent_id].local_image_id)
        wanted = input_hash(planned.context_hash, parent) if parent else None
        local = (find_local(backend, matrix, spec, wanted, parent, chain)
                 if backend is not None and parent and wanted else None)
        state = ImageState(spec, planned.requested, planned.context_hash, chain, planned.groups,
                           parent, local, wanted if local else None, Records(),
                           _not_built(spec))
        states[spec.id] = _finish(matrix, state, store if backend else None,
                                  resolved._repository)
    return replace(resolved, states=tuple(states.values()))


def _not_built(spec: ImageSpec) -> TagDecision:
    return TagDecision(spec.id, None, (), "not built: run `torchstack build` first", True)


def _finish(matrix: Matrix, state: ImageState, store: RecordStore | None,
            repository: Callable[[], str]) -> ImageState:
    """Records and tag decision of a state whose image IDs are settled."""
    if not state.built or store is None:
        return replace(state, records=Records(), decision=_not_built(state.spec))
    docker_id, wanted = str(state.local_image_id), str(state.input_hash)
    records = Records(store.verdict(docker_id, wanted, suite_version(), "cpu"),
                      store.verdict(docker_id, wanted, suite_version(), "gpu"))
    required = matrix.promotion_level
    decision = decide(state.spec, matrix, repository(), wanted,
                      records.at(required) or records.cpu, required)
    return replace(state, records=records, decision=decision)


def find_local(backend: Images, matrix: Matrix, spec: ImageSpec, wanted: str, parent_id: str,
               chain: str) -> str | None:
    """The local image for this input hash: built by torchstack, or staged by bake."""
    return own_image(backend, matrix, spec, wanted) or adopt_staged(backend, spec, parent_id,
                                                                     chain)


def own_image(backend: Images, matrix: Matrix, spec: ImageSpec, wanted: str) -> str | None:
    """The image torchstack built (or pulled as a candidate) for this input hash.

    Images built FROM ours inherit the hash label, so the label alone proves nothing: ours
    carries our local tag or the candidate tag of exactly this hash, or no tag at all (its tag
    was moved away); an image under someone else's tag is theirs.
    """
    candidate = matrix.tags.candidate.format(**template_fields(spec, hash12=wanted[:12]))
    for image_id, tags in backend.images_with_label(HASH_LABEL, wanted):
        ours = [t for t in tags if t == matrix.local_tag(spec.id) or t.endswith(f":{candidate}")]
        if ours or not tags:
            return image_id
    return None


def adopt_staged(backend: Images, spec: ImageSpec, parent_id: str, chain: str) -> str | None:
    """The image bake built for `spec` (chain hash `chain`) on top of `parent_id`, or None."""
    suffix = f":{staging_tag(spec, chain)}"
    parent_layers = _layers(backend, parent_id)
    for image_id, tags in backend.images_with_label(CHAIN_LABEL, chain):
        if not any(tag.endswith(suffix) for tag in tags):
            continue  # built FROM a staged image: inherits the label, but is not it
        layers = _layers(backend, image_id)
        if parent_layers and layers[: len(parent_layers)] == parent_layers:
            return image_id
    return None


def _layers(backend: Images, image_id: str) -> list[str]:
    inspected = backend.inspect(image_id) or {}
    return list(inspected.get("RootFS", {}).get("Layers") or [])


# What `plan --json` lists: everything a workflow reads, so CI needs no inline Python --------
class ContractColumns(TypedDict):
    """Where the image can run (its contract): driver floor and compiled GPU archs. Not a
    label, since labels are inputs of the image hash. Flat keys, as a fromJSON matrix wants."""

    contract_driver_min: str
    contract_arch: list[str] | None
    contract_ptx: str | None
    contract_arch_flags: list[str] | None
    contract_arch_sources: list[str]


class PlanJsonRow(PlanRow, ContractColumns):
    """One image as `torchstack plan --json` lists it: its row plus the chain and image IDs."""

    ancestors: list[str]  # root first; [] for a root
    root: str
    base_image: str  # the OS base image at the bottom of the chain
    local_tag: str
    chain_hash: str
    candidate_template: str
    parent_image_id: str | None  # these three: null without a Docker Engine
    local_image_id: str | None
    input_hash: str | None


def _contract_columns(spec: ImageSpec) -> ContractColumns:
    contract = contract_for(spec.torch, spec.cuda).to_json()
    return ContractColumns(
        contract_driver_min=contract["driver_min"], contract_arch=contract["arch"],
        contract_ptx=contract["ptx"], contract_arch_flags=contract["arch_flags"],
        contract_arch_sources=contract["arch_sources"])


def plan_json(resolved: Resolved) -> list[PlanJsonRow]:
    """One flat dict per image (plan.plan_rows plus the chain, tags and image IDs)."""
    matrix = resolved.matrix
    specs = matrix.by_id()
    rows = []
    for row, state in zip(plan_rows(resolved.plan), resolved.states, strict=True):
        ancestors = [a.id for a in matrix.with_ancestors([state.spec])[:-1]]
        root = specs[ancestors[0]] if ancestors else state.spec
        rows.append(PlanJsonRow(
            **row, ancestors=ancestors, root=root.id, base_image=root.base_image,
            local_tag=matrix.local_tag(state.id), chain_hash=state.chain_hash,
            # release_tag and aliases come from plan_rows; flat, as a fromJSON matrix wants
            candidate_template=matrix.tags.candidate,
            parent_image_id=state.parent_image_id, local_image_id=state.local_image_id,
            input_hash=state.input_hash, **_contract_columns(state.spec)))
    return rows

"""Which tags an image may get, computed from facts read inside it. Pure: no Docker.

A release tag is a promise that this exact image passed the level of checks the policy asks
for; the versions in it come from the image itself and must equal what the matrix asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from torchstack.config.compat import cudnn_major
from torchstack.config.expected import expected_versions
from torchstack.config.model import CheckLevel, ImageSpec, Matrix, template_fields
from torchstack.resolve.records import CheckRecord


@dataclass(frozen=True)
class TagDecision:
    image_id: str
    candidate: str | None  # full reference, pushed by any builder once the image is built
    releases: tuple[str, ...]  # full references; empty when the image may not be released
    reason: str  # why it is (not) released, for the summary
    # Not promotable at all (unbuilt, unchecked, failed, facts wrong), as opposed to a
    # candidate waiting for the level the policy asks for.
    refused: bool = False


def fact_mismatches(spec: ImageSpec, facts: Mapping[str, object]) -> list[str]:
    """Each version the image reports that differs from what the matrix asked for."""
    wanted = expected_versions(spec)
    del wanted["python"]  # the image reports a patch release too: compared below by prefix
    problems = []
    for key, expected in wanted.items():
        if expected is not None and _normal(key, facts.get(key)) != _normal(key, expected):
            problems.append(
                f"{key} is {facts.get(key)!r} inside the image, matrix asks {expected!r}")
    python = str(facts.get("python") or "")
    if not (python == spec.python or python.startswith(spec.python + ".")):
        problems.append(f"python is {python!r} inside the image, matrix asks {spec.python!r}")
    return problems


def _normal(key: str, value: object) -> str:
    text = "" if value is None else str(value)
    if key in ("torchvision", "torchaudio"):
        return text.split("+")[0]  # their local label (+cu126) follows torch's
    return text


def fields_from_facts(spec: ImageSpec, facts: Mapping[str, object]) -> dict[str, str]:
    """Template fields with the versions replaced by what the image reports."""
    torch = str(facts["torch"]).split("+")[0]
    cudnn = int(str(facts["cudnn"])) if facts.get("cudnn") else None
    python = ".".join(str(facts["python"]).split(".")[:2])
    return template_fields(spec, torch=torch, torch_minor=".".join(torch.split(".")[:2]),
                           cuda=str(facts["cuda"]), python=python,
                           cudnn_major=str(cudnn_major(cudnn)) if cudnn else "X")


def candidate_ref(spec: ImageSpec, matrix: Matrix, repository: str, input_hash: str) -> str:
    """The candidate tag of one build (`<id>-<hash12>`): what k8s runs and record import proves."""
    fields = template_fields(spec, hash12=input_hash[:12])
    return f"{repository}:{matrix.tags.candidate.format(**fields)}"


def decide(spec: ImageSpec, matrix: Matrix, repository: str, input_hash: str | None,
           record: CheckRecord | None, required: CheckLevel) -> TagDecision:
    if input_hash is None:
        return TagDecision(spec.id, None, (), "not built: run `torchstack build` first", True)
    candidate = candidate_ref(spec, matrix, repository, input_hash)
    if record is None:
        return TagDecision(spec.id, None, (), "not checked: run `torchstack check` first", True)
    if not record.passed:
        return TagDecision(spec.id, None, (),
                           f"checks failed at level {record.level}: no tag moves", True)
    if not record.satisfies(required):
        return TagDecision(spec.id, candidate, (),
                           f"passed {record.level} checks; a release needs {required}"
                           f" (run `nox -s gpu_smoke` on a GPU runner): candidate only")
    problems = fact_mismatches(spec, record.facts)
    if problems:
        return TagDecision(spec.id, candidate, (),
                           "facts disagree with the matrix: " + "; ".join(problems), True)
    facts_fields = fields_from_facts(spec, record.facts)
    names = [matrix.tags.release.format(**facts_fields)]
    names += [
        alias.template.format(**facts_fields) for alias in matrix.tags.aliases
        if alias.applies(default=spec.default, flavor=spec.flavor)
    ]
    releases = tuple(f"{repository}:{name}" for name in dict.fromkeys(names))
    return TagDecision(spec.id, candidate, releases, f"passed {record.level} checks")

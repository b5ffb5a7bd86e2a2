"""An image's contract -> the required node affinity that keeps it off nodes it cannot run on. Pure.

Kubernetes ORs nodeSelectorTerms and ANDs the expressions inside one term, and `Gt`/`Lt`
compare integers strictly. So "driver >= 570.26" becomes two terms, `major > 570` or
`major == 570 and minor > 25` (a third on the revision when the minimum has one), each ANDed
with one clause of the compute-capability set the contract admits. The whole set is repeated
with the deprecated driver label keys of older GPU feature discovery: a node carries one key
set or the other, and terms are ORed. A node without the labels matches no term.
"""

from __future__ import annotations

from dataclasses import dataclass

from torchstack.config.contract import Capability, Contract

# NVIDIA GPU feature discovery (k8s-device-plugin v0.15+, GPU Operator).
DRIVER_KEYS = ("nvidia.com/cuda.driver-version.major", "nvidia.com/cuda.driver-version.minor",
               "nvidia.com/cuda.driver-version.revision")
# GFD <= v0.8 and nodes labelled before the rename: deprecated, still emitted.
DEPRECATED_DRIVER_KEYS = ("nvidia.com/cuda.driver.major", "nvidia.com/cuda.driver.minor",
                          "nvidia.com/cuda.driver.rev")
COMPUTE_MAJOR = "nvidia.com/gpu.compute.major"
COMPUTE_MINOR = "nvidia.com/gpu.compute.minor"

Expression = dict[str, object]


@dataclass(frozen=True)
class Clause:
    """Expressions that must all hold (one AND group)."""

    expressions: tuple[tuple[str, str, tuple[str, ...]], ...]  # (key, operator, values)

    def render(self) -> list[Expression]:
        return [{"key": k, "operator": op, "values": list(v)} for k, op, v in self.expressions]


def driver_clauses(driver_min: str, keys: tuple[str, str, str]) -> list[Clause]:
    """Alternatives that together mean "driver >= driver_min", compared part by part."""
    major_key, minor_key, revision_key = keys
    parts = [int(p) for p in driver_min.split(".")]
    major = parts[0]
    minor = parts[1] if len(parts) > 1 else 0
    revision = parts[2] if len(parts) > 2 else 0
    clauses = [Clause(((major_key, "Gt", (str(major),)),))]
    same_major = (major_key, "In", (str(major),))
    if minor == 0 and revision == 0:
        return [Clause((same_major,)), *clauses]
    # With a revision, a higher minor suffices and the same minor needs the revision.
    floor = minor if revision else minor - 1
    clauses.append(Clause((same_major, (minor_key, "Gt", (str(floor),)))))
    if revision:
        clauses.append(Clause((same_major, (minor_key, "In", (str(minor),)),
                               (revision_key, "Gt", (str(revision - 1),)))))
    return clauses


def capability_clauses(sass: tuple[Capability, ...], ptx: Capability | None) -> list[Clause]:
    """Alternatives that mean "a GPU this code runs on": for SASS the same major at a minor
    >= the lowest built minor, for PTX any capability at or above it (newer majors JIT)."""
    lowest: dict[int, int] = {}
    for major, minor in sass:
        lowest[major] = min(minor, lowest.get(major, minor))
    if ptx is not None:
        lowest[ptx[0]] = min(ptx[1], lowest.get(ptx[0], ptx[1]))
    from_zero = sorted(m for m, low in lowest.items() if low == 0)
    clauses = []
    if from_zero:
        clauses.append(Clause(((COMPUTE_MAJOR, "In", tuple(str(m) for m in from_zero)),)))
    clauses.extend(Clause(((COMPUTE_MAJOR, "In", (str(major),)),
                           (COMPUTE_MINOR, "Gt", (str(lowest[major] - 1),))))
                   for major in sorted(m for m, low in lowest.items() if low > 0))
    if ptx is not None:
        clauses.append(Clause(((COMPUTE_MAJOR, "Gt", (str(ptx[0]),)),)))
    return clauses


def node_affinity(contract: Contract) -> dict[str, object]:
    """The pod's `affinity` (required during scheduling, ignored during execution)."""
    arch = ([Clause(())] if contract.sass is None
            else capability_clauses(contract.sass, contract.ptx))
    terms = [{"matchExpressions": driver.render() + gpu.render()}
             for keys in (DRIVER_KEYS, DEPRECATED_DRIVER_KEYS)
             for driver in driver_clauses(contract.driver_min, keys)
             for gpu in arch]
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": terms}}}

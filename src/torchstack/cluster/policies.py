"""Admission policies that read torchstack's signed verdicts: Kyverno and sigstore's
policy-controller.

- Kyverno `ClusterPolicy` (kyverno.io/v1): `verifyImages[].attestations` with the verdict's
  predicate type, the public key as attestor with the transparency log ignored (the verdicts
  are signed offline), and `conditions` on the predicate. Kyverno (v1.19,
  pkg/engine/internal/imageverifier.go) evaluates the conditions on EVERY statement of the
  type and needs all to hold: so any failing verdict on a digest rejects it (stricter than
  "newest wins"), and it cannot require that a gpu-level statement exists, so a Kyverno
  policy is rendered for the cpu level only (with GPU models: each gpu-level statement must
  name one of them).
- policy-controller `ClusterImagePolicy` (policy.sigstore.dev/v1beta1): a key authority (no
  `ctlog`: policy-controller then skips the transparency log) whose attestation policy, in
  CUE, admits when a verdict statement of the wanted level says pass (on an allowed model):
  policy-controller (v0.15, pkg/webhook/validator.go) admits when ANY statement of the type
  satisfies the policy, so an older pass still admits after a newer failure.
docs/attestations.md says what "newest wins" means for each and how to revoke.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from torchstack.errors import ConfigError
from torchstack.release.statements import VERDICT_PREDICATE
from torchstack.resolve.records import LEVEL_RANK

POLICY_NAME = "torchstack-verdict"
# What nvidia-smi names a GPU ("NVIDIA H100 80GB HBM3", "Tesla V100-SXM2-16GB"). Nothing else
# is let into a policy: a quote or backslash would end the CUE string, `{{` is a Kyverno
# variable and `*`/`?` are wildcards in Kyverno's AnyIn (admitting any GPU).
GPU_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()/+-]{0,127}$")
GPU_MODEL_TIP = "write the model as nvidia-smi prints it, e.g. --gpu-model 'NVIDIA H100 80GB HBM3'"
# An image reference with the glob characters both Kyverno and policy-controller take.
IMAGE_GLOB = re.compile(r"^[A-Za-z0-9*?][A-Za-z0-9._:/@*?-]{0,299}$")
IMAGE_GLOB_TIP = "e.g. --match '127.0.0.1:5000/torchstack*' or --match 'ghcr.io/org/**'"


def gpu_model_problem(model: str) -> str | None:
    if not GPU_MODEL.fullmatch(model):
        return ("is not a GPU model name (letters, digits, spaces and . _ ( ) / + -, at most"
                " 128, starting with a letter or digit)")
    return None


def image_glob_problem(glob: str) -> str | None:
    if not IMAGE_GLOB.fullmatch(glob):
        return ("is not an image reference glob (host[:port]/repository[:tag] with * and ?;"
                " no spaces, quotes or braces)")
    return None


@dataclass(frozen=True)
class PolicyRequest:
    public_key_pem: str
    level: str = "cpu"
    gpu_models: tuple[str, ...] = ()
    images: tuple[str, ...] = ("*",)  # image reference globs the policy applies to

    @property
    def levels(self) -> list[str]:
        """The levels that satisfy `level` (gpu also satisfies cpu)."""
        return [name for name, rank in LEVEL_RANK.items() if rank >= LEVEL_RANK[self.level]]


def kyverno_policy(request: PolicyRequest) -> dict[str, object]:
    if request.level != "cpu":
        raise ConfigError(
            "Kyverno cannot require a gpu-level verdict: it checks its conditions on every"
            " verdict statement of an image, and every image also carries cpu-level ones",
            tip="use --format sigstore for --level gpu (policy-controller admits when one"
                " statement satisfies it), or run `torchstack verify --level gpu` before"
                " deploying; --gpu-model works with Kyverno at the cpu level")
    every: list[dict[str, object]] = [
        {"key": "{{ verdict }}", "operator": "Equals", "value": "pass",
         "message": "a torchstack verdict on this image says fail"}]
    conditions: list[dict[str, object]] = [{"all": every}]
    if request.gpu_models:
        conditions.append({"any": [
            {"key": "{{ level }}", "operator": "NotEquals", "value": "gpu"},
            {"key": "{{ node.gpuModel }}", "operator": "AnyIn",
             "value": list(request.gpu_models),
             "message": "the gpu verdict ran on another GPU model"}]})
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": POLICY_NAME, "annotations": {
            "policies.kyverno.io/description":
                "Admit only images whose torchstack verdicts (signed in-toto attestations)"
                f" pass at level {request.level}."}},
        "spec": {
            "webhookTimeoutSeconds": 30,
            "background": False,
            "rules": [{
                "name": "torchstack-verdict",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "verifyImages": [{
                    "imageReferences": list(request.images),
                    "failureAction": "Enforce",
                    "mutateDigest": True,
                    "verifyDigest": True,
                    "required": True,
                    "attestations": [{
                        "type": VERDICT_PREDICATE,
                        "attestors": [{"count": 1, "entries": [{"keys": {
                            "publicKeys": request.public_key_pem,
                            "rekor": {"ignoreTlog": True},
                            "ctlog": {"ignoreSCT": True}}}]}],
                        "conditions": conditions,
                    }],
                }],
            }],
        },
    }


def cue_policy(request: PolicyRequest) -> str:
    """The CUE a verdict statement must unify with: pass, at an allowed level (and model)."""
    levels = " | ".join(json.dumps(level) for level in request.levels)
    lines = [f"predicateType: {json.dumps(VERDICT_PREDICATE)}", "predicate: {",
             '  verdict: "pass"', f"  level: {levels}"]
    if request.gpu_models:
        models = " | ".join(json.dumps(model) for model in request.gpu_models)
        lines.append(f"  node: gpuModel: {models}")
    return "\n".join([*lines, "}"]) + "\n"


def sigstore_policy(request: PolicyRequest) -> dict[str, object]:
    return {
        "apiVersion": "policy.sigstore.dev/v1beta1",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": POLICY_NAME},
        "spec": {
            "images": [{"glob": glob} for glob in request.images],
            "authorities": [{
                "name": "torchstack",
                # No ctlog: policy-controller skips the transparency log for this key.
                "key": {"data": request.public_key_pem, "hashAlgorithm": "sha256"},
                "attestations": [{
                    "name": "verdict",
                    "predicateType": VERDICT_PREDICATE,
                    "policy": {"type": "cue", "data": cue_policy(request)},
                }],
            }],
        },
    }

"""`torchstack policy`: the rendered admission policies validate against their CRDs' published
schemas (tests/data/crds, see SOURCE.md there), and the Kyverno conditions, evaluated with
JMESPath the way Kyverno applies them (every verdict statement must satisfy them), admit a
pass and refuse a failure and another GPU model.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import jmespath
import jsonschema
import pytest
import yaml

from tests.paths import REPO
from torchstack.cli import main
from torchstack.cluster.policies import PolicyRequest, kyverno_policy, sigstore_policy
from torchstack.errors import ConfigError
from torchstack.release.keys import generate
from torchstack.release.statements import VERDICT_PREDICATE, Verdict, verdict_predicate
from torchstack.resolve.records import CheckRecord

CRDS = REPO / "tests" / "data" / "crds"
H100, A100 = "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB"


def strict(schema: Any) -> Any:
    """The schema as the API server applies it with strict field validation: an object with
    listed properties takes no others (unless it preserves unknown fields)."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


def with_object_meta(schema: dict[str, Any]) -> dict[str, Any]:
    """apiVersion, kind and metadata are every object's, whether a CRD lists them or not."""
    implicit = {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                "metadata": {"type": "object"}}
    return {**schema, "properties": {**implicit, **schema["properties"]}}


def kyverno_schema() -> Any:
    path = CRDS / "kyverno-clusterpolicy" / "clusterpolicy-v1.schema.json"
    return strict(with_object_meta(json.loads(path.read_text(encoding="utf-8"))))


def sigstore_schema() -> Any:
    crd = yaml.safe_load((CRDS / "policy-controller-clusterimagepolicy"
                          / "300-clusterimagepolicy.yaml").read_text(encoding="utf-8"))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    return strict(with_object_meta(version["schema"]["openAPIV3Schema"]))


@pytest.fixture(scope="module")
def public_pem() -> str:
    return generate(None)[1].decode()


def test_the_kyverno_policy_validates_against_the_clusterpolicy_crd(public_pem: str) -> None:
    policy: dict[str, Any] = kyverno_policy(PolicyRequest(public_pem, gpu_models=(H100,),
                                          images=("127.0.0.1:5000/torchstack*",)))
    validator = jsonschema.Draft7Validator(kyverno_schema())
    assert list(validator.iter_errors(policy)) == []
    # The strict schema does catch a misspelt field (so the check above can fail).
    broken = copy.deepcopy(policy)
    broken["spec"]["rules"][0]["verifyImages"][0]["atestations"] = []
    assert list(validator.iter_errors(broken))
    entry = policy["spec"]["rules"][0]["verifyImages"][0]
    assert entry["attestations"][0]["type"] == VERDICT_PREDICATE
    keys = entry["attestations"][0]["attestors"][0]["entries"][0]["keys"]
    assert keys["publicKeys"] == public_pem and keys["rekor"] == {"ignoreTlog": True}


def test_the_sigstore_policy_validates_against_the_clusterimagepolicy_crd(
        public_pem: str) -> None:
    policy: dict[str, Any] = sigstore_policy(PolicyRequest(public_pem, "gpu", (H100, A100)))
    validator = jsonschema.Draft7Validator(sigstore_schema())
    assert list(validator.iter_errors(policy)) == []
    broken = copy.deepcopy(policy)
    broken["spec"]["authorities"][0]["key"]["pem"] = public_pem
    assert list(validator.iter_errors(broken))
    (authority,) = policy["spec"]["authorities"]
    assert "ctlog" not in authority  # policy-controller then skips the transparency log
    cue = authority["attestations"][0]["policy"]["data"]
    assert 'level: "gpu"\n' in cue and f'node: gpuModel: "{H100}" | "{A100}"' in cue


def predicate(level: str, passed: bool, gpu: str | None = None) -> dict[str, Any]:
    """A verdict predicate as torchstack builds it from a check record."""
    facts: dict[str, Any] = {"torch": "2.9.1", "gpus": [{"name": gpu}] if gpu else []}
    record = CheckRecord(image_id="img", docker_id="sha256:" + "1" * 64, input_hash="h",
                         suite_version="1.0", level=level, passed=passed,  # type: ignore[arg-type]
                         facts=facts, summary={}, report="r/report.json",
                         checked_at=time.time())
    return verdict_predicate(Verdict(record, None, (), {}))


def holds(condition: dict[str, Any], document: dict[str, Any]) -> bool:
    expression = condition["key"].strip()
    assert expression.startswith("{{") and expression.endswith("}}")
    found = jmespath.search(expression[2:-2].strip(), document)
    operator, value = condition["operator"], condition["value"]
    if operator == "Equals":
        return bool(found == value)
    if operator == "NotEquals":
        return bool(found != value)
    if operator == "AnyIn":
        return found in value if not isinstance(found, list) else any(f in value for f in found)
    raise AssertionError(f"operator {operator} is not evaluated here")


def kyverno_admits(policy: dict[str, Any], statements: list[dict[str, Any]]) -> bool:
    """Kyverno v1.19 (imageverifier.go verifyAttestation): at least one statement of the type,
    and EVERY one satisfies every condition block (all: each; any: at least one)."""
    (attestation,) = policy["spec"]["rules"][0]["verifyImages"][0]["attestations"]
    if not statements:
        return False
    for document in statements:
        for block in attestation["conditions"]:
            if not all(holds(c, document) for c in block.get("all", [])):
                return False
            if block.get("any") and not any(holds(c, document) for c in block["any"]):
                return False
    return True


def test_kyverno_conditions_admit_a_pass_and_refuse_a_failure_and_another_gpu(
        public_pem: str) -> None:
    policy: dict[str, Any] = kyverno_policy(PolicyRequest(public_pem, gpu_models=(H100,)))
    cpu_pass = predicate("cpu", True)
    assert kyverno_admits(policy, [cpu_pass])
    assert kyverno_admits(policy, [cpu_pass, predicate("gpu", True, H100)])
    assert not kyverno_admits(policy, [cpu_pass, predicate("gpu", False, H100)])  # a failure
    assert not kyverno_admits(policy, [predicate("cpu", False)])
    assert not kyverno_admits(policy, [cpu_pass, predicate("gpu", True, A100)])  # another GPU
    assert not kyverno_admits(policy, [])
    anywhere = kyverno_policy(PolicyRequest(public_pem))
    assert kyverno_admits(anywhere, [cpu_pass, predicate("gpu", True, A100)])


def test_kyverno_at_gpu_level_is_refused_with_the_way_out(public_pem: str, tmp_path: Path,
                                                          capsys: Any) -> None:
    with pytest.raises(ConfigError, match="every verdict statement"):
        kyverno_policy(PolicyRequest(public_pem, "gpu"))
    key = tmp_path / "k.pub"
    key.write_text(public_pem)
    assert main(["policy", "--key", str(key), "--level", "gpu"]) == 2
    assert "--format sigstore" in capsys.readouterr().err
    assert main(["policy", "--key", str(key), "--format", "sigstore", "--level", "gpu",
                 "--gpu-model", H100, "--match", "ghcr.io/org/torchstack*"]) == 0
    (document,) = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert document["spec"]["images"] == [{"glob": "ghcr.io/org/torchstack*"}]
    assert main(["policy", "--key", str(tmp_path / "missing.pub")]) == 2

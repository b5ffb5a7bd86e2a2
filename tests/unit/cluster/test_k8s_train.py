"""`torchstack k8s train` and node affinity: each image lands only on nodes it can run on.

The placement table is written out by hand from the compat facts (driver floors of the CUDA
release notes, arch lists of PyTorch's build scripts) and judged by
tests/unit/cluster/node_affinity.py,
an evaluator written from the Kubernetes API reference, not by torchstack's own code.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from tests.paths import REPO
from tests.unit.cluster.node_affinity import expression_holds, schedulable, term_matches
from torchstack.cli import main
from torchstack.cluster.manifests import ClusterOptions, job_name, render_manifests
from torchstack.config.matrix import load_matrix
from torchstack.config.model import Matrix

CRDS = REPO / "tests" / "data" / "crds"
IMAGE = "torch2.9.1-cu128-py3.11-base"
DIGEST = "sha256:" + "0123456789abcdef" * 4
PINNED = f"127.0.0.1:5000/torchstack@{DIGEST}"
VERSIONS = [latest_version(), "1.28.0"]


def gfd(driver: str, capability: str, product: str, *, deprecated: bool = False) -> dict[str, str]:
    """Labels as NVIDIA GPU feature discovery writes them (the deprecated driver keys of
    GFD <= v0.8 when `deprecated`; the compute keys kept their names)."""
    major, minor, revision = driver.split(".")
    labels = {"nvidia.com/gpu.product": product, "nvidia.com/gpu.count": "8",
              "nvidia.com/gpu.compute.major": capability.split(".")[0],
              "nvidia.com/gpu.compute.minor": capability.split(".")[1],
              "nvidia.com/mig.strategy": "single"}
    if deprecated:
        labels.update({"nvidia.com/cuda.driver.major": major,
                       "nvidia.com/cuda.driver.minor": minor,
                       "nvidia.com/cuda.driver.rev": revision})
    else:
        labels.update({"nvidia.com/cuda.driver-version.major": major,
                       "nvidia.com/cuda.driver-version.minor": minor,
                       "nvidia.com/cuda.driver-version.revision": revision,
                       "nvidia.com/cuda.driver-version.full": driver})
    return labels


NODES = {
    "h100-570": gfd("570.124.06", "9.0", "NVIDIA-H100-80GB-HBM3"),
    "h200-580": gfd("580.95.05", "9.0", "NVIDIA-H200"),
    "v100-550": gfd("550.163.01", "7.0", "Tesla-V100-SXM2-32GB"),
    "a100-535": gfd("535.247.01", "8.0", "NVIDIA-A100-SXM4-80GB"),
    "rtxpro6000-580": gfd("580.95.05", "12.0",
                          "NVIDIA-RTX-PRO-6000-Blackwell-Server-Edition"),
    "h100-575-old-keys": gfd("575.57.08", "9.0", "NVIDIA-H100-80GB-HBM3", deprecated=True),
    "no-labels": {"kubernetes.io/hostname": "cpu-1"},
}
# image -> the nodes it may land on. Written by hand: driver floors 12.8 >= 570.26,
# 12.6 >= 560.28.03, 13.0 >= 580.65.06, 11.8 >= 520.61.05, 12.1 >= 530.30.02; arch lists
# cu128 7.0-12.0 SASS, cu126 5.0-9.0, cu130 7.5-12.0 + PTX, cu118 3.7-9.0, cu121 5.0-9.0.
ON_128 = {"h100-570", "h200-580", "rtxpro6000-580", "h100-575-old-keys"}
OLD_DRIVERS = {"h100-570", "h200-580", "v100-550", "a100-535", "h100-575-old-keys"}
PLACEMENT = {
    "torch2.9.1-cu128-py3.11-base": ON_128,
    "torch2.9.1-cu128-py3.11-vision": ON_128,
    "torch2.9.1-cu128-py3.11-nlp": ON_128,
    "torch2.9.1-cu126-py3.11-base": {"h100-570", "h200-580", "h100-575-old-keys"},
    "torch2.9.1-cu126-py3.11-vision": {"h100-570", "h200-580", "h100-575-old-keys"},
    "torch2.9.1-cu126-py3.11-nlp": {"h100-570", "h200-580", "h100-575-old-keys"},
    "torch2.9.1-cu130-py3.11-base": {"h200-580", "rtxpro6000-580"},
    "torch2.9.1-cu130-py3.11-vision": {"h200-580", "rtxpro6000-580"},
    "torch2.9.1-cu130-py3.11-nlp": {"h200-580", "rtxpro6000-580"},
    "torch2.7.1-cu118-py3.11-base": OLD_DRIVERS,
    "torch2.5.1-cu121-py3.11-base": OLD_DRIVERS,
}


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix(REPO / "matrix.yaml")


def validation_pod(matrix: Matrix, image_id: str, **options: Any) -> dict[str, Any]:
    docs: list[dict[str, Any]] = render_manifests(matrix.by_id()[image_id], matrix, PINNED,
                                                  ClusterOptions(**options))
    (job,) = [d for d in docs if d["kind"] == "Job"]
    pod: dict[str, Any] = job["spec"]["template"]["spec"]
    return pod


def train_docs(capsys: pytest.CaptureFixture[str], *argv: str,
               command: tuple[str, ...] = ("python", "train.py")) -> list[dict[str, Any]]:
    code = main(["--matrix", str(REPO / "matrix.yaml"), "k8s", "train", IMAGE, "--image-ref",
                 PINNED, *argv, "--", *command])
    out = capsys.readouterr().out
    assert code == 0
    return [d for d in yaml.safe_load_all(out) if d]


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


# --- the evaluator itself --------------------------------------------------------------------

def test_evaluator_follows_the_kubernetes_operators() -> None:
    labels = {"a": "5", "b": "x", "c": "07"}
    assert expression_holds({"key": "b", "operator": "In", "values": ["x", "y"]}, labels)
    assert not expression_holds({"key": "z", "operator": "In", "values": ["x"]}, labels)
    assert expression_holds({"key": "z", "operator": "NotIn", "values": ["x"]}, labels)
    assert not expression_holds({"key": "b", "operator": "NotIn", "values": ["x"]}, labels)
    assert expression_holds({"key": "a", "operator": "Exists"}, labels)
    assert expression_holds({"key": "z", "operator": "DoesNotExist"}, labels)
    assert not expression_holds({"key": "a", "operator": "DoesNotExist"}, labels)
    assert expression_holds({"key": "a", "operator": "Gt", "values": ["4"]}, labels)
    assert not expression_holds({"key": "a", "operator": "Gt", "values": ["5"]}, labels)  # strict
    assert expression_holds({"key": "c", "operator": "Gt", "values": ["6"]}, labels)  # "07" is 7
    assert expression_holds({"key": "a", "operator": "Lt", "values": ["6"]}, labels)
    assert not expression_holds({"key": "a", "operator": "Lt", "values": ["5"]}, labels)
    # A label that is not an integer never satisfies Gt or Lt, nor does a missing one.
    for operator in ("Gt", "Lt"):
        assert not expression_holds({"key": "b", "operator": operator, "values": ["0"]}, labels)
        assert not expression_holds({"key": "z", "operator": operator, "values": ["0"]}, labels)
    # Expressions are ANDed; an empty term matches nothing; terms are ORed.
    assert not term_matches({"matchExpressions": [
        {"key": "a", "operator": "Exists"}, {"key": "z", "operator": "Exists"}]}, labels)
    assert not term_matches({"matchExpressions": []}, labels)
    pod = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "z", "operator": "Exists"}]},
                              {"matchExpressions": [{"key": "a", "operator": "Exists"}]}]}}}}
    assert schedulable(pod, labels)


# --- placement ---------------------------------------------------------------------------------

def test_every_image_lands_exactly_where_it_can_run(matrix: Matrix) -> None:
    assert set(PLACEMENT) == {s.id for s in matrix.images}, "the table covers every image"
    placed = {image_id: {n for n, labels in NODES.items()
                         if schedulable(validation_pod(matrix, image_id), labels)}
              for image_id in PLACEMENT}
    assert placed == PLACEMENT


def test_the_default_images_are_cu128_and_land_on_the_issue_s_nodes(matrix: Matrix) -> None:
    defaults = [s.id for s in matrix.images if s.default]
    assert defaults and all("-cu128-" in d for d in defaults)
    for image_id in defaults:
        pod = validation_pod(matrix, image_id)
        assert {n for n, labels in NODES.items() if schedulable(pod, labels)} == {
            "h100-570", "h200-580", "rtxpro6000-580", "h100-575-old-keys"}


@pytest.mark.parametrize(("image_id", "driver", "capability", "lands"), [
    (IMAGE, "570.26.00", "9.0", True),  # exactly the floor
    (IMAGE, "570.20.01", "9.0", False),  # 570.26 admits 570.124 but not 570.20
    (IMAGE, "569.99.99", "9.0", False),
    (IMAGE, "570.124.06", "8.9", True),  # sm_86 SASS runs on 8.9
    (IMAGE, "570.124.06", "6.1", False),  # Pascal: cu128 starts at 7.0
    (IMAGE, "580.95.05", "13.0", False),  # no PTX: a newer major cannot JIT
    ("torch2.9.1-cu130-py3.11-base", "580.95.05", "13.0", True),  # PTX compute_120 JITs
    ("torch2.9.1-cu130-py3.11-base", "580.95.05", "7.0", False),  # Volta dropped
    ("torch2.9.1-cu130-py3.11-base", "580.95.05", "7.5", True),
    ("torch2.9.1-cu130-py3.11-base", "580.65.06", "9.0", True),  # revision at the floor
    ("torch2.9.1-cu130-py3.11-base", "580.65.05", "9.0", False),
    ("torch2.9.1-cu126-py3.11-base", "560.28.03", "9.0", True),
    ("torch2.9.1-cu126-py3.11-base", "560.28.02", "9.0", False),
    ("torch2.9.1-cu126-py3.11-base", "560.29.00", "5.2", True),  # sm_50 SASS runs on 5.2
    ("torch2.7.1-cu118-py3.11-base", "520.61.05", "3.7", True),
    ("torch2.7.1-cu118-py3.11-base", "520.61.05", "3.5", False),
])
def test_driver_and_capability_boundaries(matrix: Matrix, image_id: str, driver: str,
                                          capability: str, lands: bool) -> None:
    pod = validation_pod(matrix, image_id)
    assert schedulable(pod, gfd(driver, capability, "x")) is lands
    assert schedulable(pod, gfd(driver, capability, "x", deprecated=True)) is lands


def test_a_non_integer_driver_label_never_matches(matrix: Matrix) -> None:
    labels = gfd("570.124.06", "9.0", "x")
    labels["nvidia.com/cuda.driver-version.major"] = "570-custom"
    assert not schedulable(validation_pod(matrix, IMAGE), labels)


def test_no_node_affinity_lands_anywhere_and_selectors_still_apply(matrix: Matrix) -> None:
    pod = validation_pod(matrix, IMAGE, node_affinity=False,
                         node_selector=(("nvidia.com/gpu.product", "Tesla-V100-SXM2-32GB"),))
    assert "affinity" not in pod
    assert {n for n, labels in NODES.items() if schedulable(pod, labels)} == {"v100-550"}


def test_k8s_flag_turns_affinity_off(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--matrix", str(REPO / "matrix.yaml"), "k8s", IMAGE, "--image-ref", PINNED,
                 "--no-node-affinity"]) == 0
    docs = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert "affinity" not in of_kind(docs, "Job")["spec"]["template"]["spec"]


# --- training manifests ------------------------------------------------------------------------

def test_train_job_is_an_indexed_job_and_a_headless_service(
        capsys: pytest.CaptureFixture[str], matrix: Matrix) -> None:
    docs = train_docs(capsys, "--nodes", "2", "--gpus-per-node", "8")
    assert [d["kind"] for d in docs] == ["Service", "Job"]
    for version in VERSIONS:
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)
    service, job = docs
    assert service["spec"]["clusterIP"] == "None"
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == 2
    pod = spec["template"]["spec"]
    name = job["metadata"]["name"]
    assert pod["subdomain"] == service["metadata"]["name"] == name
    assert service["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    (container,) = pod["containers"]
    assert container["command"] == [
        "torchrun", "--nnodes=2", "--nproc-per-node=8", "--rdzv-backend=c10d",
        f"--rdzv-endpoint={name}-0.{name}:29400", f"--rdzv-id={name}", "--no-python",
        "python", "train.py"]
    assert len(f"{name}-1") <= 63
    # The validation Job of the same image carries the same affinity.
    assert pod["affinity"] == validation_pod(matrix, IMAGE)["affinity"]


def assert_pod_practice(pod: dict[str, Any], gpus: str = "1") -> None:
    (container,) = pod["containers"]
    assert container["image"] == PINNED and container["imagePullPolicy"] == "IfNotPresent"
    resources = container["resources"]
    assert resources["requests"] == resources["limits"]
    assert resources["limits"]["nvidia.com/gpu"] == gpus
    assert {"cpu", "memory"} <= set(resources["limits"])
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 1000
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["allowPrivilegeEscalation"] is False
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False
    assert pod["restartPolicy"] == "Never"
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert "livenessProbe" not in container  # opt-in only
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]


def assert_failure_policy(job_spec: dict[str, Any], container: str) -> None:
    rules = job_spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "Ignore",
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    assert rules[1]["action"] == "FailJob"
    assert rules[1]["onExitCodes"] == {"containerName": container, "operator": "NotIn",
                                       "values": [0]}


def test_every_format_carries_the_pod_practice(capsys: pytest.CaptureFixture[str]) -> None:
    job = of_kind(train_docs(capsys), "Job")
    assert_pod_practice(job["spec"]["template"]["spec"])
    assert_failure_policy(job["spec"], "node")
    jobset = of_kind(train_docs(capsys, "--format", "jobset"), "JobSet")
    (replicated,) = jobset["spec"]["replicatedJobs"]
    assert_pod_practice(replicated["template"]["spec"]["template"]["spec"])
    assert_failure_policy(replicated["template"]["spec"], "node")
    docs = train_docs(capsys, "--format", "trainjob")
    runtime = of_kind(docs, "ClusterTrainingRuntime")
    (replicated,) = runtime["spec"]["template"]["spec"]["replicatedJobs"]
    assert_pod_practice(replicated["template"]["spec"]["template"]["spec"])
    assert_failure_policy(replicated["template"]["spec"], "node")
    trainer = of_kind(docs, "TrainJob")["spec"]["trainer"]
    assert trainer["resourcesPerNode"]["requests"] == trainer["resourcesPerNode"]["limits"]
    assert trainer["image"] == PINNED


def test_jobset_rendezvous_names_pod_zero(capsys: pytest.CaptureFixture[str]) -> None:
    jobset = of_kind(train_docs(capsys, "--format", "jobset", "--nodes", "4"), "JobSet")
    assert jobset["apiVersion"] == "jobset.x-k8s.io/v1alpha2"
    name = jobset["metadata"]["name"]
    (replicated,) = jobset["spec"]["replicatedJobs"]
    assert replicated["name"] == "node" and replicated["replicas"] == 1
    assert replicated["template"]["spec"]["completions"] == 4
    (container,) = replicated["template"]["spec"]["template"]["spec"]["containers"]
    assert f"--rdzv-endpoint={name}-node-0-0.{name}:29400" in container["command"]
    assert jobset["spec"]["network"]["enableDNSHostnames"] is True


def test_trainjob_names_the_torchstack_runtime(capsys: pytest.CaptureFixture[str]) -> None:
    docs = train_docs(capsys, "--format", "trainjob", "--nodes", "2", "--env", "NCCL_DEBUG=INFO")
    assert [d["kind"] for d in docs] == ["ClusterTrainingRuntime", "TrainJob"]
    runtime, trainjob = docs
    assert "namespace" not in runtime["metadata"]  # cluster-scoped
    assert trainjob["apiVersion"] == runtime["apiVersion"] == "trainer.kubeflow.org/v1alpha1"
    assert trainjob["spec"]["runtimeRef"] == {"apiGroup": "trainer.kubeflow.org",
                                              "kind": "ClusterTrainingRuntime",
                                              "name": runtime["metadata"]["name"]}
    assert runtime["spec"]["mlPolicy"] == {"numNodes": 2, "torch": {}}
    trainer = trainjob["spec"]["trainer"]
    assert trainer["numNodes"] == 2
    assert trainer["command"] == ["torchrun", "--no-python", "python", "train.py"]
    assert {"name": "NCCL_DEBUG", "value": "INFO"} in trainer["env"]


def strict(schema: Any) -> Any:
    """The CRD schema as the API server's strict field validation applies it: an object with
    declared properties takes no others unless it preserves unknown fields."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def crd_validator(path: str) -> jsonschema.Draft7Validator:
    schema = strict(json.loads((CRDS / path).read_text(encoding="utf-8")))
    return jsonschema.Draft7Validator(schema)


CRD_OF = {"JobSet": "jobset/jobset.v1alpha2.schema.json",
          "TrainJob": "trainer/trainjob.v1alpha1.schema.json",
          "ClusterTrainingRuntime": "trainer/clustertrainingruntime.v1alpha1.schema.json"}


@pytest.mark.parametrize("fmt", ["jobset", "trainjob"])
def test_crd_formats_validate_against_the_published_schemas(
        fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    docs = train_docs(capsys, "--format", fmt, "--nodes", "2", "--gpus-per-node", "8",
                      "--env", "A=b", "--volume", "datasets:/data", "--heartbeat",
                      "/tmp/heartbeat", "--toleration", "dedicated=gpu:NoSchedule")
    for doc in docs:
        crd_validator(CRD_OF[doc["kind"]]).validate(doc)
        broken = copy.deepcopy(doc)
        broken["spec"]["sppec"] = 1  # strictness is real: a misspelt field is refused
        with pytest.raises(jsonschema.ValidationError):
            crd_validator(CRD_OF[doc["kind"]]).validate(broken)


def test_crd_sources_are_recorded() -> None:
    for folder in ("jobset", "trainer"):
        text = (CRDS / folder / "SOURCE.md").read_text(encoding="utf-8")
        assert "https://github.com/" in text and "Fetched" in text


def test_heartbeat_probe_is_opt_in(capsys: pytest.CaptureFixture[str]) -> None:
    job = of_kind(train_docs(capsys, "--heartbeat", "/tmp/hb", "--heartbeat-timeout", "5m"),
                  "Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    probe = container["livenessProbe"]
    assert probe["exec"]["command"][-2:] == ["/tmp/hb", "300"]
    assert probe["initialDelaySeconds"] == 300 and probe["failureThreshold"] == 1
    kubernetes_validate.validate(job, latest_version(), strict=True)


def test_writable_root_and_volumes(capsys: pytest.CaptureFixture[str]) -> None:
    job = of_kind(train_docs(capsys, "--writable-root", "--volume", "ckpt:/ckpt"), "Job")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is False
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/ckpt"]]["persistentVolumeClaim"] == {"claimName": "ckpt"}


def test_command_options_are_not_torchstack_s(capsys: pytest.CaptureFixture[str]) -> None:
    job = of_kind(train_docs(capsys, command=("python", "-u", "train.py", "--nodes", "9")),
                  "Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][-5:] == ["python", "-u", "train.py", "--nodes", "9"]
    assert job["spec"]["completions"] == 1


# --- bad input: exit 2, the flag named -------------------------------------------------------

def refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    try:
        code = main(["--matrix", str(REPO / "matrix.yaml"), *argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    assert code == 2, captured
    assert captured.out == ""
    assert "Traceback" not in captured.err
    return captured.err


TRAIN = ["k8s", "train", IMAGE, "--image-ref", PINNED]


@pytest.mark.parametrize(("argv", "named"), [
    (TRAIN, "--"),  # no command at all
    ([*TRAIN, "--"], "--"),  # `--` with nothing after it
    ([*TRAIN, "--nodes", "0", "--", "x"], "--nodes"),
    ([*TRAIN, "--gpus-per-node", "17", "--", "x"], "--gpus-per-node"),
    ([*TRAIN, "--gpus-per-node", "0", "--", "x"], "--gpus-per-node"),
    ([*TRAIN, "--volume", "datasets", "--", "x"], "--volume"),
    ([*TRAIN, "--volume", "datasets:", "--", "x"], "--volume"),
    ([*TRAIN, "--volume", "datasets:relative", "--", "x"], "--volume"),
    ([*TRAIN, "--volume", "Data_Sets:/data", "--", "x"], "--volume"),
    ([*TRAIN, "--env", "1ABC=x", "--", "x"], "--env"),
    ([*TRAIN, "--env", "A-B=x", "--", "x"], "--env"),
    ([*TRAIN, "--env", "=x", "--", "x"], "--env"),
    ([*TRAIN, "--env", "NOVALUE", "--", "x"], "--env"),
    ([*TRAIN, "--env", "A=x\u200by", "--", "x"], "U+200B ZERO WIDTH SPACE"),
    ([*TRAIN, "--env", "A=x\ny", "--", "x"], "U+000A"),
    ([*TRAIN, "--", "python", "train.py\u202e"], "U+202E RIGHT-TO-LEFT OVERRIDE"),
    ([*TRAIN, "--", "python", "a\x1bb"], "U+001B"),
    ([*TRAIN, "--name", "Train", "--", "x"], "--name"),
    ([*TRAIN, "--name", "a" * 41, "--", "x"], "--name"),
    ([*TRAIN, "--format", "mpijob", "--", "x"], "--format"),
    ([*TRAIN, "--heartbeat", "hb", "--", "x"], "--heartbeat"),
    ([*TRAIN, "--heartbeat", "/tmp/hb", "--heartbeat-timeout", "10x", "--", "x"],
     "--heartbeat-timeout"),
    ([*TRAIN, "--heartbeat-timeout", "10m", "--", "x"], "--heartbeat"),
    (["k8s", "train", "torch2.9.1-cu128-*", "--image-ref", PINNED, "--", "x"], "IMAGE"),
    (["k8s", "train", "torch9*", "--image-ref", PINNED, "--", "x"], "no image id matches"),
])
def test_bad_train_input_is_refused(argv: list[str], named: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(capsys, argv)
    assert named in err


@pytest.mark.parametrize(("flag", "value", "named"), [
    ("--namespace", "gpu\n", "U+000A"),
    ("--namespace", "gpu\u200b", "U+200B ZERO WIDTH SPACE"),
    ("--namespace", "Gpu", "RFC 1123"),
    ("--namespace", "g" * 64, "RFC 1123"),
    ("--cpu", "\u0661\u0662", "--cpu"),  # Arabic-Indic digits are not [0-9]
    ("--cpu", "4\n", "U+000A"),
    ("--cpu", "0.0", "--cpu"),
    ("--memory", "16GB", "--memory"),
    ("--memory", "1e", "--memory"),
    ("--nodes", "\u0662", "--nodes"),
    ("--gpus-per-node", "\u0662", "--gpus-per-node"),
    ("--node-selector", "a" * 64 + "=x", "--node-selector"),  # name part over 63
    ("--node-selector", "UPPER.example/x=y", "--node-selector"),  # prefix is a DNS subdomain
    ("--node-selector", "k=" + "v" * 64, "--node-selector"),
    ("--node-selector", "k=v\u202e", "U+202E"),
    ("--toleration", "dedicated=bad value:NoSchedule", "--toleration"),
    ("--toleration", "dedicated=" + "v" * 64 + ":NoSchedule", "--toleration"),
    ("--toleration", "dedicated=gpu:Never", "--toleration"),
    ("--toleration", "bad key:NoSchedule", "--toleration"),
    ("--toleration", "k=v\u2066:NoSchedule", "U+2066 LEFT-TO-RIGHT ISOLATE"),
    ("--image-ref", "reg.example/ts@sha256:" + "A" * 64, "--image-ref"),
    ("--image-ref", f"{PINNED}\n", "U+000A"),
    ("--image-ref", f"reg.example/ts:v\u0661@{DIGEST}", "--image-ref"),
])
@pytest.mark.parametrize("verb", [["k8s", IMAGE], ["k8s", "train", IMAGE]])
def test_kubernetes_grammar_is_enforced(verb: list[str], flag: str, value: str, named: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    image_ref = [] if flag == "--image-ref" else ["--image-ref", PINNED]
    nodes = ["--nodes", "1"] if flag != "--nodes" else []
    err = refused(capsys, [*verb, *image_ref, *nodes, f"{flag}={value}", "--", "python", "t.py"]
                  if verb[1] == "train" else [*verb, *image_ref, *nodes, f"{flag}={value}"])
    assert f"argument {flag}" in err and named in err


def test_ids_differing_only_in_case_get_different_job_names() -> None:
    names = {job_name(i, n) for i in ("torch-Base", "torch-base", "torch-BASE") for n in (1, 2)}
    assert len(names) == 6
    for name in names:
        assert len(name) <= 52 and name == name.lower()


@pytest.mark.parametrize(("argv", "named"), [
    (["--from-job", "Ts-Check"], "--from-job"),
    (["--from-job", "ts-check\n"], "U+000A"),
    (["--context", "prod\u200b"], "U+200B ZERO WIDTH SPACE"),
])
def test_record_import_cluster_flags_follow_the_grammar(argv: list[str], named: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(capsys, ["record", "import", *argv])
    assert named in err

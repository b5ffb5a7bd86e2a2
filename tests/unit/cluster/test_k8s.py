"""`torchstack k8s`: manifests that pass strict Kubernetes schema validation and are locked down.

These pin the image with --image-ref (no Docker, no registry); pinning the candidate's digest
from the push registry is tested in tests/integration/test_record_import_registry.py.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from tests.paths import REPO
from torchstack.checks.expect import parse_expect
from torchstack.checks.registry import CHECK_IDS
from torchstack.cli import main
from torchstack.cluster.grammar import parse_toleration
from torchstack.cluster.manifests import (
    ClusterOptions,
    job_name,
    k8s_quantity,
    render_manifests,
    to_yaml,
)
from torchstack.config.matrix import load_matrix
from torchstack.config.model import Matrix

IMAGE = "torch2.9.1-cu128-py3.11-base"
# The newest Kubernetes the validator ships, and an older one still common on GPU clusters.
VERSIONS = [latest_version(), "1.28.0"]
DIGEST = "sha256:" + "a" * 64
PINNED = f"reg.example/ts@{DIGEST}"


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix(REPO / "matrix.yaml")


def cli_docs(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    assert main(["--matrix", str(REPO / "matrix.yaml"), "k8s", *argv]) == 0
    return [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]


@pytest.fixture
def single(capsys: pytest.CaptureFixture[str],
           monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    monkeypatch.delenv("TORCHSTACK_REGISTRY", raising=False)
    return cli_docs(capsys, IMAGE, "--image-ref", PINNED)


@pytest.fixture
def multi(capsys: pytest.CaptureFixture[str],
          monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    monkeypatch.delenv("TORCHSTACK_REGISTRY", raising=False)
    return cli_docs(capsys, IMAGE, "--nodes", "2", "--gpus-per-node", "8", "--image-ref", PINNED)


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def walk(node: Any) -> list[tuple[str, Any]]:
    """Every (key, value) pair anywhere in a document."""
    if isinstance(node, dict):
        return [(k, v) for k, v in node.items()] + [p for v in node.values() for p in walk(v)]
    if isinstance(node, list):
        return [p for v in node for p in walk(v)]
    return []


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("layout", ["single", "multi"])
def test_every_document_passes_strict_validation(layout: str, version: str,
                                                 request: pytest.FixtureRequest) -> None:
    docs = request.getfixturevalue(layout)
    assert [d["kind"] for d in docs] == (["ConfigMap", "Job"] if layout == "single"
                                         else ["ConfigMap", "Service", "Job"])
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_strict_validation_rejects_an_unknown_field(single: list[dict[str, Any]]) -> None:
    job = of_kind(single, "Job")
    job["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, latest_version(), strict=True)


@pytest.mark.parametrize("layout", ["single", "multi"])
def test_no_host_access_anywhere(layout: str, request: pytest.FixtureRequest) -> None:
    for doc in request.getfixturevalue(layout):
        keys = {k for k, _ in walk(doc)}
        assert not keys & {"hostPath", "hostNetwork", "hostPID", "hostIPC", "privileged"}


def test_pod_and_container_are_locked_down(single: list[dict[str, Any]]) -> None:
    pod = of_kind(single, "Job")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 1000
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert pod["restartPolicy"] == "Never"
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]  # the one writable place besides /dev/shm


def test_resources_shm_and_deadline(single: list[dict[str, Any]], matrix: Matrix) -> None:
    job = of_kind(single, "Job")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    requests, limits = container["resources"]["requests"], container["resources"]["limits"]
    assert requests == limits
    assert requests["nvidia.com/gpu"] == "1" and {"cpu", "memory"} <= set(requests)
    shm = {v["name"]: v for v in pod["volumes"]}[
        {m["mountPath"]: m["name"] for m in container["volumeMounts"]}["/dev/shm"]]
    assert shm["emptyDir"]["medium"] == "Memory"
    assert shm["emptyDir"]["sizeLimit"] == k8s_quantity(matrix.run_options.shm_size)
    assert job["spec"]["activeDeadlineSeconds"] > matrix.run_options.timeout_s
    assert job["spec"]["backoffLimit"] == 0
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} \
        in pod["tolerations"]


def test_runs_the_suite_from_the_config_map(single: list[dict[str, Any]],
                                            matrix: Matrix) -> None:
    config_map, job = of_kind(single, "ConfigMap"), of_kind(single, "Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "checks", "--json", "--frame", "--gpu",
                                    "required", "--expect", "/opt/torchstack/expect/expect.json"]
    assert {"name": "PYTHONPATH", "value": "/opt/torchstack/checks"} in container["env"]
    assert container["image"] == PINNED and container["imagePullPolicy"] == "IfNotPresent"
    sources = {p.relative_to(REPO / "checks").as_posix()
               for p in (REPO / "checks").rglob("*.py") if "__pycache__" not in p.parts}
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    items = volumes[mounts["/opt/torchstack/checks/checks"]]["configMap"]["items"]
    assert {i["path"] for i in items} == sources
    for item in items:
        text = (REPO / "checks" / item["path"]).read_text(encoding="utf-8")
        assert config_map["data"][item["key"]] == text
    expect = json.loads(config_map["data"]["expect.json"])
    # The in-container parser accepts what the host renders.
    parsed = parse_expect(expect, check_ids=CHECK_IDS)
    assert parsed.image_id == IMAGE
    assert parsed.expected.torch == matrix.by_id()[IMAGE].expected_torch_version
    assert expect["image_digest"] == DIGEST and parsed.image_digest == DIGEST


def test_multi_node_is_an_indexed_job_behind_a_headless_service(
        multi: list[dict[str, Any]]) -> None:
    service, job = of_kind(multi, "Service"), of_kind(multi, "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 2
    pod = spec["template"]["spec"]
    assert service["spec"]["clusterIP"] == "None"
    assert pod["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    (container,) = pod["containers"]
    command = container["command"]
    assert command[0] == "torchrun"
    assert command[-6:] == ["-m", "checks.multinode", "--json", "--frame", "--expect",
                            "/opt/torchstack/expect/expect.json"]
    flags = dict(zip(command[1:-6:2], command[2:-6:2], strict=True))
    name = job["metadata"]["name"]
    assert flags == {"--nnodes": "2", "--nproc-per-node": "8", "--node-rank": "$(NODE_RANK)",
                     "--master-addr": f"{name}-0.{service['metadata']['name']}",
                     "--master-port": "29500"}
    rank = {e["name"]: e for e in container["env"]}["NODE_RANK"]
    assert "job-completion-index" in rank["valueFrom"]["fieldRef"]["fieldPath"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert len(f"{name}-1") <= 63  # pod hostnames are DNS labels


def test_options_reach_the_manifests(capsys: pytest.CaptureFixture[str]) -> None:
    docs = cli_docs(capsys, IMAGE, "--namespace", "ml", "--node-selector",
                    "nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3", "--toleration",
                    "dedicated=gpu:NoExecute", "--image-ref", "reg.example/ts@sha256:" + "a" * 64)
    job = of_kind(docs, "Job")
    pod = job["spec"]["template"]["spec"]
    assert all(d["metadata"]["namespace"] == "ml" for d in docs)
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoExecute"} \
        in pod["tolerations"]
    (container,) = pod["containers"]
    assert container["image"].endswith("@sha256:" + "a" * 64)
    assert container["imagePullPolicy"] == "IfNotPresent"


def test_output_is_deterministic_and_written_per_image(matrix: Matrix, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    spec = matrix.by_id()[IMAGE]
    options = ClusterOptions(nodes=2, gpus_per_node=4)
    first = to_yaml(render_manifests(spec, matrix, PINNED, options))
    assert first == to_yaml(render_manifests(spec, matrix, PINNED, options))
    assert main(["--matrix", str(REPO / "matrix.yaml"), "k8s", IMAGE, "--image-ref", PINNED,
                 "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{IMAGE}.yaml"]


@pytest.mark.parametrize("text", ["nvidia.com/gpu", "gpu:Sometimes", "=x:NoSchedule"])
def test_bad_tolerations_are_usage_errors(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--matrix", str(REPO / "matrix.yaml"), "k8s", "--toleration", text])
    assert exit_info.value.code == 2
    assert "KEY[=VALUE]:EFFECT" in capsys.readouterr().err


def test_image_ref_needs_one_image(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--matrix", str(REPO / "matrix.yaml"), "k8s", "--all", "--image-ref", PINNED])
    assert code == 2 and "tip:" in capsys.readouterr().err


def test_compression_picks_a_candidate_variant_not_an_image_ref(
        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--matrix", str(REPO / "matrix.yaml"), "k8s", IMAGE, "--image-ref", PINNED,
                 "--compression", "zstd"])
    assert code == 2 and "--compression picks a variant" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--matrix", str(REPO / "matrix.yaml"), "k8s", IMAGE, "--compression", "lz4"])
    assert exit_info.value.code == 2
    assert "--compression: invalid choice: 'lz4'" in capsys.readouterr().err


def k8s_usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """argparse refuses the flag: exit 2, the flag named, a tip."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--matrix", str(REPO / "matrix.yaml"), "k8s", IMAGE, *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "tip:" in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("ref", [
    "reg.example/ts:2.9.1",  # a tag moves: not what was checked
    "reg.example/ts@sha256:abc",  # short digest
    "reg.example/ts@sha512:" + "a" * 128,
    "Reg.example/TS@" + DIGEST,  # repository paths are lowercase
    "reg.example/ts@sha256:" + "A" * 64,  # the hex is lowercase
    "reg.example/ts@sha256:" + "a" * 65,
    "reg.example/ts:\u0661@" + DIGEST,  # an Arabic-Indic digit in the tag
])
def test_image_ref_without_a_digest_is_refused(ref: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    err = k8s_usage_error(capsys, "--image-ref", ref)
    assert "--image-ref" in err and "pinned by digest" in err


@pytest.mark.parametrize("ref", [f"127.0.0.1:5000/torchstack@{DIGEST}",
                                 f"ghcr.io/acme/torchstack:2.9.1-cuda12.8@{DIGEST}",
                                 f"torchstack@{DIGEST}", f"[::1]:5000/a/b_c@{DIGEST}"])
def test_image_refs_pinned_by_digest_are_taken(ref: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (container,) = of_kind(cli_docs(capsys, IMAGE, "--image-ref", ref), "Job")["spec"][
        "template"]["spec"]["containers"]
    assert container["image"] == ref


@pytest.mark.parametrize(("argv", "flag"), [
    (["--namespace", "Bad NS!"], "--namespace"),
    (["--namespace", "a" * 64], "--namespace"),
    (["--namespace=-ml"], "--namespace"),
    (["--cpu", "lots"], "--cpu"),
    (["--cpu", "0"], "--cpu"),
    (["--cpu", "-2"], "--cpu"),
    (["--memory", "huge"], "--memory"),
    (["--memory", "16GB"], "--memory"),  # not a quantity: Kubernetes spells it 16G or 16Gi
    (["--memory", "1.5.2Gi"], "--memory"),
])
def test_bad_cluster_flags_are_refused(argv: list[str], flag: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    err = k8s_usage_error(capsys, *argv, "--image-ref", PINNED)
    assert f"argument {flag}" in err


@pytest.mark.parametrize(("flag", "value"), [("--cpu", "500m"), ("--cpu", "2.5"),
                                             ("--memory", "64Gi"), ("--memory", "1e10"),
                                             ("--memory", "512M"), ("--namespace", "gpu-ci")])
def test_good_cluster_flags_reach_the_job(flag: str, value: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    docs = cli_docs(capsys, IMAGE, flag, value, "--image-ref", PINNED)
    job = of_kind(docs, "Job")
    if flag == "--namespace":
        assert job["metadata"]["namespace"] == value
        return
    limits = job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits[flag.removeprefix("--")] == value
    kubernetes_validate.validate(job, latest_version(), strict=True)


def test_out_naming_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "manifests.yaml"
    target.write_text("mine\n")
    code = main(["--matrix", str(REPO / "matrix.yaml"), "k8s", IMAGE, "--image-ref", PINNED,
                 "--out", str(target)])
    err = capsys.readouterr().err
    assert code == 2 and "--out" in err and "is a file" in err and "tip:" in err
    assert target.read_text() == "mine\n"


def test_infinite_timeout_reaching_k8s_is_refused(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(REPO / "layers", tmp_path / "layers")
    shutil.copytree(REPO / "checks", tmp_path / "checks",
                    ignore=shutil.ignore_patterns("__pycache__"))
    text = (REPO / "matrix.yaml").read_text()
    text = re.sub(r"(?m)^(\s+)timeout_s: .*$", r"\1timeout_s: .inf", text, count=1)
    if "timeout_s: .inf" not in text:
        text = text.replace("checks:\n", "checks:\n  timeout_s: .inf\n", 1)
    (tmp_path / "matrix.yaml").write_text(text)
    code = main(["--matrix", str(tmp_path / "matrix.yaml"), "k8s", IMAGE, "--image-ref", PINNED])
    err = capsys.readouterr().err
    # The loader refuses it now (file:line); k8s keeps its own guard for the Job's deadline.
    assert code == 2 and "checks.timeout_s" in err and "Traceback" not in err


def test_helpers() -> None:
    assert k8s_quantity("2g") == "2Gi" and k8s_quantity("512m") == "512Mi"
    assert k8s_quantity("1073741824") == "1073741824" and k8s_quantity("2Gi") == "2Gi"
    assert parse_toleration("gpu:NoSchedule") == {"key": "gpu", "operator": "Exists",
                                                  "effect": "NoSchedule"}
    long = job_name("torch2.9.1-cu128-py3.11-" + "x" * 60, 16)
    assert len(long) <= 52 and long == long.lower()

"""ImageSpec -> Kubernetes manifests that run the check suite on a GPU cluster. Pure.

One image gives a ConfigMap (the `checks` package and the expect JSON) and a Job. The Job runs
`python -m checks` on one node; with nodes > 1 it becomes an Indexed Job plus a headless
Service, and every pod starts `torchrun` so that NCCL is exercised across nodes. The pod comes
from cluster/podspec.py (the practice every torchstack workload shares), node affinity included.
The image is pinned by its registry digest (`repo@sha256:…`), and the expect file carries the
same digest (`image_digest`): the suite echoes it in its framed report, which `torchstack record
import` takes back and proves against the registry.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from torchstack.cluster.grammar import QUANTITY, is_label_value, parse_quantity
from torchstack.cluster.podspec import Container, Doc, PodOptions, pod_failure_policy, pod_spec
from torchstack.config.contract import contract_for
from torchstack.config.expected import expect_for
from torchstack.config.model import ImageSpec, Matrix
from torchstack.errors import ConfigError
from torchstack.names import (
    CHECKS_ROOT,
    EXPECT_DIR,
    EXPECT_FILE,
    K8S_IMAGE_LABEL,
    SHA256_DIGEST,
)

EXPECT_KEY = EXPECT_FILE  # the ConfigMap key is the file name
MASTER_PORT = 29500
# torchrun's per-node entry point in the checks package (see docs/kubernetes.md).
MULTINODE_MODULE = "checks.multinode"
DEADLINE_MARGIN_S = 600  # on top of the suite's own timeout: image pull and scheduling
CONFIGMAP_LIMIT = 1 << 20  # what the API server accepts for one object
CONTAINER = "checks"
_DOCKER_SIZE = re.compile(r"([0-9]+)([bkmg]?)b?", re.IGNORECASE)


@dataclass(frozen=True)
class ClusterOptions:
    nodes: int = 1
    gpus_per_node: int = 1
    namespace: str = "default"
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[dict[str, str], ...] = ()
    cpu: str | None = None  # per pod; default 4 cores per GPU
    memory: str | None = None  # per pod; default 16Gi per GPU plus the /dev/shm size
    shm_size: str | None = None  # default: the matrix's checks.shm_size
    node_affinity: bool = True  # False: --no-node-affinity (clusters without GPU discovery)
    read_only_root: bool = True


def k8s_quantity(docker_size: str) -> str:
    """Docker's `--shm-size` spelling (2g, 512m, 1073741824) -> a Kubernetes quantity."""
    match = _DOCKER_SIZE.fullmatch(docker_size.strip())
    if not match:
        return docker_size  # already a quantity such as 2Gi
    number, unit = match.group(1), match.group(2).lower()
    return number + {"": "", "b": "", "k": "Ki", "m": "Mi", "g": "Gi"}[unit]


def object_name(prefix: str, image_id: str, suffix: str = "", limit: int = 52) -> str:
    """A DNS-1123 label from an image id: lowercase, other characters to '-'. An id that holds
    characters the label cannot keep (capitals, '_') gets a hash of its exact spelling, so
    ids that differ only in case never share a name; long names are cut and hashed too."""
    base = re.sub(r"[^a-z0-9-]+", "-", image_id.lower()).strip("-")
    name = f"{prefix}-{base}" + (f"-{suffix}" if suffix else "")
    digest = hashlib.sha256(image_id.encode()).hexdigest()[:8]
    if not re.fullmatch(r"[a-z0-9.-]+", image_id):
        name = f"{name[: limit - 9].rstrip('-')}-{digest}"
    if len(name) > limit:
        name = f"{name[: limit - 9].rstrip('-')}-{digest}"
    return name


def job_name(image_id: str, nodes: int) -> str:
    """Short enough for `<job>-<index>` hostnames."""
    return object_name("ts-check", image_id, f"{nodes}n" if nodes > 1 else "")


def pod_sizes(options: ClusterOptions, matrix: Matrix) -> tuple[str, str, str]:
    """(cpu, memory, shm) per pod: 4 cores and 16Gi per GPU plus /dev/shm unless given."""
    shm = _shm(options, matrix)
    gpus = options.gpus_per_node
    return options.cpu or str(4 * gpus), options.memory or _add_gi(16 * gpus, shm), shm


def pod_options(spec: ImageSpec, matrix: Matrix, options: ClusterOptions,
                ports: tuple[tuple[str, int], ...] = ()) -> PodOptions:
    cpu, memory, shm = pod_sizes(options, matrix)
    return PodOptions(
        gpus=options.gpus_per_node, cpu=cpu, memory=memory, shm=shm,
        node_selector=options.node_selector, tolerations=options.tolerations,
        contract=contract_for(spec.torch, spec.cuda) if options.node_affinity else None,
        read_only_root=options.read_only_root, ports=ports)


def checks_files(checks_dir: Path) -> dict[str, str]:
    """ConfigMap key -> source for every .py of the package; keys spell the path with dots."""
    if not (checks_dir / "__init__.py").is_file():
        raise ConfigError(f"no checks package at {checks_dir}",
                          tip="run torchstack where checks/ sits beside matrix.yaml")
    files = {}
    for path in sorted(checks_dir.rglob("*.py")):
        relative = path.relative_to(checks_dir)
        if "__pycache__" in relative.parts:
            continue
        files[".".join(relative.parts)] = path.read_text(encoding="utf-8")
    return files


def render_manifests(spec: ImageSpec, matrix: Matrix, image: str,
                     options: ClusterOptions) -> list[Doc]:
    """The documents for one image, in the order `kubectl apply` needs them.

    `image` is pinned by digest (`repo@sha256:…`, candidates.parse_pinned checks the form)."""
    if options.nodes < 1 or options.gpus_per_node < 1:
        raise ConfigError("--nodes and --gpus-per-node must be at least 1")
    digest = image.rpartition("@")[2]
    if not SHA256_DIGEST.fullmatch(digest):
        raise ConfigError(f"the image {image!r} is not pinned by digest")
    name = job_name(spec.id, options.nodes)
    files = checks_files(matrix.root / "checks")
    expect = json.dumps({**expect_for(spec, matrix), "image_digest": digest}, indent=2,
                        sort_keys=True) + "\n"
    data = {**files, EXPECT_KEY: expect}
    if sum(len(k) + len(v.encode()) for k, v in data.items()) > CONFIGMAP_LIMIT - 64 * 1024:
        raise ConfigError("the checks package is too large for one ConfigMap (1 MiB)")
    labels = {
        "app.kubernetes.io/name": "torchstack",
        "app.kubernetes.io/component": "gpu-check",
        "app.kubernetes.io/instance": name,
        K8S_IMAGE_LABEL: spec.id if is_label_value(spec.id) else name,
    }
    config_map: Doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(f"{name}-checks", options.namespace, labels),
        "data": data,
    }
    job = _job(spec, matrix, image, options, name, labels, sorted(files))
    if options.nodes == 1:
        return [config_map, job]
    service: Doc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, options.namespace, labels),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {"app.kubernetes.io/instance": name},
            "ports": [{"name": "rendezvous", "port": MASTER_PORT, "protocol": "TCP"}],
        },
    }
    return [config_map, service, job]


def _meta(name: str, namespace: str, labels: dict[str, str]) -> Doc:
    return {"name": name, "namespace": namespace, "labels": dict(labels)}


def _job(spec: ImageSpec, matrix: Matrix, image: str, options: ClusterOptions, name: str,
         labels: dict[str, str], file_keys: list[str]) -> Doc:
    env: list[dict[str, object]] = [
        {"name": "PYTHONPATH", "value": CHECKS_ROOT},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
    ]
    if options.nodes > 1:
        env.append({"name": "NODE_RANK", "valueFrom": {"fieldRef": {
            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}})
    container = Container(
        name=CONTAINER, image=image, command=tuple(_command(name, options)),
        extra_env=tuple(env),
        extra_mounts=(
            {"name": "checks", "mountPath": f"{CHECKS_ROOT}/checks", "readOnly": True},
            {"name": "expect", "mountPath": EXPECT_DIR, "readOnly": True},
        ),
        extra_volumes=(
            {"name": "checks", "configMap": {
                "name": f"{name}-checks",
                "items": [{"key": k, "path": "/".join(_unkey(k))} for k in file_keys]}},
            {"name": "expect", "configMap": {
                "name": f"{name}-checks", "items": [{"key": EXPECT_KEY, "path": EXPECT_KEY}]}},
        ),
    )
    ports = (("rendezvous", MASTER_PORT),) if options.nodes > 1 else ()
    pod = pod_spec(container, pod_options(spec, matrix, options, ports))
    job_spec: Doc = {
        "backoffLimit": 0,  # a failed check is a result, not a flake to retry
        "podFailurePolicy": pod_failure_policy(CONTAINER),
        "activeDeadlineSeconds": _suite_timeout_s(matrix) + DEADLINE_MARGIN_S,
        "ttlSecondsAfterFinished": 86400,
    }
    if options.nodes > 1:
        pod["subdomain"] = name  # pods resolve as <job>-<index>.<service>
        job_spec.update(completionMode="Indexed", completions=options.nodes,
                        parallelism=options.nodes)
    job_spec["template"] = {"metadata": {"labels": dict(labels)}, "spec": pod}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": _meta(name, options.namespace, labels), "spec": job_spec}


def _command(name: str, options: ClusterOptions) -> list[str]:
    expect = f"{EXPECT_DIR}/{EXPECT_KEY}"
    if options.nodes == 1:
        return ["python", "-m", "checks", "--json", "--frame", "--gpu", "required",
                "--expect", expect]
    return [
        "torchrun",
        "--nnodes", str(options.nodes),
        "--nproc-per-node", str(options.gpus_per_node),
        "--node-rank", "$(NODE_RANK)",
        "--master-addr", f"{name}-0.{name}",
        "--master-port", str(MASTER_PORT),
        "-m", MULTINODE_MODULE, "--json", "--frame", "--expect", expect,
    ]


def _shm(options: ClusterOptions, matrix: Matrix) -> str:
    if options.shm_size:
        return parse_quantity(k8s_quantity(options.shm_size), "--shm-size", "2Gi")
    shm = k8s_quantity(matrix.run_options.shm_size)
    if not QUANTITY.fullmatch(shm):
        raise ConfigError(f"{matrix.root / 'matrix.yaml'}: checks.shm_size {shm!r} is not a size"
                          " Kubernetes takes", tip="write it as 2g or 2Gi, or pass --shm-size")
    return shm


def _suite_timeout_s(matrix: Matrix) -> int:
    timeout = matrix.run_options.timeout_s
    if not math.isfinite(timeout) or timeout < 1:
        raise ConfigError(f"{matrix.root / 'matrix.yaml'}: checks.timeout_s is {timeout!r}; a Job"
                          " needs a finite deadline",
                          tip="set checks.timeout_s to a number of seconds, e.g. 900")
    return math.ceil(timeout)


def _unkey(key: str) -> list[str]:
    """`suite.nccl.py` -> ["suite", "nccl.py"]: the inverse of checks_files' keys."""
    parts = key[: -len(".py")].split(".")
    return [*parts[:-1], parts[-1] + ".py"]


def _add_gi(gib: int, quantity: str) -> str:
    """16Gi-per-GPU plus the shm size: memory-backed emptyDirs count against the limit."""
    match = re.fullmatch(r"([0-9]+)(Ki|Mi|Gi)?", quantity)
    if not match:
        return f"{gib + 2}Gi"
    scale = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, None: 1}[match.group(2)]
    extra = -(-int(match.group(1)) * scale // (1 << 30))  # rounded up to whole GiB
    return f"{gib + extra}Gi"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the ConfigMap's sources) as literal blocks, so they stay readable."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(documents: list[Doc]) -> str:
    """Deterministic multi-document YAML: keys in the order they were built, `---` between."""
    return "".join(
        "---\n" + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
        for doc in documents
    )

"""Training workloads for an image, in three formats, all from the same pod template. Pure.

- `job`: an Indexed Job plus a headless Service, no CRDs needed. Each pod runs torchrun with
  the c10d rendezvous at `<job>-0.<service>:29400`; the rendezvous assigns ranks.
- `jobset`: a JobSet (jobset.x-k8s.io/v1alpha2), which creates the headless Service itself;
  pod 0 answers as `<jobset>-node-0-0.<jobset>`.
- `trainjob`: a Kubeflow Trainer v2 TrainJob (trainer.kubeflow.org/v1alpha1). A TrainJob can
  only override node selection, affinity, tolerations, volumes and env, so the pod practice
  lives in a torchstack ClusterTrainingRuntime rendered beside it, which the TrainJob names.
  The Trainer's torch plugin hands torchrun its PET_* variables (nodes, rank, master).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from torchstack.cluster.grammar import is_label_value
from torchstack.cluster.manifests import ClusterOptions, object_name, pod_options
from torchstack.cluster.podspec import (
    Container,
    Doc,
    Heartbeat,
    PodOptions,
    pod_failure_policy,
    pod_spec,
    resources,
)
from torchstack.config.model import ImageSpec, Matrix
from torchstack.errors import ConfigError
from torchstack.names import K8S_IMAGE_LABEL

Format = Literal["job", "jobset", "trainjob"]
FORMATS: tuple[Format, ...] = ("job", "jobset", "trainjob")
RDZV_PORT = 29400
CONTAINER = "node"  # Kubeflow Trainer finds the trainer container by this name
REPLICATED_JOB = "node"
NAME_LIMIT = 40  # JobSet pods are <name>-node-0-<index>: the hostname must stay a DNS label
MAX_GPUS_PER_NODE = 16
JOBSET_API = "jobset.x-k8s.io/v1alpha2"
TRAINER_API = "trainer.kubeflow.org/v1alpha1"
ANCESTOR_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"


@dataclass(frozen=True)
class TrainOptions:
    command: tuple[str, ...]  # after `--`
    format: Format = "job"
    name: str | None = None  # default: from the image id
    env: tuple[tuple[str, str], ...] = ()
    volumes: tuple[tuple[str, str], ...] = ()
    heartbeat: Heartbeat | None = None


def train_name(spec: ImageSpec, options: TrainOptions) -> str:
    return options.name or object_name("ts-train", spec.id, limit=NAME_LIMIT)


def render_training(spec: ImageSpec, matrix: Matrix, image: str, cluster: ClusterOptions,
                    train: TrainOptions) -> list[Doc]:
    """The documents for one training run, in the order `kubectl apply` needs them."""
    if not train.command:
        raise ConfigError("k8s train: no command after `--`",
                          tip="end the line with `-- COMMAND [ARGS...]`, e.g. -- python train.py")
    if cluster.nodes < 1:
        raise ConfigError("--nodes must be at least 1")
    if not 1 <= cluster.gpus_per_node <= MAX_GPUS_PER_NODE:
        raise ConfigError(f"--gpus-per-node must be 1 to {MAX_GPUS_PER_NODE}")
    name = train_name(spec, train)
    labels = {
        "app.kubernetes.io/name": "torchstack",
        "app.kubernetes.io/component": "training",
        "app.kubernetes.io/instance": name,
        K8S_IMAGE_LABEL: spec.id if is_label_value(spec.id) else name,
    }
    base = pod_options(spec, matrix, cluster, (("c10d", RDZV_PORT),))
    pod_opts = replace(base, env=train.env, volumes=train.volumes, heartbeat=train.heartbeat)
    if train.format == "job":
        command = _torchrun(cluster, f"{name}-0.{name}", name, train.command)
        pod = pod_spec(Container(CONTAINER, image, command), pod_opts)
        pod["subdomain"] = name
        return [_service(name, cluster.namespace, labels),
                _indexed_job(name, cluster, labels, pod)]
    if train.format == "jobset":
        command = _torchrun(cluster, f"{name}-{REPLICATED_JOB}-0-0.{name}", name, train.command)
        pod = pod_spec(Container(CONTAINER, image, command), pod_opts)
        return [_jobset(name, cluster, labels, pod)]
    command = ("torchrun", "--no-python", *train.command)  # PET_* come from the Trainer
    pod = pod_spec(Container(CONTAINER, image, command), pod_opts)
    return _trainjob(name, cluster, labels, pod, pod_opts, image, command)


def _torchrun(cluster: ClusterOptions, host: str, run_id: str,
              command: tuple[str, ...]) -> tuple[str, ...]:
    # --no-python: the command after `--` runs as given (python train.py, a shell script...).
    return ("torchrun", f"--nnodes={cluster.nodes}", f"--nproc-per-node={cluster.gpus_per_node}",
            "--rdzv-backend=c10d", f"--rdzv-endpoint={host}:{RDZV_PORT}", f"--rdzv-id={run_id}",
            "--no-python", *command)


def _meta(name: str, namespace: str | None, labels: dict[str, str]) -> Doc:
    meta: Doc = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = dict(labels)
    return meta


def _service(name: str, namespace: str, labels: dict[str, str]) -> Doc:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": _meta(name, namespace, labels),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,  # ranks resolve each other before they are Ready
            "selector": {"app.kubernetes.io/instance": name},
            "ports": [{"name": "c10d", "port": RDZV_PORT, "protocol": "TCP"}],
        },
    }


def _job_spec(nodes: int, labels: dict[str, str], pod: Doc) -> Doc:
    return {
        "completionMode": "Indexed",
        "completions": nodes,
        "parallelism": nodes,
        "backoffLimit": 0,  # only disruptions retry (podFailurePolicy); a crash is final
        "podFailurePolicy": pod_failure_policy(CONTAINER),
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
    }


def _indexed_job(name: str, cluster: ClusterOptions, labels: dict[str, str], pod: Doc) -> Doc:
    spec = _job_spec(cluster.nodes, labels, pod)
    spec["ttlSecondsAfterFinished"] = 7 * 86400
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": _meta(name, cluster.namespace, labels), "spec": spec}


def _jobset(name: str, cluster: ClusterOptions, labels: dict[str, str], pod: Doc) -> Doc:
    return {
        "apiVersion": JOBSET_API, "kind": "JobSet",
        "metadata": _meta(name, cluster.namespace, labels),
        "spec": {
            "network": {"enableDNSHostnames": True, "publishNotReadyAddresses": True},
            "failurePolicy": {"maxRestarts": 0},
            "replicatedJobs": [{"name": REPLICATED_JOB, "replicas": 1,
                                "template": {"metadata": {"labels": dict(labels)},
                                             "spec": _job_spec(cluster.nodes, labels, pod)}}],
        },
    }


def _trainjob(name: str, cluster: ClusterOptions, labels: dict[str, str], pod: Doc,
              pod_opts: PodOptions, image: str, command: tuple[str, ...]) -> list[Doc]:
    runtime_name = f"torchstack-{name}"
    job_spec = _job_spec(cluster.nodes, {**labels, ANCESTOR_LABEL: "trainer"}, pod)
    for key in ("completionMode", "completions", "parallelism"):
        del job_spec[key]  # the Trainer sets them from numNodes
    runtime: Doc = {
        "apiVersion": TRAINER_API, "kind": "ClusterTrainingRuntime",
        "metadata": _meta(runtime_name, None, labels),  # cluster-scoped
        "spec": {
            "mlPolicy": {"numNodes": cluster.nodes, "torch": {}},
            "template": {"spec": {"replicatedJobs": [{
                "name": REPLICATED_JOB,
                "template": {"metadata": {"labels": {ANCESTOR_LABEL: "trainer"}},
                             "spec": job_spec},
            }]}},
        },
    }
    trainjob: Doc = {
        "apiVersion": TRAINER_API, "kind": "TrainJob",
        "metadata": _meta(name, cluster.namespace, labels),
        "spec": {
            "runtimeRef": {"apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime",
                           "name": runtime_name},
            "trainer": {
                "image": image,
                "command": list(command),
                "numNodes": cluster.nodes,
                "resourcesPerNode": resources(pod_opts),  # equal to the runtime's: Guaranteed
                "env": [{"name": k, "value": v} for k, v in pod_opts.env],
            },
        },
    }
    return [runtime, trainjob]

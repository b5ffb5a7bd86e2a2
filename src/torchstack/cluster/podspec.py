"""The one pod template every manifest torchstack renders is built from. Pure.

The validation Job and each training format (Indexed Job, JobSet, Kubeflow TrainJob runtime)
get their pods here, so the practice is written once:
- the image pinned by digest (`repo@sha256:…`), pulled IfNotPresent (a digest cannot move);
- GPU, CPU and memory limits equal to requests (Guaranteed QoS);
- `/dev/shm` a memory-backed emptyDir (NCCL and DataLoader workers need more than 64 MiB);
- uid 1000, non-root, every capability dropped, no privilege escalation, seccomp RuntimeDefault,
  no service-account token, no service links;
- a read-only root filesystem with `/tmp` writable (`read_only_root=False` turns that off);
- required node affinity from the image's contract (cluster/affinity.py), unless turned off;
- a podFailurePolicy: a disrupted pod (eviction, preemption, node drain) is retried without
  counting, any other non-zero exit fails the Job at once.
No liveness probe unless a heartbeat file is asked for (docs/kubernetes.md says why).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torchstack.cluster.affinity import node_affinity
from torchstack.config.contract import Contract
from torchstack.errors import ConfigError
from torchstack.names import RUNTIME_UID, TMP_SIZE_GIB

Doc = dict[str, object]
DEFAULT_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
_DURATION = re.compile(r"(?P<number>[0-9]{1,6})(?P<unit>[smh]?)")
HEARTBEAT_PERIOD_S = 30
# Exit 1 when the file is missing or older than argv[2] seconds (no shell: no quoting).
_HEARTBEAT_PY = ("import os, sys, time; "
                 "sys.exit(time.time() - os.stat(sys.argv[1]).st_mtime > float(sys.argv[2]))")


@dataclass(frozen=True)
class Heartbeat:
    path: str  # a file the program touches while it makes progress
    timeout_s: int  # older than this: the container is stuck


@dataclass(frozen=True)
class PodOptions:
    gpus: int
    cpu: str
    memory: str
    shm: str  # a Kubernetes quantity
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[dict[str, str], ...] = ()
    contract: Contract | None = None  # None: no node affinity (--no-node-affinity)
    read_only_root: bool = True
    heartbeat: Heartbeat | None = None
    env: tuple[tuple[str, str], ...] = ()
    volumes: tuple[tuple[str, str], ...] = ()  # (PVC claim, mount path)
    ports: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    command: tuple[str, ...]
    extra_env: tuple[Doc, ...] = ()  # env entries that are not plain values (fieldRef)
    extra_mounts: tuple[Doc, ...] = ()
    extra_volumes: tuple[Doc, ...] = ()


def parse_duration(text: str, flag: str) -> int:
    """`90`, `90s`, `10m`, `2h` -> seconds (at least 1)."""
    match = _DURATION.fullmatch(text)
    if match is None or int(match["number"]) < 1:
        raise ConfigError(f"bad {flag} {text!r}: not a duration",
                          tip="use a whole number of seconds, minutes or hours: 600, 90s, 10m,"
                              " 2h")
    return int(match["number"]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match["unit"]]


def resources(options: PodOptions) -> Doc:
    amounts = {"nvidia.com/gpu": str(options.gpus), "cpu": options.cpu, "memory": options.memory}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def container_security() -> Doc:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUNTIME_UID,
        "runAsGroup": RUNTIME_UID,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_spec(container: Container, options: PodOptions) -> Doc:
    """A pod spec (restartPolicy Never) around one container."""
    security = container_security()
    security["readOnlyRootFilesystem"] = options.read_only_root
    env: list[Doc] = [{"name": "HOME", "value": "/tmp"},
                      {"name": "XDG_CACHE_HOME", "value": "/tmp/.cache"},
                      {"name": "CUDA_CACHE_PATH", "value": "/tmp/.nv/ComputeCache"}]
    env += [{"name": k, "value": v} for k, v in options.env]
    env += list(container.extra_env)
    mounts: list[Doc] = [*container.extra_mounts, {"name": "dshm", "mountPath": "/dev/shm"},
                         {"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[Doc] = [*container.extra_volumes,
                          {"name": "dshm", "emptyDir": {"medium": "Memory",
                                                        "sizeLimit": options.shm}},
                          {"name": "tmp", "emptyDir": {"sizeLimit": f"{TMP_SIZE_GIB}Gi"}}]
    for index, (claim, path) in enumerate(options.volumes):
        mounts.append({"name": f"data-{index}", "mountPath": path})
        volumes.append({"name": f"data-{index}", "persistentVolumeClaim": {"claimName": claim}})
    body: Doc = {
        "name": container.name,
        "image": container.image,
        "imagePullPolicy": "IfNotPresent",  # a digest names one image: nothing to refresh
        "command": list(container.command),
        "env": env,
        "resources": resources(options),
        "securityContext": security,
        "volumeMounts": mounts,
    }
    if options.ports:
        body["ports"] = [{"name": n, "containerPort": p, "protocol": "TCP"}
                         for n, p in options.ports]
    if options.heartbeat is not None:
        body["livenessProbe"] = heartbeat_probe(options.heartbeat)
    spec: Doc = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNTIME_UID,
            "runAsGroup": RUNTIME_UID,
            "fsGroup": RUNTIME_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "tolerations": tolerations(options.tolerations),
        "containers": [body],
        "volumes": volumes,
    }
    if options.node_selector:
        spec["nodeSelector"] = dict(options.node_selector)
    if options.contract is not None:
        spec["affinity"] = node_affinity(options.contract)
    return spec


def heartbeat_probe(heartbeat: Heartbeat) -> Doc:
    """Fails when the file is missing or stale; the first check waits one timeout."""
    return {
        "exec": {"command": ["python", "-c", _HEARTBEAT_PY, heartbeat.path,
                             str(heartbeat.timeout_s)]},
        "initialDelaySeconds": heartbeat.timeout_s,
        "periodSeconds": HEARTBEAT_PERIOD_S,
        "timeoutSeconds": 10,
        "failureThreshold": 1,
    }


def pod_failure_policy(container: str) -> Doc:
    """Disruption first: an evicted pod also exits non-zero, and the first matching rule wins."""
    return {"rules": [
        {"action": "Ignore",
         "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        # The empty onPodConditions: Kubernetes 1.28's published schema requires the key.
        {"action": "FailJob", "onExitCodes": {"containerName": container, "operator": "NotIn",
                                              "values": [0]}, "onPodConditions": []},
    ]}


def tolerations(extra: tuple[dict[str, str], ...]) -> list[dict[str, str]]:
    merged = [DEFAULT_TOLERATION, *extra]
    unique = {tuple(sorted(t.items())): t for t in merged}
    return list(unique.values())

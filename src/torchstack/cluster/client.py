"""The only code that talks to the Kubernetes API: a check Job's pods, their image IDs and logs.

It uses the official `kubernetes` client with the user's kubeconfig ($KUBECONFIG, read when
called, else ~/.kube/config) and its current or named context. Three calls, all reads: GET the
Job, LIST its pods by the `job-name` label, GET each pod's log. Nothing is created or deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import urllib3.exceptions
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.client.models import V1JobStatus
from kubernetes.config.config_exception import ConfigException

from torchstack.errors import ConfigError

CONTAINER = "checks"  # the container name cluster/manifests.py gives the suite
LOG_LIMIT_BYTES = 16 << 20  # a suite's log is kilobytes; a runaway one is cut (and refused)
TIMEOUT_S = 30.0


@dataclass(frozen=True)
class PodLog:
    name: str
    node: str | None
    phase: str | None
    image_id: str | None  # containerStatuses[name=checks].imageID: what the kubelet ran
    log: str


@dataclass(frozen=True)
class JobLogs:
    context: str
    namespace: str
    job: str
    state: str  # complete, failed or running, from the Job's status
    pods: tuple[PodLog, ...]


def kubeconfig_files(kubeconfig: str | None) -> str:
    """$KUBECONFIG (a list, as kubectl reads it; from Settings) or ~/.kube/config."""
    return kubeconfig or str(Path.home() / ".kube" / "config")


def read_job_logs(job: str, namespace: str | None = None, context: str | None = None,
                  timeout_s: float = TIMEOUT_S, kubeconfig: str | None = None) -> JobLogs:
    files = kubeconfig_files(kubeconfig)
    try:
        # The client's config helpers are untyped.
        contexts, active = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=files)
        chosen = next((c for c in contexts if c["name"] == context), None) if context else active
        if chosen is None:
            names = ", ".join(sorted(c["name"] for c in contexts))
            raise ConfigError(f"--context {context!r} is not in the kubeconfig ({files})",
                              tip=f"use one of: {names}")
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=files, context=chosen["name"])
    # The loader raises ConfigException for what it checks, and whatever PyYAML or a dict
    # lookup raises for the rest (a YAML error, a file that is a bare string).
    except (ConfigException, yaml.YAMLError, OSError, TypeError, AttributeError, KeyError,
            ValueError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"cannot use the kubeconfig {files}: {detail}",
                          tip="set KUBECONFIG to a working kubeconfig (`kubectl config view`"
                              " reads the same), or pass --context") from None
    namespace = namespace or chosen.get("context", {}).get("namespace") or "default"
    where = f"Job {job} in namespace {namespace} (context {chosen['name']})"
    try:
        return JobLogs(chosen["name"], namespace, job, *_read(api, job, namespace, timeout_s))
    except ApiException as exc:
        raise _api_error(exc, where) from None
    except urllib3.exceptions.HTTPError as exc:
        host = api.configuration.host
        raise ConfigError(f"cannot reach the Kubernetes API at {host} for {where}: {exc}",
                          tip="check the cluster is up and `kubectl get jobs` works") from None
    finally:
        api.close()  # type: ignore[no-untyped-call]


def _read(api: client.ApiClient, job: str, namespace: str,
          timeout_s: float) -> tuple[str, tuple[PodLog, ...]]:
    found = client.BatchV1Api(api).read_namespaced_job(job, namespace, _request_timeout=timeout_s)
    uid = found.metadata.uid if found.metadata else None
    listed = client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=f"job-name={job}", _request_timeout=timeout_s)
    pods = []
    for pod in listed.items:
        meta, status = pod.metadata, pod.status
        if meta is None or not meta.name:
            continue
        owners = meta.owner_references or []
        if uid and owners and not any(o.uid == uid for o in owners):
            continue  # a pod of an earlier Job of the same name
        statuses = (status.container_statuses or []) if status else []
        checks = next((s for s in statuses if s.name == CONTAINER), None)
        log = client.CoreV1Api(api).read_namespaced_pod_log(
            meta.name, namespace, container=CONTAINER, limit_bytes=LOG_LIMIT_BYTES,
            _request_timeout=timeout_s)
        pods.append(PodLog(meta.name, pod.spec.node_name if pod.spec else None,
                           status.phase if status else None,
                           checks.image_id if checks else None, str(log)))
    return _state(found.status), tuple(sorted(pods, key=lambda p: p.name))


def _state(status: V1JobStatus | None) -> str:
    for condition in (status.conditions or []) if status else []:
        if condition.status == "True" and condition.type in ("Complete", "Failed"):
            return "complete" if condition.type == "Complete" else "failed"
    return "running"


def _api_error(exc: ApiException, where: str) -> ConfigError:
    if exc.status == 404:
        return ConfigError(f"no {where}: the API server answered 404 ({exc.reason})",
                           tip="`kubectl get jobs -n NAMESPACE` lists the Jobs; pass --namespace"
                               " and --context as you applied the manifests")
    if exc.status in (401, 403):
        return ConfigError(f"not allowed to read {where}: HTTP {exc.status} ({exc.reason})",
                           tip="the kubeconfig's user needs get on jobs and get/list on pods"
                               " and pods/log in that namespace")
    return ConfigError(f"reading {where}: the API server answered HTTP {exc.status}"
                       f" ({exc.reason})", tip="retry; `kubectl describe job` shows its state")

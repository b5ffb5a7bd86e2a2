"""A stand-in Kubernetes API server on 127.0.0.1 for `record import --from-job` tests.

It answers the three reads the official client makes, with bodies written from the Kubernetes
API reference (batch/v1 Job, v1 PodList, the pod log as text/plain), and records each request
so a test can see what the client asked. Everything else is a 404 `Status`, as the API server
sends. No mock of the HTTP layer: the real `kubernetes` client talks HTTP to it.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TOKEN = "test-token-not-a-secret"


@dataclass
class FakePod:
    name: str
    log: str
    image_id: str | None
    phase: str = "Succeeded"
    node: str = "gpu-node-1"
    owner_uid: str | None = None  # None: owned by the Job


@dataclass
class FakeCluster:
    namespace: str = "ml"
    job: str = "ts-check-torch2-9-1-cu128-py3-11-base"
    job_uid: str = "0f0e2a43-8d7c-4d0e-9b1b-3c1f0c5a7e11"
    image: str = "127.0.0.1:5000/torchstack@sha256:" + "0" * 64
    condition: str | None = "Complete"  # None: still running
    pods: list[FakePod] = field(default_factory=list)
    status_override: int | None = None  # answer every request with this HTTP status
    requests: list[tuple[str, str, dict[str, list[str]], str | None]] = field(
        default_factory=list)  # (method, path, query, Authorization)

    def job_body(self) -> dict[str, Any]:
        conditions = [] if self.condition is None else [{
            "type": self.condition, "status": "True",
            "lastProbeTime": "2026-01-01T00:10:00Z",
            "lastTransitionTime": "2026-01-01T00:10:00Z",
        }]
        return {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": self.job, "namespace": self.namespace, "uid": self.job_uid,
                         "resourceVersion": "4711", "creationTimestamp": "2026-01-01T00:00:00Z",
                         "labels": {"app.kubernetes.io/name": "torchstack"}},
            "spec": {
                "backoffLimit": 0, "completions": 1, "parallelism": 1,
                "selector": {"matchLabels": {
                    "batch.kubernetes.io/controller-uid": self.job_uid}},
                "template": {"metadata": {"labels": {"job-name": self.job}}, "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "checks", "image": self.image}]}},
            },
            "status": {"startTime": "2026-01-01T00:00:05Z", "conditions": conditions,
                       **({"succeeded": 1} if self.condition == "Complete" else {}),
                       **({"failed": 1} if self.condition == "Failed" else {}),
                       **({"active": 1} if self.condition is None else {})},
        }

    def pod_body(self, pod: FakePod) -> dict[str, Any]:
        terminated = {"exitCode": 0 if pod.phase == "Succeeded" else 1,
                      "reason": "Completed" if pod.phase == "Succeeded" else "Error",
                      "startedAt": "2026-01-01T00:00:10Z",
                      "finishedAt": "2026-01-01T00:09:50Z"}
        status: dict[str, Any] = {"name": "checks", "ready": False, "restartCount": 0,
                                  "image": self.image, "imageID": pod.image_id or "",
                                  "state": {"terminated": terminated}}
        if pod.image_id is None:
            status = {"name": "checks", "ready": False, "restartCount": 0, "image": self.image,
                      "imageID": "", "state": {"waiting": {"reason": "ErrImagePull"}}}
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": pod.name, "namespace": self.namespace, "uid": f"uid-{pod.name}",
                "labels": {"job-name": self.job, "batch.kubernetes.io/job-name": self.job,
                           "controller-uid": pod.owner_uid or self.job_uid},
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": self.job,
                                     "uid": pod.owner_uid or self.job_uid, "controller": True,
                                     "blockOwnerDeletion": True}],
            },
            "spec": {"nodeName": pod.node, "restartPolicy": "Never",
                     "containers": [{"name": "checks", "image": self.image}]},
            "status": {"phase": pod.phase, "containerStatuses": [status]},
        }

    def answer(self, method: str, path: str,
               query: dict[str, list[str]]) -> tuple[int, str, bytes]:
        """(status, content type, body) for one request."""
        prefix = f"/api/v1/namespaces/{self.namespace}/pods"
        if self.status_override is not None:
            return self.status(self.status_override, "Forbidden", "jobs.batch is forbidden")
        if method != "GET":
            return self.status(405, "MethodNotAllowed", "the fake API server only reads")
        if path == f"/apis/batch/v1/namespaces/{self.namespace}/jobs/{self.job}":
            return 200, "application/json", json.dumps(self.job_body()).encode()
        if path == prefix:
            selector = query.get("labelSelector", [""])[0]
            wanted = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
            items = [self.pod_body(p) for p in self.pods
                     if wanted.items() <= self.pod_body(p)["metadata"]["labels"].items()]
            body = {"apiVersion": "v1", "kind": "PodList",
                    "metadata": {"resourceVersion": "4712"}, "items": items}
            return 200, "application/json", json.dumps(body).encode()
        for pod in self.pods:
            if path == f"{prefix}/{pod.name}/log":
                data = pod.log.encode()
                limit = int(query.get("limitBytes", ["0"])[0] or 0)
                return 200, "text/plain", data[:limit] if limit else data
        return self.status(404, "NotFound", f"the server could not find {path}")

    @staticmethod
    def status(code: int, reason: str, message: str) -> tuple[int, str, bytes]:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code}
        return code, "application/json", json.dumps(body).encode()


class _Handler(BaseHTTPRequestHandler):
    cluster: FakeCluster

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        self.cluster.requests.append(("GET", url.path, query,
                                      self.headers.get("Authorization")))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            code, kind, body = FakeCluster.status(401, "Unauthorized", "Unauthorized")
        else:
            code, kind, body = self.cluster.answer("GET", url.path, query)
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: pytest shows the assertions


class FakeApiServer:
    def __init__(self, cluster: FakeCluster) -> None:
        handler = type("Handler", (_Handler,), {"cluster": cluster})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.cluster = cluster
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeApiServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_kubeconfig(path: Path, server: str, namespace: str | None = "ml") -> Path:
    """A kubeconfig with two contexts: `fake` (current, pointing at `server`) and `other`."""
    context: dict[str, Any] = {"cluster": "fake", "user": "tester"}
    if namespace:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": server}},
                     {"name": "gone", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "tester", "user": {"token": TOKEN}}],
        "contexts": [{"name": "fake", "context": context},
                     {"name": "other", "context": {"cluster": "gone", "user": "tester"}}],
    }
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path

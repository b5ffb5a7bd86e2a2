"""cluster/client.py with the real `kubernetes` client against a local API server
(tests/unit/kubeapi_server).

Nothing here ran against a real cluster: the server answers from the API reference's shapes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.kubeapi_server import TOKEN, FakeApiServer, FakeCluster, FakePod, write_kubeconfig
from torchstack.cluster.client import JobLogs, read_job_logs
from torchstack.errors import ConfigError

IMAGE_ID = "docker-pullable://127.0.0.1:5000/torchstack@sha256:" + "1" * 64



def read(job: str, namespace: str | None = None, context: str | None = None) -> JobLogs:
    """The Job's logs through the kubeconfig the fixtures point $KUBECONFIG at (as the CLI
    hands it down from Settings)."""
    return read_job_logs(job, namespace, context, kubeconfig=os.environ["KUBECONFIG"])

@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster(pods=[FakePod("ts-check-base-x7k2p", "line one\nline two\n", IMAGE_ID)])


@pytest.fixture
def server(cluster: FakeCluster, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApiServer]:
    with FakeApiServer(cluster) as running:
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig",
                                                              running.url)))
        yield running


def test_reads_the_job_its_pods_and_their_logs(server: FakeApiServer,
                                               cluster: FakeCluster) -> None:
    logs = read(cluster.job)
    assert (logs.context, logs.namespace, logs.job, logs.state) == ("fake", "ml", cluster.job,
                                                                    "complete")
    (pod,) = logs.pods
    assert (pod.name, pod.node, pod.phase, pod.image_id, pod.log) == (
        "ts-check-base-x7k2p", "gpu-node-1", "Succeeded", IMAGE_ID, "line one\nline two\n")
    paths = [(method, path) for method, path, _, _ in cluster.requests]
    assert paths == [
        ("GET", f"/apis/batch/v1/namespaces/ml/jobs/{cluster.job}"),
        ("GET", "/api/v1/namespaces/ml/pods"),
        ("GET", "/api/v1/namespaces/ml/pods/ts-check-base-x7k2p/log"),
    ]
    _, _, list_query, auth = cluster.requests[1]
    assert list_query["labelSelector"] == [f"job-name={cluster.job}"]
    assert auth == f"Bearer {TOKEN}"  # the kubeconfig's user, as kubectl would send it
    assert cluster.requests[2][2]["container"] == ["checks"]


def test_a_log_that_looks_like_json_stays_text(server: FakeApiServer,
                                               cluster: FakeCluster) -> None:
    """The client turns a JSON-looking body into Python objects unless it is read as text."""
    cluster.pods[0].log = '{"a": 1}\n'
    assert read(cluster.job).pods[0].log == '{"a": 1}\n'


def test_pods_of_an_earlier_job_of_the_same_name_are_left_out(server: FakeApiServer,
                                                              cluster: FakeCluster) -> None:
    cluster.pods.append(FakePod("ts-check-base-old01", "old\n", IMAGE_ID, owner_uid="old-uid"))
    assert [p.name for p in read(cluster.job).pods] == ["ts-check-base-x7k2p"]


def test_running_and_failed_jobs_say_so(server: FakeApiServer, cluster: FakeCluster) -> None:
    cluster.condition = None
    assert read(cluster.job).state == "running"
    cluster.condition = "Failed"
    assert read(cluster.job).state == "failed"


def test_namespace_flag_beats_the_context(server: FakeApiServer, cluster: FakeCluster) -> None:
    with pytest.raises(ConfigError) as error:
        read(cluster.job, namespace="elsewhere")
    assert "404" in error.value.message and "namespace elsewhere" in error.value.message
    assert error.value.tip and "--namespace" in error.value.tip


def test_default_namespace_without_one_in_the_context(cluster: FakeCluster, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cluster.namespace = "default"
    with FakeApiServer(cluster) as running:
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kc", running.url,
                                                              namespace=None)))
        assert read(cluster.job).namespace == "default"


def test_missing_job_is_a_clear_error(server: FakeApiServer) -> None:
    with pytest.raises(ConfigError) as error:
        read("no-such-job")
    assert "no Job no-such-job in namespace ml (context fake)" in error.value.message


def test_forbidden_says_which_rights_are_missing(server: FakeApiServer,
                                                 cluster: FakeCluster) -> None:
    cluster.status_override = 403
    with pytest.raises(ConfigError) as error:
        read(cluster.job)
    assert "HTTP 403" in error.value.message
    assert error.value.tip and "pods/log" in error.value.tip


def test_unknown_context_lists_the_known_ones(server: FakeApiServer) -> None:
    with pytest.raises(ConfigError) as error:
        read("x", context="prod")
    assert "--context 'prod'" in error.value.message
    assert error.value.tip == "use one of: fake, other"


def test_unreachable_cluster(server: FakeApiServer) -> None:
    with pytest.raises(ConfigError) as error:
        read("x", context="other")  # its server is 127.0.0.1:9, where nothing listens
    assert "cannot reach the Kubernetes API at http://127.0.0.1:9" in error.value.message


@pytest.mark.parametrize("content", [None, "", "clusters: [\n", "just a string\n"])
def test_missing_or_broken_kubeconfig(content: str | None, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "kubeconfig"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("KUBECONFIG", str(path))
    with pytest.raises(ConfigError) as error:
        read("x")
    assert str(path) in error.value.message and error.value.tip

"""Generated flag values for `k8s` and `k8s train`: never a traceback; a value is either refused
with exit 2 naming its flag, or the manifests pass strict Kubernetes schema validation."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from kubernetes_validate.utils import latest_version

from tests.paths import REPO
from torchstack.cli import main

IMAGE = "torch2.9.1-cu128-py3.11-base"
PINNED = "reg.example/ts@sha256:" + "b" * 64
FLAGS = ["--namespace", "--cpu", "--memory", "--shm-size", "--node-selector", "--toleration",
         "--env", "--volume", "--name", "--heartbeat", "--image-ref"]
# Near-misses of the grammar: the characters valid values use, plus look-alikes and invisibles.
GRAMMAR = "abcz09-._/:=@ AZKiMGme\n\t\u0661\u0662\u200b\u202e\u00e9\u2028"
VALUES = st.one_of(st.text(alphabet=GRAMMAR, max_size=80), st.text(max_size=40),
                   st.sampled_from(["a" * 64, "a" * 63, "x=" + "v" * 64, "k:NoSchedule",
                                    "k=v:NoExecute", "pvc:/data", "A=1", "500m", "1e3", "2Gi"]))


@settings(max_examples=600, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flag=st.sampled_from(FLAGS), value=VALUES, train=st.booleans())
def test_flag_values_are_refused_or_valid(flag: str, value: str, train: bool,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    if not train and flag in ("--env", "--volume", "--name", "--heartbeat"):
        train = True  # training-only flags
    ref = [] if flag == "--image-ref" else ["--image-ref", PINNED]
    head = ["k8s", "train", IMAGE] if train else ["k8s", IMAGE]
    argv = ["--matrix", str(REPO / "matrix.yaml"), *head, *ref, f"{flag}={value}"]
    if train:
        argv += ["--", "python", "train.py"]
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    event(f"{flag} {'refused' if code == 2 else 'accepted'}")
    if code == 2:
        assert flag in err or (flag == "--shm-size" and "shm" in err), err
        return
    assert code == 0, err
    for doc in yaml.safe_load_all(out):
        if doc and doc["kind"] != "ConfigMap":
            kubernetes_validate.validate(doc, latest_version(), strict=True)

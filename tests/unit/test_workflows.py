"""The GitHub workflows: valid offline against the vendored schema, and consistent with the repo.

Every nox session, torchstack verb and script a workflow names must exist; third-party actions
are pinned to commit SHAs; permissions are least-privilege; parents build before children.
"""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.paths import REPO
from torchstack.cli import verbs
from torchstack.config.matrix import load_matrix
from torchstack.resolve.order import make_plan, plan_rows

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"uses:\s*(\S+)\s+#\s*v\d+(\.\d+){0,2}\s*$")


def load(path: Path) -> dict[str, Any]:
    document: dict[Any, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in document:  # YAML 1.1 reads the key `on` as a boolean
        document["on"] = document.pop(True)
    return document


def jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [(p.name, name, job) for p in WORKFLOWS for name, job in load(p)["jobs"].items()]


def scripts() -> list[tuple[str, str]]:
    """(where, text) of every `run:` script."""
    found = []
    for workflow, name, job in jobs():
        for index, step in enumerate(job.get("steps", [])):
            if "run" in step:
                found.append((f"{workflow}:{name}:step{index}", step["run"]))
    return found


def commands(script: str) -> list[list[str]]:
    """Each line of a script as words, continuation lines joined; heredoc bodies included."""
    lines = re.sub(r"\\\n", " ", script).splitlines()
    words = []
    for line in lines:
        try:
            words.append(shlex.split(line, comments=True))
        except ValueError:
            words.append(line.split())
    return [w for w in words if w]


def test_the_three_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "build.yml", "gpu-smoke.yml"}


def test_workflows_pass_the_vendored_github_schema_offline() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema",
         "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    stepz: []\n")
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema",
         "vendor.github-workflows", str(broken)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode != 0


def nox_sessions() -> set[str]:
    tree = ast.parse((REPO / "noxfile.py").read_text(encoding="utf-8"))
    sessions = set()
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            call = decorator.func if isinstance(decorator, ast.Call) else decorator
            if ast.unparse(call) in ("nox.session", "session"):
                names = [k.value for k in getattr(decorator, "keywords", []) if k.arg == "name"]
                sessions.add(ast.literal_eval(names[0]) if names else node.name)
    return sessions


def test_noxfile_parses_into_sessions() -> None:
    assert {"lint", "unit", "tests", "build", "gpu_smoke"} <= nox_sessions()


def test_every_nox_session_a_workflow_runs_exists() -> None:
    sessions, called = nox_sessions(), set()
    for where, script in scripts():
        for words in commands(script):
            if "nox" not in words:
                continue
            rest = words[words.index("nox") + 1:]
            for i, word in enumerate(rest):
                if word in ("-s", "--session", "--sessions", "-e"):
                    for name in rest[i + 1:]:
                        if name.startswith("-"):
                            break
                        called.add(name)
                        assert name in sessions, f"{where}: no nox session {name!r}"
    assert {"lint", "unit", "tests", "build", "gpu_smoke"} <= called


def test_every_torchstack_verb_a_workflow_runs_exists() -> None:
    known, named = set(verbs()), set()
    for where, script in scripts():
        for words in commands(script):
            for i, word in enumerate(words[:-1]):
                if word == "torchstack" and (i == 0 or words[i - 1] in ("-m", "then", "do")):
                    rest = words[i + 1:]
                    while rest[:1] == ["--matrix"]:  # the one global option takes a value
                        rest = rest[2:]
                    named.add(rest[0])
                    assert rest[0] in known, f"{where}: no verb `torchstack {rest[0]}`"
    assert "plan" in named


def test_scripts_a_workflow_runs_exist() -> None:
    for where, script in scripts():
        for path in re.findall(r"\b(scripts/[\w./-]+)", script):
            assert (REPO / path).is_file(), f"{where}: {path} does not exist"


def test_third_party_actions_are_pinned_to_a_commit_with_its_version() -> None:
    for path in WORKFLOWS:
        text = path.read_text(encoding="utf-8")
        for line in text.splitlines():
            if not re.match(r"^\s*(-\s+)?uses:", line):
                continue
            reference = line.split("uses:", 1)[1].split("#")[0].strip()
            if reference.startswith("./"):
                continue  # an action or workflow of this repository
            assert SHA_PIN.match(reference), f"{path.name}: not pinned to a SHA: {line.strip()}"
            assert VERSION_COMMENT.search(line), f"{path.name}: add `# vX.Y.Z`: {line.strip()}"


def test_the_same_action_is_pinned_to_the_same_commit_everywhere() -> None:
    pins: dict[str, set[str]] = {}
    for path in WORKFLOWS:
        for action, sha in re.findall(r"uses:\s*([\w./-]+)@([0-9a-f]{40})", path.read_text()):
            pins.setdefault(action, set()).add(sha)
    assert pins and all(len(shas) == 1 for shas in pins.values()), pins


def read_only(permissions: Any) -> bool:
    if permissions in ({}, "read-all"):
        return True
    return isinstance(permissions, dict) and all(v in ("read", "none")
                                                 for v in permissions.values())


def test_permissions_are_least_privilege() -> None:
    for path in WORKFLOWS:
        workflow = load(path)
        assert "permissions" in workflow, f"{path.name}: set a workflow-level default"
        default_read_only = read_only(workflow["permissions"])
        for name, job in workflow["jobs"].items():
            assert default_read_only or "permissions" in job, f"{path.name}:{name}"
            granted = job.get("permissions", {})
            if granted.get("packages") == "write":
                text = yaml.safe_dump(job)
                assert "--push" in text or "docker push" in text, \
                    f"{path.name}:{name} may write packages but pushes nothing"
            assert "write-all" not in str(granted)


def test_jobs_have_timeouts_and_workflows_have_concurrency() -> None:
    for path in WORKFLOWS:
        workflow = load(path)
        assert "concurrency" in workflow, path.name
        for name, job in workflow["jobs"].items():
            assert "timeout-minutes" in job, f"{path.name}:{name}"


def test_checkouts_do_not_keep_the_token() -> None:
    for workflow, name, job in jobs():
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, \
                    f"{workflow}:{name}"


def test_needs_name_existing_jobs() -> None:
    for path in WORKFLOWS:
        workflow = load(path)
        for name, job in workflow["jobs"].items():
            needs = job.get("needs", [])
            for need in [needs] if isinstance(needs, str) else needs:
                assert need in workflow["jobs"], f"{path.name}:{name} needs unknown {need}"


def test_build_has_a_job_per_depth_each_after_its_parents() -> None:
    workflow = load(REPO / ".github" / "workflows" / "build.yml")
    depth_jobs = sorted(n for n in workflow["jobs"] if re.fullmatch(r"build-depth\d+", n))
    rows = plan_rows(make_plan(load_matrix(REPO / "matrix.yaml"), [], everything=True))
    deepest = max(r["depth"] for r in rows)
    assert len(depth_jobs) >= max(deepest + 1, 2)
    plan_script = workflow["jobs"]["plan"]["steps"][-1]["run"]
    assert re.search(rf"\bJOBS ?= ?{len(depth_jobs)}\b", plan_script), \
        "the plan step must know every depth job"
    for depth, name in enumerate(depth_jobs):
        job = workflow["jobs"][name]
        assert f"depth{depth})" in job["strategy"]["matrix"], name
        needs = [job["needs"]] if isinstance(job["needs"], str) else job["needs"]
        assert "plan" in needs
        if depth:
            assert f"build-depth{depth - 1}" in needs, f"{name} must wait for its parents"
        text = yaml.safe_dump(job["steps"])
        assert "nox -s build" in text and "--push" in text


def test_gpu_smoke_runs_on_a_gpu_runner_and_uploads_the_reports() -> None:
    workflow = load(REPO / ".github" / "workflows" / "gpu-smoke.yml")
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == ["self-hosted", "gpu"]
    text = yaml.safe_dump(job["steps"])
    assert "nox -s gpu_smoke" in text and "--push" in text
    uploads = [s for s in job["steps"] if str(s.get("uses", "")).startswith(
        "actions/upload-artifact@")]
    assert uploads and uploads[0]["if"] == "always()"
    paths = uploads[0]["with"]["path"]
    assert "report.json" in paths and "junit.xml" in paths
    assert uploads[0]["with"]["include-hidden-files"] is True  # .torchstack/ is hidden


def test_the_job_summary_the_workflows_rely_on_is_written_by_torchstack() -> None:
    """No workflow writes $GITHUB_STEP_SUMMARY: `torchstack check` must, or nothing shows."""
    workflows_write = any("GITHUB_STEP_SUMMARY" in p.read_text() for p in WORKFLOWS)
    sources = (REPO / "src" / "torchstack").rglob("*.py")
    torchstack_writes = any("GITHUB_STEP_SUMMARY" in p.read_text(encoding="utf-8")
                            for p in sources)
    assert workflows_write or torchstack_writes, (
        "gpu-smoke.yml expects `torchstack check` to append summary.md to $GITHUB_STEP_SUMMARY"
    )


@pytest.mark.parametrize("variable", ["TORCHSTACK_STAGING_REPOSITORY",
                                      "TORCHSTACK_RELEASE_REPOSITORY"])
def test_registry_variables_are_documented(variable: str) -> None:
    used = any(variable in p.read_text() for p in WORKFLOWS)
    assert used and variable in (REPO / "docs" / "ci.md").read_text(encoding="utf-8")


def test_no_workflow_script_imports_torchstack_internals() -> None:
    """CI reads `torchstack plan --json` (or the public API), never the modules below it."""
    for where, script in scripts():
        internals = re.findall(r"(?:from|import)\s+torchstack\.(?!api\b)[\w.]+", script)
        assert not internals, f"{where}: {internals}; use `torchstack plan --json` and jq"

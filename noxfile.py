"""Developer and CI entry points. Each session is thin: it calls `torchstack <verb>`.

`nox -s build` builds the default group, runs the checks that need no GPU and promotes what
the promotion policy allows; `nox -s gpu_smoke` runs the full suite on a GPU runner.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"

PYTHON = "3.11"
# The two-image matrix the CI bake job builds with buildx (.github/workflows/ci.yml).
BAKE_FIXTURE = "tests/fixtures/bake"
# The host's CPU build of torch, for the checks suite's unit tests (lies on disk on CI machines).
TORCH_CPU = "torch==2.13.0"
# The workflow audit; its findings change between releases, so the version is pinned.
ZIZMOR = "zizmor==1.32.0"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Unit and integration tests (needs a running Docker Engine; see scripts/start-services.sh)."""
    session.install("-e", ".[test]", TORCH_CPU)
    # Line and branch coverage of the whole run (settings: [tool.coverage] in pyproject.toml);
    # the floor is what the unit and integration run measured, less a small margin.
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", *(session.posargs or ["tests"]))
    session.run("coverage", "report")


@nox.session(python=PYTHON)
def unit(session: nox.Session) -> None:
    """Unit tests only: no Docker, no network."""
    session.install("-e", ".[test]", TORCH_CPU)
    session.run("pytest", "tests/unit", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff, mypy --strict, zizmor on the workflows, and hadolint on every rendered Dockerfile."""
    # torch too: mypy reads its types for checks/ and the suite's tests.
    session.install("-e", ".[lint,test]", ZIZMOR, TORCH_CPU)
    session.run("ruff", "check", "src", "checks", "tests", "bench", "noxfile.py")
    # GitHub Actions security audit; --offline: no GitHub API calls (and no token needed).
    session.run("zizmor", "--offline", "--quiet", ".github/workflows")
    session.run("mypy")
    session.run("python", "-m", "torchstack", "render", "--check")
    session.run("python", "-m", "torchstack", "--matrix", f"{BAKE_FIXTURE}/matrix.yaml", "render",
                "--check")
    dockerfiles = sorted(str(p) for folder in ("images", f"{BAKE_FIXTURE}/images")
                         for p in Path(folder).glob("*/Dockerfile"))
    session.run("hadolint", *dockerfiles)


@nox.session(python=PYTHON)
def render(session: nox.Session) -> None:
    """Write images/<id>/ from matrix.yaml and layers/ (commit the result)."""
    session.install("-e", ".")
    session.run("torchstack", "render", *session.posargs)


@nox.session(python=PYTHON)
def bootstrap(session: nox.Session) -> None:
    """Make the OS base images locally with debootstrap (hosts that cannot pull)."""
    session.install("-e", ".")
    session.run("torchstack", "base", "bootstrap", *session.posargs)


@nox.session(python=PYTHON)
def build(session: nox.Session) -> None:
    """Build the selected images (default group), run the CPU-safe checks, promote.

    `nox -s build -- [GLOB...] [build: OPTION...] [check: OPTION...] [promote: OPTION...]`,
    e.g. `nox -s build -- 'torch2.9.1-cu128-*' build: --no-progress promote: --push`.
    """
    session.install("-e", ".")
    selection, options = _split(session, ("build", "check", "promote"))
    session.run("torchstack", "build", *selection, *options["build"])
    session.run("torchstack", "check", "--gpu", "auto", *selection, *options["check"])
    session.run("torchstack", "promote", *selection, *options["promote"])


@nox.session(python=PYTHON)
def gpu_smoke(session: nox.Session) -> None:
    """On a GPU runner: the full check suite with --gpu required, then promote.

    `nox -s gpu_smoke -- [GLOB...] [check: OPTION...] [promote: OPTION...]`.
    """
    session.install("-e", ".")
    selection, options = _split(session, ("check", "promote"))
    session.run("torchstack", "check", "--gpu", "required", *selection, *options["check"])
    session.run("torchstack", "promote", *selection, *options["promote"])


# The benchmarks of the BuildKit and layer-plan issues, in order (`nox -s bench -- NAME...`
# runs others of bench/). They print figures, never pass or fail on them, build multi-GB
# images, need the Engine and PyPI, and layer_upgrade needs root (a second dockerd).
BENCHES = ("buildkit_build", "layer_repro", "layer_upgrade")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks in bench/ (not in the default sessions, nor in .ci/run)."""
    session.install("-e", ".")
    for name in session.posargs or BENCHES:
        session.run("python", f"bench/{name.removesuffix('.py')}.py", env={"PYTHONPATH": "src:."})


def _split(session: nox.Session, verbs: tuple[str, ...]) -> tuple[list[str], dict[str, list[str]]]:
    """`GLOB... [VERB: OPTION...]...` -> (the selection, each verb's options).

    The selection (image globs, --all) goes to every verb; a word `VERB:` starts the options of
    that verb, passed to it as they are: torchstack's own parser reads them, nox lists no flag.
    """
    selection: list[str] = []
    options: dict[str, list[str]] = {verb: [] for verb in verbs}
    target = selection
    for arg in session.posargs:
        if arg.endswith(":") and not arg.startswith("-"):
            if arg[:-1] not in options:
                session.error(f"{arg!r}: this session runs {', '.join(verbs)};"
                              f" name one of them, e.g. `{verbs[-1]}: --push`")
            target = options[arg[:-1]]
        else:
            target.append(arg)
    return selection, options

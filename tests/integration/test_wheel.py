"""The built wheel: the suite (and the schemas) ship inside torchstack, never as a top-level
`checks` that could shadow (or be shadowed by) a user's own package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.paths import REPO
from torchstack.lock.uv import find_uv


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([find_uv().path, "build", "--wheel", "--out-dir", str(out), str(REPO)],
                   check=True, capture_output=True, timeout=300)
    (built,) = out.glob("torchstack-*.whl")
    return built


def test_suite_is_inside_torchstack(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert "checks" not in tops
    suite = {name for name in names if name.startswith("torchstack/checks/")}
    expected = {f"torchstack/checks/{p.relative_to(REPO / 'checks').as_posix()}"
                for p in (REPO / "checks").rglob("*.py")}
    assert expected <= suite
    assert "torchstack/checks/suite/nccl.py" in suite
    # The loader validates with the schemas, so they ship too.
    assert {"torchstack/config/schema/matrix.schema.json",
            "torchstack/config/schema/layer.schema.json"} <= set(
        names)


def test_wheel_suite_imports_beside_a_users_checks(wheel: Path, tmp_path: Path) -> None:
    """Unpacked alone (no repo on sys.path), torchstack.checks imports through its relative
    imports, and a user's own top-level `checks` package stays the one `import checks` finds."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    user = tmp_path / "user" / "checks"
    user.mkdir(parents=True)
    (user / "__init__.py").write_text("OWNER = 'user'\n", encoding="utf-8")
    code = ("import checks, torchstack.checks.result as r, torchstack.checks as s; "
            "print(checks.OWNER, s.PACKAGE, r.Report.__module__)")
    done = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path[:0] = "
                           f"[{str(site)!r}, {str(user.parent)!r}]; {code}"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["user", "torchstack.checks", "torchstack.checks.result"]

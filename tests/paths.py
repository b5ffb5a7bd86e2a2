"""Where the tests find the repository, written once (test modules sit at different depths),
and the copy of its matrix that tests change freely."""

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


def copy_matrix_and_locks(root: Path) -> Path:
    """matrix.yaml, layers/ and the committed locks copied into `root`, nothing rendered;
    returns root/matrix.yaml."""
    shutil.copy2(REPO / "matrix.yaml", root / "matrix.yaml")
    shutil.copytree(REPO / "layers", root / "layers")
    for lock in (REPO / "images").glob("*/pylock.toml"):
        target = root / "images" / lock.parent.name / lock.name
        target.parent.mkdir(parents=True)
        shutil.copy2(lock, target)
    return root / "matrix.yaml"

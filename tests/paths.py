"""Where the tests find the repository, written once (test modules sit at different depths)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"

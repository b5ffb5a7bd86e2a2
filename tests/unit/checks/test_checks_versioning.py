"""Version rules of the in-container suite: dotted comparisons, torch labels, pairings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from torchstack.checks.expect import Expected
from torchstack.checks.suite.versions import compare_companion, compare_core
from torchstack.checks.versioning import (
    dotted_ge,
    nccl_string,
    pairs_with,
    parse_dotted,
    prefix_equal,
    public_equal,
    split_local,
    torch_matches,
)


@pytest.mark.parametrize(
    ("actual", "minimum", "ok"),
    [
        ("570.86.15", "570.26", True),
        ("570.26", "570.26", True),
        ("570.100", "570.86", True),  # a string compare would say False
        ("565.57.01", "570.26", False),
        ("580", "575.51.03", True),
        ("570.25.99", "570.26", False),
    ],
)
def test_dotted_ge_is_numeric(actual: str, minimum: str, ok: bool) -> None:
    assert dotted_ge(actual, minimum) is ok


@given(
    st.lists(st.integers(0, 999), min_size=1, max_size=4),
    st.lists(st.integers(0, 999), min_size=1, max_size=4),
)
def test_dotted_ge_agrees_with_zero_padded_tuples(a: list[int], b: list[int]) -> None:
    width = max(len(a), len(b))
    expected = a + [0] * (width - len(a)) >= b + [0] * (width - len(b))
    assert dotted_ge(".".join(map(str, a)), ".".join(map(str, b))) is expected


@pytest.mark.parametrize("bad", ["", "12.x", "v1.2", "1..2"])
def test_parse_dotted_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_dotted(bad)


@pytest.mark.parametrize(
    ("actual", "expected", "ok"),
    [
        ("2.9.1+cu128", "2.9.1+cu128", True),
        ("2.9.1+cu128", "2.9.1", True),  # no label asked: any build of 2.9.1
        ("2.9.1+cu126", "2.9.1+cu128", False),
        ("2.9.1", "2.9.1+cu128", False),
        ("2.9.0+cu128", "2.9.1+cu128", False),
        ("2.10.0+cu128", "2.1.0+cu128", False),
        ("2.9+cu128", "2.9.0+cu128", True),
        ("2.10.0a0+git1234", "2.10.0", False),
    ],
)
def test_torch_matches(actual: str, expected: str, ok: bool) -> None:
    assert torch_matches(actual, expected) is ok


def test_split_local_and_public_equal() -> None:
    assert split_local("2.9.1+cu128") == ("2.9.1", "cu128")
    assert split_local("0.24.1") == ("0.24.1", None)
    assert public_equal("2.9", "2.9.0")
    assert not public_equal("2.9.1", "2.9.10")


@pytest.mark.parametrize(
    ("expected", "actual", "ok"),
    [
        ("3.11", "3.11.2", True),
        ("3.11", "3.12.0", False),
        ("12.8", "12.8", True),
        ("12.8.1", "12.8", True),
        ("12.8", "12.6", False),
        ("3.1", "3.11.2", False),
    ],
)
def test_prefix_equal(expected: str, actual: str, ok: bool) -> None:
    assert prefix_equal(expected, actual) is ok


@pytest.mark.parametrize(
    ("installed", "paired", "ok"),
    [
        ("0.24.1+cu128", "0.24.1", True),  # the local label follows torch's
        ("0.24.0", "0.24.1", False),
        ("0.24", "0.24.1", False),  # 0.24 is 0.24.0
        ("0.9.1", "0.9", True),  # a pair given by minor accepts its patches
        ("0.90.0", "0.9", False),  # components, not text
        ("0.17.0", "0.9.1", False),  # what an unpinned resolve picked for torch 2.9.1
        ("0.9.1rc1", "0.9.1", False),
    ],
)
def test_pairs_with(installed: str, paired: str, ok: bool) -> None:
    assert pairs_with(installed, paired) is ok


def test_the_suite_keeps_no_pairing_or_cudnn_table() -> None:
    """Issue 9: those facts live in the host's compat data and arrive in the expect file."""
    import torchstack.checks.versioning as versioning

    names = set(vars(versioning))
    assert not {n for n in names if "TORCHVISION" in n.upper() or "cudnn" in n.lower()}


def test_nccl_strings() -> None:
    assert nccl_string((2, 27, 5)) == "2.27.5"
    assert nccl_string((2, 27, 7, "+cuda13.0")) == "2.27.7"
    assert nccl_string(22705) == "2.27.5"  # NCCL_VERSION_CODE since 2.9
    assert nccl_string(2708) == "2.7.8"  # the older encoding
    assert nccl_string(None) is None


FULL = Expected(
    torch="2.9.1+cu128", cuda="12.8", cudnn=91002, cudnn_version="9.10.2.21", nccl="2.27.5",
    python="3.11",
)


def test_compare_core_accepts_the_image_from_the_facts_file() -> None:
    assert compare_core(FULL, "2.9.1+cu128", "12.8", 91002, "2.27.5", "3.11.9") == []


def test_compare_core_names_every_difference() -> None:
    problems = compare_core(FULL, "2.9.1+cu126", "12.6", 90501, None, "3.12.1")
    text = " ".join(problems)
    assert len(problems) == 5
    assert "torch is 2.9.1+cu126, expected 2.9.1+cu128" in text
    assert "torch.version.cuda is 12.6, expected 12.8" in text
    # The dotted form is the host's (expected.cudnn_version), not decoded by the suite.
    assert (
        "cuDNN is 90501 (torch.backends.cudnn.version()), expected 91002 (cuDNN 9.10.2.21)"
        in text
    )
    assert "NCCL is unavailable, expected 2.27.5" in text
    assert "Python is 3.12.1, expected 3.11" in text


def test_compare_core_cpu_build_against_cuda_expectation() -> None:
    problems = compare_core(Expected(cuda="12.8"), "2.9.1+cpu", None, None, None, "3.11.2")
    assert problems == ["torch.version.cuda is none (CPU-only torch build), expected 12.8"]


def test_companion_pairing_and_expectation() -> None:
    assert compare_companion("torchvision", "0.24.1+cu128", "0.24.1", "0.24.1", "2.9.1") == ([], [])
    problems, _ = compare_companion("torchvision", "0.24.0", "0.24.1", None, "2.9.1+cu128")
    assert problems == ["torchvision 0.24.0 does not pair with torch 2.9.1+cu128 (needs 0.24.1)"]
    problems, _ = compare_companion("torchaudio", None, "2.9.1", "2.9.1", "2.9.1")
    assert problems == ["torchaudio is not installed, expected 2.9.1"]
    problems, notes = compare_companion("torchvision", "0.28.0", None, None, "2.13.0")
    assert problems == [] and notes == ["no torchvision pairing given for torch 2.13.0"]
    problems, _ = compare_companion("torchcodec", "0.7.0", "0.9.1", None, "2.9.1")
    assert problems == ["torchcodec 0.7.0 does not pair with torch 2.9.1 (needs 0.9.1)"]

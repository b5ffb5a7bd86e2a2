"""Each image's contract (driver floor + compiled GPU archs) from the compat facts, and where it
goes: the expect file (judged by the `versions` and `driver` checks), plan --json, records."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from tests.paths import REPO
from torchstack.checks.expect import ExpectError, parse_expect
from torchstack.checks.registry import CHECK_IDS
from torchstack.checks.suite.driver import contract_problem
from torchstack.checks.suite.versions import arch_flags, compare_arch
from torchstack.cli import main
from torchstack.cluster.affinity import driver_clauses
from torchstack.config.compat import load_compat
from torchstack.config.contract import contract_for
from torchstack.config.expected import expect_for
from torchstack.config.matrix import load_matrix

# shared/facts/torch-cuda.md ("Arch lists", and the image readout of the cu128 base), plus the
# cu118/cu121 lists of PyTorch's build_cuda.sh (cited in compat.yaml), written out by hand.
CU128_FLAGS = ("sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120")
FLAGS = {
    ("2.9.1", "12.8"): set(CU128_FLAGS),
    ("2.9.1", "12.6"): {"sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"},
    ("2.9.1", "13.0"): {"sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"},
    ("2.7.1", "11.8"): {"sm_37", "sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"},
    ("2.5.1", "12.1"): {"sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"},
}


@pytest.mark.parametrize(("torch", "cuda"), sorted(FLAGS))
def test_contract_arch_flags_follow_the_facts(torch: str, cuda: str) -> None:
    contract = contract_for(torch, cuda)
    assert set(contract.arch_flags() or ()) == FLAGS[(torch, cuda)]
    assert contract.sources, "every arch list cites where it was read"
    assert set(contract.sources) <= set(load_compat().sources)


def test_contract_rules() -> None:
    cu128, cu130 = contract_for("2.9.1", "12.8"), contract_for("2.9.1", "13.0")
    assert cu128.admits_gpu((8, 9)) and not cu128.admits_gpu((6, 1))
    assert not cu128.admits_gpu((13, 0)) and cu130.admits_gpu((13, 0))  # PTX JITs forward
    assert not cu130.admits_gpu((7, 0))
    assert cu128.admits_driver("570.124.06") and not cu128.admits_driver("570.20")
    assert contract_for("2.10.0", "12.8").arch_flags() is None  # not recorded: no arch gate


def test_driver_clauses_spell_greater_or_equal() -> None:
    rendered = [c.render() for c in driver_clauses("560.28.03", ("M", "m", "r"))]
    assert rendered == [
        [{"key": "M", "operator": "Gt", "values": ["560"]}],
        [{"key": "M", "operator": "In", "values": ["560"]},
         {"key": "m", "operator": "Gt", "values": ["28"]}],
        [{"key": "M", "operator": "In", "values": ["560"]},
         {"key": "m", "operator": "In", "values": ["28"]},
         {"key": "r", "operator": "Gt", "values": ["2"]}],
    ]


def test_compare_arch() -> None:
    assert compare_arch(CU128_FLAGS, " ".join(reversed(CU128_FLAGS))) == []  # order is free
    (problem,) = compare_arch(CU128_FLAGS, "sm_80 sm_86 sm_90")
    assert "missing sm_70 sm_75 sm_100 sm_120" in problem
    (problem,) = compare_arch(CU128_FLAGS, " ".join(CU128_FLAGS) + " compute_120")
    assert "not in the contract compute_120" in problem
    assert compare_arch(None, "sm_80") == []  # nothing asked
    assert "reports no compiled GPU architectures" in compare_arch(CU128_FLAGS, None)[0]


def test_arch_flags_reads_torch_without_a_gpu() -> None:
    fake = SimpleNamespace(_C=SimpleNamespace(_cuda_getArchFlags=lambda: "sm_80 sm_90"))
    assert arch_flags(fake) == "sm_80 sm_90"
    assert arch_flags(SimpleNamespace(_C=SimpleNamespace())) is None


def test_driver_check_judges_the_gpu_against_the_contract() -> None:
    assert contract_problem((9, 0), CU128_FLAGS) is None
    assert contract_problem((8, 9), CU128_FLAGS) is None
    problem = contract_problem((6, 1), CU128_FLAGS)
    assert problem and "sm_61 is outside the image's arch contract" in problem
    assert contract_problem((6, 1), None) is None


def test_expect_carries_the_contract_and_the_suite_parses_it() -> None:
    matrix = load_matrix(REPO / "matrix.yaml")
    document = expect_for(matrix.by_id()["torch2.9.1-cu128-py3.11-base"], matrix)
    expected = document["expected"]
    assert isinstance(expected, dict) and expected["arch_flags"] == list(CU128_FLAGS)
    parsed = parse_expect(json.loads(json.dumps(document)), check_ids=CHECK_IDS)
    assert parsed.expected.arch_flags == CU128_FLAGS
    expected["arch_flags"] = ["sm_90\n"]
    with pytest.raises(ExpectError, match="arch_flags"):
        parse_expect(document, check_ids=CHECK_IDS)


def test_plan_json_carries_the_contract(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--matrix", str(REPO / "matrix.yaml"), "plan", "--json", "--all"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)["include"]}
    row = rows["torch2.9.1-cu128-py3.11-base"]
    assert row["contract_driver_min"] == "570.26" and row["contract_ptx"] is None
    assert row["contract_arch"] == ["7.0", "7.5", "8.0", "8.6", "9.0", "10.0", "12.0"]
    assert row["contract_arch_flags"] == list(CU128_FLAGS)
    assert rows["torch2.9.1-cu130-py3.11-base"]["contract_ptx"] == "12.0"
    assert rows["torch2.7.1-cu118-py3.11-base"]["contract_driver_min"] == "520.61.05"

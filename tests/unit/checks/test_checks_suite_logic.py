"""CPU-testable logic of the individual checks: nccl maths, device counting, arch support,
shm and hygiene verdicts, driver-version parsing."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from torchstack.checks._allreduce_worker import RESULT_PREFIX
from torchstack.checks.nvml import parse_proc_driver
from torchstack.checks.suite import hygiene, shm
from torchstack.checks.suite.cuda import cuda_visible_count, expected_visible, nvidia_visible_count
from torchstack.checks.suite.driver import arch_support, parse_arch
from torchstack.checks.suite.nccl import (
    MIB,
    Plan,
    bus_bandwidth,
    evaluate,
    message_sizes,
    size_label,
    supervise,
    worker_commands,
)

# --- nccl --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ranks", "factor"), [(1, 0.0), (2, 1.0), (4, 1.5), (8, 1.75)])
def test_bus_bandwidth_is_algbw_times_2_n_minus_1_over_n(ranks: int, factor: float) -> None:
    assert bus_bandwidth(100.0, ranks) == pytest.approx(100.0 * factor)


def test_message_sizes_double_from_one_mib() -> None:
    sizes = message_sizes(256 * MIB)
    assert sizes[0] == MIB and sizes[-1] == 256 * MIB and len(sizes) == 9
    assert all(sizes[i + 1] == 2 * sizes[i] for i in range(len(sizes) - 1))
    assert message_sizes(3 * MIB) == [MIB, 2 * MIB]
    assert message_sizes(4096) == [4096]
    assert size_label(16 * MIB) == "16MiB" and size_label(4096) == "4096B"


def _doc(ranks: int, mismatches: int = 0) -> dict[str, object]:
    return {
        "backend": "nccl",
        "world_size": ranks,
        "mismatches": mismatches,
        "expected_value": ranks * (ranks + 1) / 2,
        "results": [
            {"bytes": MIB, "seconds": MIB / 50e9},
            {"bytes": 2 * MIB, "seconds": 2 * MIB / 100e9},
        ],
    }


def test_evaluate_reports_per_size_and_peak_busbw() -> None:
    outcome = evaluate(_doc(8), Plan("nccl", 8, [MIB, 2 * MIB], 5, 20), None)
    assert outcome.status == "pass"
    assert outcome.metrics["algbw_1MiB"].value == pytest.approx(50.0)
    assert outcome.metrics["busbw_2MiB"].value == pytest.approx(175.0)
    assert outcome.metrics["peak_busbw"].value == pytest.approx(175.0)
    assert outcome.metrics["peak_busbw"].unit == "GB/s"


def test_evaluate_single_rank_explains_zero_busbw() -> None:
    outcome = evaluate(_doc(1), Plan("nccl", 1, [MIB], 5, 20), None)
    assert outcome.status == "pass" and "busbw is 0 by definition for one rank" in outcome.message
    assert outcome.metrics["peak_busbw"].value == 0.0


def test_evaluate_fails_on_wrong_sums_and_below_gate() -> None:
    plan = Plan("nccl", 8, [MIB], 5, 20)
    wrong = evaluate(_doc(8, mismatches=3), plan, None)
    assert wrong.status == "fail" and "3 wrong element(s)" in wrong.message
    big = {**_doc(8), "results": [{"bytes": 8 << 30, "seconds": (8 << 30) / 200e9}]}
    slow = evaluate(big, plan, 400.0)  # busbw 200 * 1.75 = 350
    assert slow.status == "fail" and "busbw 350.0 GB/s at 8GiB is below the 400 GB/s gate" in (
        slow.message
    )
    assert evaluate(big, plan, 300.0).status == "pass"


def test_a_gate_needs_gate_sized_messages() -> None:
    """Small messages are latency-bound: a gate judged on them would mean nothing."""
    outcome = evaluate(_doc(8), Plan("nccl", 8, [MIB, 2 * MIB], 5, 20), 100.0)
    assert outcome.status == "fail" and "raise thresholds.nccl_max_bytes" in outcome.message


# --- cuda: how many devices should torch see -----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "count"),
    [
        ("0,1,2,3", 4),
        ("", 0),
        ("-1", 0),
        ("0,1,x,2", 2),
        ("GPU-8a1b2c3d-aaaa", 1),
        ("MIG-1f2e3d4c-bbbb,MIG-5a6b7c8d-cccc", 2),
        (" 0 , 1 ", 2),
    ],
)
def test_cuda_visible_count(value: str, count: int) -> None:
    assert cuda_visible_count(value) == count


def test_nvidia_visible_count_and_priority() -> None:
    assert nvidia_visible_count("all") is None and nvidia_visible_count("void") is None
    assert nvidia_visible_count("none") == 0
    assert nvidia_visible_count("GPU-a,GPU-b,GPU-c") == 3
    assert expected_visible({"CUDA_VISIBLE_DEVICES": "0", "NVIDIA_VISIBLE_DEVICES": "0,1"}, 8) == (
        1,
        "CUDA_VISIBLE_DEVICES",
    )
    assert expected_visible({"NVIDIA_VISIBLE_DEVICES": "0,1"}, 8) == (2, "NVIDIA_VISIBLE_DEVICES")
    assert expected_visible({"NVIDIA_VISIBLE_DEVICES": "all"}, 8) == (8, "NVML")
    assert expected_visible({}, None)[0] is None


# --- driver: is the GPU's architecture in torch's arch list -------------------------------------

CU128 = ["sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]


def test_parse_arch() -> None:
    assert parse_arch("sm_90") == ("sm", 9, 0, "")
    assert parse_arch("compute_120") == ("compute", 12, 0, "")
    assert parse_arch("sm_90a") == ("sm", 9, 0, "a")
    assert parse_arch("gfx90a") is None


@pytest.mark.parametrize(
    ("capability", "arch_list", "ok", "fragment"),
    [
        ((9, 0), CU128, True, "sm_90 native"),
        ((8, 9), CU128, True, "runs sm_86 code"),  # L40S / RTX 4090 on cu128 wheels
        ((10, 3), ["sm_90", "compute_100"], True, "JIT-compiles PTX compute_100"),
        ((6, 1), CU128, False, "sm_61 is not supported"),
        ((12, 0), ["sm_90", "sm_100"], False, "not supported"),
        ((9, 1), ["sm_90a"], False, "not supported"),  # arch-specific cubins run on 9.0 only
        ((8, 0), ["compute_86"], False, "not supported"),  # PTX newer than the GPU
    ],
)
def test_arch_support(
    capability: tuple[int, int], arch_list: list[str], ok: bool, fragment: str
) -> None:
    supported, how = arch_support(capability, arch_list)
    assert supported is ok and fragment in how


def test_parse_proc_driver_versions() -> None:
    proprietary = (
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  570.86.15  Tue Jan  7 "
        "00:00:00 UTC 2025\nGCC version:  gcc version 12.2.0\n"
    )
    open_module = (
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  "
        "Release Build  (dvs-builder@U16-I3-B03-4-3)\n"
    )
    assert parse_proc_driver(proprietary) == "570.86.15"
    assert parse_proc_driver(open_module) == "580.65.06"
    assert parse_proc_driver("") is None


# --- shm -------------------------------------------------------------------------------------


def test_shm_judge_and_fix_message() -> None:
    small = shm.judge(64 * MIB, 1 << 30)
    assert small.status == "fail"
    assert "64.0 MiB" in small.message and "--shm-size=1g" in small.message
    assert "medium: Memory" in small.message
    assert shm.judge(2 << 30, 1 << 30).status == "pass"


def test_shm_reads_the_filesystem_size(tmp_path: Path) -> None:
    stats = os.statvfs(tmp_path)
    assert shm.shm_total_bytes(str(tmp_path)) == stats.f_frsize * stats.f_blocks > 0


# --- hygiene ------------------------------------------------------------------------------------


def test_hygiene_finds_world_writable_paths_but_not_symlinks(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    clean = tmp_path / "pkg" / "ok.py"
    clean.write_text("")
    bad = tmp_path / "pkg" / "bad.py"
    bad.write_text("")
    bad.chmod(0o666)
    link = tmp_path / "pkg" / "link"
    link.symlink_to(clean)  # symlinks show 0o777 but mean nothing
    bad_dir = tmp_path / "open"
    bad_dir.mkdir()
    bad_dir.chmod(0o777)
    assert sorted(hygiene.world_writable([str(tmp_path)])) == sorted([str(bad), str(bad_dir)])
    outcome = hygiene.judge(1000, [str(tmp_path)])
    assert outcome.status == "fail" and str(bad) in outcome.message
    assert outcome.metrics["world_writable_paths"].value == 2


def test_hygiene_lists_at_most_ten_paths(tmp_path: Path) -> None:
    for index in range(13):
        path = tmp_path / f"f{index:02d}"
        path.write_text("")
        path.chmod(0o646)
    outcome = hygiene.judge(1000, [str(tmp_path)])
    assert "13 world-writable path(s)" in outcome.message and "and 3 more" in outcome.message
    assert sum(f"f{i:02d}" in outcome.message for i in range(13)) == 10


def test_hygiene_root_user_fails_and_clean_tree_passes(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("")
    (tmp_path / "x").chmod(0o644)
    tmp_path.chmod(0o755)
    root = hygiene.judge(0, [str(tmp_path)])
    assert root.status == "fail" and "runs as root (uid 0)" in root.message
    assert "USER" in root.message and "runAsNonRoot" in root.message
    assert hygiene.judge(1000, [str(tmp_path)]).status == "pass"


def test_distinct_roots_drops_nested_and_missing(tmp_path: Path) -> None:
    inner = tmp_path / "lib" / "site-packages"
    inner.mkdir(parents=True)
    roots = hygiene.distinct_roots([str(tmp_path), str(inner), str(tmp_path / "missing")])
    assert roots == [os.path.realpath(tmp_path)]


# --- nccl worker-group supervision (plain Python processes stand in for the ranks) -------------


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_supervise_returns_rank_zero_document() -> None:
    line = RESULT_PREFIX + json.dumps({"world_size": 2, "results": []})
    result = supervise([_py(f"print('noise'); print({line!r})"), _py("pass")], None, 30)
    assert result == {"world_size": 2, "results": []}


def test_supervise_reports_a_failing_rank_with_its_output() -> None:
    result = supervise(
        [_py("import time; time.sleep(30)"), _py("print('NCCL WARN boom'); raise SystemExit(3)")],
        None,
        30,
    )
    assert isinstance(result, str)
    assert result.startswith("rank 1 exited with code 3") and "NCCL WARN boom" in result


def test_supervise_kills_a_hung_group_at_the_deadline() -> None:
    started = time.monotonic()
    result = supervise([_py("import time; time.sleep(60)")] * 2, None, 1.0)
    assert time.monotonic() - started < 10
    assert isinstance(result, str)
    assert result.startswith("all-reduce hung; check NCCL_DEBUG=INFO, /dev/shm, NCCL_P2P/IB")


def test_worker_commands_one_per_rank() -> None:
    commands = worker_commands(Plan("gloo", 2, [MIB, 2 * MIB], 1, 3), 12345, 50.0)
    assert [c[c.index("--rank") + 1] for c in commands] == ["0", "1"]
    assert commands[0][commands[0].index("--sizes") + 1] == f"{MIB},{2 * MIB}"
    assert "torchstack.checks._allreduce_worker" in commands[0]  # the name it was imported by


def test_hygiene_does_not_enter_the_suite_folder(tmp_path: Path) -> None:
    mounted = tmp_path / "torchstack" / "checks"
    mounted.mkdir(parents=True)
    (mounted / "stray.py").write_text("")
    (mounted / "stray.py").chmod(0o666)
    shipped = tmp_path / "app.py"
    shipped.write_text("")
    shipped.chmod(0o666)
    found = list(hygiene.world_writable([str(tmp_path)], skip=[str(mounted)]))
    assert found == [str(shipped)]

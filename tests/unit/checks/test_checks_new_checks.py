"""compile, audio and train: the logic that decides, without the images (those are in
tests/integration/test_broken_images.py)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import stat
from pathlib import Path

import pytest

from torchstack.checks.expect import Expect, Expected
from torchstack.checks.spec import CheckContext
from torchstack.checks.suite import audio, compile, train


def _tool(folder: Path, name: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_toolchain_names_the_missing_compiler_and_headers(tmp_path: Path) -> None:
    header = tmp_path / "Python.h"
    empty = {"PATH": str(tmp_path)}
    problems = compile.toolchain_problems(empty, need_cc=True, header=header)
    assert problems == [
        "no C++ compiler found (looked for g++, c++, clang++ on PATH)",
        "no C compiler found for Triton (looked for gcc, cc, clang)",
        f"the Python headers are missing ({header} does not exist)",
    ]
    _tool(tmp_path, "g++")
    header.write_text("")
    assert compile.toolchain_problems(empty, need_cc=False, header=header) == []
    # $CXX wins, and a $CXX that is not there is named as such.
    assert compile.toolchain_problems({**empty, "CXX": "clang++-18"}, False, header) == [
        "no C++ compiler found (looked for $CXX=clang++-18 on PATH)"
    ]


def test_compile_fails_with_the_fix_when_no_compiler(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    pytest.importorskip("torch")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    outcome = compile.run(CheckContext(gpu_mode="off"))
    assert outcome.status == "fail"
    assert "no C++ compiler found" in outcome.message
    assert "apt-get install g++ python3-dev" in outcome.message


def test_compile_caches_live_under_the_temp_dir_and_are_removed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("HOME", "/nonexistent")
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    with compile.private_caches() as root:
        assert Path(root).parent == tmp_path
        for key in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "TRITON_HOME",
                    "XDG_CACHE_HOME", "HOME"):
            assert os.environ[key].startswith(root + os.sep), key
        assert os.environ["USER"]  # getpass.getuser() works for a uid without a passwd entry
    assert not Path(root).exists() and os.environ["HOME"] == "/nonexistent"


@pytest.mark.parametrize(
    ("installed", "paired", "problem"),
    [
        ("0.9.1", "0.9.1", None),
        (None, "0.9.1", None),  # not installed: reported by the import step instead
        ("0.9.1", None, None),  # no pairing given
        ("0.7.0", "0.9.1", "torchcodec 0.7.0 is installed but torch 2.9.1 pairs with "
                           "torchcodec 0.9.1; pin torchcodec==0.9.1 in the nlp layer"),
    ],
)
def test_torchcodec_pairing(installed: str | None, paired: str | None,
                            problem: str | None) -> None:
    assert audio.pairing_problem(installed, paired, "2.9.1") == problem


def test_audio_refuses_a_mismatched_torchcodec_without_importing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("torch")
    monkeypatch.setattr(audio, "dist_version", lambda name: "0.7.0")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())

    def no_import(name: str) -> None:
        raise AssertionError(f"imported {name}")

    monkeypatch.setattr(importlib, "import_module", no_import)
    ctx = CheckContext(expect=Expect(expected=Expected(paired={"torchcodec": "0.9.1"})))
    outcome = audio.run(ctx)
    assert outcome.status == "fail" and "pin torchcodec==0.9.1" in outcome.message


def test_audio_without_torchcodec_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    outcome = audio.run(CheckContext())
    assert outcome.status == "fail" and "TorchCodec is not installed" in outcome.message


def test_audio_compare_allows_16_bit_rounding_only() -> None:
    torch = pytest.importorskip("torch")
    wave = audio.sine(torch)
    assert wave.shape == (audio.CHANNELS, audio.FRAMES)
    assert float(wave.abs().max()) == pytest.approx(audio.AMPLITUDE, rel=1e-3)
    rounded = torch.round(wave * 32767) / 32767
    assert audio.compare(torch, wave, rounded, audio.SAMPLE_RATE) is None
    assert "differ by up to" in str(audio.compare(torch, wave, wave + 0.01, audio.SAMPLE_RATE))
    assert "Hz" in str(audio.compare(torch, wave, wave, 8000))
    assert "shape" in str(audio.compare(torch, wave, wave[:1], audio.SAMPLE_RATE))


@pytest.mark.parametrize(
    ("use_gpu", "gpus", "plan"),
    [(False, 0, ("gloo", 2)), (True, 1, ("gloo", 2)), (True, 2, ("nccl", 2)),
     (True, 8, ("nccl", 8))],
)
def test_ddp_plan(use_gpu: bool, gpus: int, plan: tuple[str, int]) -> None:
    assert train.ddp_plan(use_gpu, gpus) == plan


def test_torchrun_command_is_standalone_on_loopback() -> None:
    command = train.torchrun_command("gloo", 2, "/tmp/x", 60)
    assert command[1:5] == ["-m", "torch.distributed.run", "--standalone", "--local-addr"]
    assert command[command.index("--nproc-per-node") + 1] == "2"
    # Started under the name this process imported the suite by (in images: checks._ddp_worker).
    assert command[command.index("-m", 2) + 1] == "torchstack.checks._ddp_worker"


def test_grad_comparison_catches_a_wrong_gradient() -> None:
    torch = pytest.importorskip("torch")
    want = train.reference_grads(torch)
    assert train.grad_problems(torch, dict(want), want) == []
    # Summed instead of averaged across 2 ranks: twice the gradient.
    doubled = {name: grad * 2 for name, grad in want.items()}
    assert len(train.grad_problems(torch, doubled, want)) == len(want)
    assert "expected" in train.grad_problems(torch, {}, want)[0]

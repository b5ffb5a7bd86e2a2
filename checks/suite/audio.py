"""audio: torchaudio writes a WAV file and reads it back (through TorchCodec and FFmpeg).

Since torchaudio 2.9 `torchaudio.save` / `torchaudio.load` go through TorchCodec, which loads
FFmpeg's shared libraries. A known sine wave is saved under the temp dir, loaded back and
compared sample by sample within 16-bit quantisation error. The installed TorchCodec must be
the release paired with this torch (`expected.paired.torchcodec`, from the host's compat
data): TorchCodec's wheels declare no torch requirement, so nothing else keeps them in step.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import shutil
import tempfile
from typing import Any

from ..facts import dist_version
from ..result import Metric, Outcome, failed, passed
from ..spec import CheckContext, CheckSpec
from ..versioning import pairs_with

SAMPLE_RATE = 16_000
FREQUENCY_HZ = 440.0
AMPLITUDE = 0.5
FRAMES = 4_000  # a quarter second
CHANNELS = 2
# 16-bit PCM: one step is 1/32768; rounding gives at most half a step, allow two steps.
TOLERANCE = 2.0 / 32768
INSTALL_FIX = (
    "install TorchCodec in the nlp layer, pinned to the release paired with torch "
    "(compat data: torchcodec), and FFmpeg's shared libraries from the OS "
    "(Debian bookworm: libavcodec59 libavformat59 libavutil57 libswresample4 ...)"
)
FFMPEG_FIX = (
    "TorchCodec loads FFmpeg's shared libraries (major versions 4 to 7): install them from "
    "the OS (Debian bookworm: apt-get install libavcodec59 libavformat59 libavutil57 "
    "libswresample4 libswscale6 libavdevice59 libavfilter8)"
)


def sine(torch: Any) -> Any:
    """(CHANNELS, FRAMES) float32: channel c is the sine wave shifted by c quarter periods."""
    t = torch.arange(FRAMES, dtype=torch.float64) / SAMPLE_RATE
    rows = [
        AMPLITUDE * torch.sin(2 * math.pi * FREQUENCY_HZ * t + c * math.pi / 2)
        for c in range(CHANNELS)
    ]
    return torch.stack(rows).to(torch.float32)


def pairing_problem(installed: str | None, paired: str | None, torch_version: str) -> str | None:
    if installed is None or paired is None:
        return None
    if pairs_with(installed, paired):
        return None
    return (
        f"torchcodec {installed} is installed but torch {torch_version} pairs with "
        f"torchcodec {paired}; pin torchcodec=={paired} in the nlp layer"
    )


def compare(torch: Any, written: Any, loaded: Any, rate: int) -> str | None:
    if rate != SAMPLE_RATE:
        return f"read back at {rate} Hz, wrote {SAMPLE_RATE} Hz"
    if tuple(loaded.shape) != tuple(written.shape):
        return f"read back shape {tuple(loaded.shape)}, wrote {tuple(written.shape)}"
    error = float((loaded.to(torch.float32) - written).abs().max())
    if error > TOLERANCE:
        return (
            f"samples differ by up to {error:.2e}, more than 16-bit quantisation "
            f"({TOLERANCE:.1e})"
        )
    return None


def round_trip(torch: Any, torchaudio: Any) -> tuple[str | None, float]:
    """(problem or None, the largest sample error)."""
    folder = tempfile.mkdtemp(prefix="torchstack-audio-")
    try:
        path = os.path.join(folder, "sine.wav")
        written = sine(torch)
        torchaudio.save(path, written, SAMPLE_RATE)
        loaded, rate = torchaudio.load(path)
        problem = compare(torch, written, loaded, int(rate))
        if problem is not None:
            return problem, math.nan
        return None, float((loaded.to(torch.float32) - written).abs().max())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(ctx: CheckContext) -> Outcome:
    import torch

    torch_version = str(torch.__version__)
    installed = dist_version("torchcodec")
    paired = ctx.expect.expected.paired.get("torchcodec")
    mismatch = pairing_problem(installed, paired, torch_version)
    if importlib.util.find_spec("torchcodec") is None:
        return failed(
            "TorchCodec is not installed: torchaudio.save/load need it since torchaudio 2.9 "
            f"(they raise 'TorchCodec is required'). Fix: {INSTALL_FIX}"
        )
    if mismatch:
        # Not imported: a TorchCodec built against another torch can abort the whole process
        # on import (seen: 0.7.0 under torch 2.9.1 dies with SIGABRT in vector::reserve).
        return failed(f"{mismatch} (not imported: a mismatched build can crash on import)")
    try:
        importlib.import_module("torchcodec")
        torchaudio = importlib.import_module("torchaudio")
    except Exception as exc:
        return failed(
            f"importing TorchCodec failed ({type(exc).__name__}: {_short(exc)}). "
            f"Fix: {FFMPEG_FIX}"
        )
    try:
        problem, error = round_trip(torch, torchaudio)
    except Exception as exc:
        problem, error = f"{type(exc).__name__}: {_short(exc)}", math.nan
    metrics = {"max_sample_error": Metric(error, "ratio")}
    if problem is not None:
        return failed(
            f"WAV round trip through torchaudio.save/load failed: {problem}. Fix: {FFMPEG_FIX}",
            metrics,
        )
    pair = f" (paired with torch {torch_version})" if paired else " (no pairing given)"
    return passed(
        f"torchaudio.save/load round trip of a {CHANNELS}-channel {FREQUENCY_HZ:g} Hz WAV "
        f"within {error:.1e} via torchcodec {installed}{pair}",
        metrics,
    )


def _short(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."


CHECK = CheckSpec(
    id="audio",
    layers=("nlp",),
    needs_gpu=False,
    timeout_s=120,
    run=run,
    summary="torchaudio.save/load WAV round trip through TorchCodec + FFmpeg, its pairing",
)

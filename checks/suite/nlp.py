"""nlp: a tiny randomly initialised transformers model runs a forward pass on the device, and
torchaudio computes a spectrogram.

The model is built from a config (no weights), and the hub is switched off before transformers
is imported, so nothing is downloaded.
"""

from __future__ import annotations

import importlib
import os

from ..result import Outcome, failed, passed
from ..spec import CheckContext, CheckSpec

FIX = "install the nlp layer's packages (transformers, torchaudio paired with torch)"
BATCH, SEQ, HIDDEN = 2, 16, 32
N_FFT, SAMPLES = 64, 1600


def transformer_problems(device_name: str) -> list[str]:
    # Must be set before the first transformers import (it reads them at import time).
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch

    try:
        transformers = importlib.import_module("transformers")
    except Exception as exc:
        return [f"transformers is not importable ({type(exc).__name__}: {exc}); {FIX}"]
    config = transformers.BertConfig(
        vocab_size=128,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    torch.manual_seed(0)
    device = torch.device(device_name)
    model = transformers.BertModel(config).eval().to(device)
    ids = torch.randint(0, 128, (BATCH, SEQ), device=device)
    with torch.no_grad():
        hidden = model(input_ids=ids).last_hidden_state
    problems = []
    if tuple(hidden.shape) != (BATCH, SEQ, HIDDEN):
        problems.append(
            f"BertModel output shape {tuple(hidden.shape)}, expected {(BATCH, SEQ, HIDDEN)}"
        )
    if not bool(torch.isfinite(hidden).all()):
        problems.append("BertModel output has NaN/inf")
    return problems


def audio_problems(device_name: str) -> list[str]:
    import torch

    try:
        transforms = importlib.import_module("torchaudio.transforms")
    except Exception as exc:
        return [f"torchaudio is not importable ({type(exc).__name__}: {exc}); {FIX}"]
    device = torch.device(device_name)
    wave = torch.randn(1, SAMPLES, generator=torch.Generator().manual_seed(0)).to(device)
    spec = transforms.Spectrogram(n_fft=N_FFT).to(device)(wave)
    # hop defaults to n_fft // 2 and frames are centred: SAMPLES // hop + 1 of them.
    want = (1, N_FFT // 2 + 1, SAMPLES // (N_FFT // 2) + 1)
    problems = []
    if tuple(spec.shape) != want:
        problems.append(f"torchaudio Spectrogram shape {tuple(spec.shape)}, expected {want}")
    elif not bool(torch.isfinite(spec).all()) or not bool((spec >= 0).all()):
        problems.append("torchaudio Spectrogram has NaN/inf or negative power")
    return problems


def run(ctx: CheckContext) -> Outcome:
    problems = transformer_problems(ctx.device) + audio_problems(ctx.device)
    if problems:
        return failed("; ".join(problems))
    return passed(f"tiny BertModel forward and torchaudio Spectrogram ran on {ctx.device}")


CHECK = CheckSpec(
    id="nlp",
    layers=("nlp",),
    needs_gpu=False,
    timeout_s=180,
    run=run,
    summary="tiny transformers model forward pass offline, torchaudio transform",
)

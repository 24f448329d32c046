"""OmegaConf resolvers used by ``conf/``; registered on import of :mod:`cifarlab`."""
from __future__ import annotations

import secrets

import torch
from omegaconf import OmegaConf


def best_precision(accelerator: str = "auto") -> str:
    """Lightning precision for the device ``accelerator`` resolves to.

    ``bf16-mixed`` on GPUs with bf16 (Ampere and later) and on CPUs with AMX tiles,
    ``16-mixed`` on older GPUs, ``32-true`` on other CPUs. Measured on our 2-core Xeon, which
    has AVX512-BF16 but no AMX (ResNet-9, batch 256, channels_last, fwd + bwd): fp32 103
    images/s, bf16 autocast 76 images/s; bf16 pays off only where AMX runs the matmuls.
    """
    use_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if use_gpu:
        return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if torch.cpu._is_amx_tile_supported() else "32-true"


def register_resolvers() -> None:
    """``${best_precision:ACCELERATOR}`` and ``${run_suffix:}`` (6 random hex digits, fixed per
    process, so that two runs started in the same second get different output dirs)."""
    OmegaConf.register_new_resolver("best_precision", best_precision, replace=True)
    OmegaConf.register_new_resolver("run_suffix", lambda: secrets.token_hex(3), use_cache=True, replace=True)

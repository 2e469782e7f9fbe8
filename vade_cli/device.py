"""Device choice, CPU threads and seeding: the parts of a run that make numbers reproducible."""

from __future__ import annotations

import os
import random

import numpy as np
import torch
from omegaconf import DictConfig

from vade_cli.errors import ConfigError

DEVICE_TYPES = ("auto", "cpu", "cuda")


def resolve_device(cfg: DictConfig) -> torch.device:
    """`auto` picks CUDA when a GPU is visible; asking for CUDA without one is a user error."""
    kind = str(cfg.type)
    if kind not in DEVICE_TYPES:
        raise ConfigError(f"device must be one of {', '.join(DEVICE_TYPES)}, got '{kind}'")
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda was asked for but no CUDA GPU is visible; use device=cpu or device=auto")
    return torch.device(kind)


def configure(cfg: DictConfig, device: torch.device) -> None:
    """Threads on the CPU; TF32 on CUDA (both from the device config)."""
    threads = cfg.get("threads")
    torch.set_num_threads(int(threads) if threads else len(os.sched_getaffinity(0)))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = bool(cfg.get("tf32", True))
        torch.backends.cudnn.allow_tf32 = bool(cfg.get("tf32", True))


def seed_everything(seed: int) -> None:
    """Weight init draws from the global RNGs; the training loops use their own seeded generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast(cfg: DictConfig | None, device: torch.device):
    """bf16 autocast for the networks on CUDA when `device.amp_bf16` is set; a no-op elsewhere.

    The model casts the network outputs back to float32, so the mixture terms stay in full precision.
    """
    enabled = cfg is not None and device.type == "cuda" and bool(cfg.get("amp_bf16", False))
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def maybe_compile(fn, cfg: DictConfig | None, device: torch.device):
    """torch.compile the loss function on CUDA when `device.compile` is set."""
    if cfg is not None and device.type == "cuda" and bool(cfg.get("compile", False)):
        return torch.compile(fn)
    return fn

"""Device choice, CPU threads and seeding: the parts of a run that make numbers reproducible."""

from __future__ import annotations

import functools
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from threadpoolctl import threadpool_limits

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
    """Threads, and subnormal floats flushed to zero, on the CPU; TF32 on CUDA (from the device config).

    Flushing is not a setting: a pretrained network's Adam state holds millions of subnormal floats
    (squared gradients below 1e-38), and x86 cores take a slow path for each: 10 VaDE epochs on MNIST
    took 2.4 times as long with them as flushed to zero, and the two runs' metrics were byte-identical
    (README: Performance). It is set before the thread count, so the OpenMP workers, created later,
    inherit it.
    """
    if device.type == "cpu":
        torch.set_flush_denormal(True)
    threads = cfg.get("threads")
    count = int(threads) if threads else len(os.sched_getaffinity(0))
    torch.set_num_threads(count)
    # numpy/scipy's BLAS and the OpenMP pools of scikit-learn and UMAP get the same count: UMAP's
    # spectral layout rounds differently with another BLAS thread count, and the partition moved by
    # several points of ACC between a joblib worker (1 BLAS thread) and a plain `device.threads=1` run.
    threadpool_limits(limits=count)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = bool(cfg.get("tf32", True))
        torch.backends.cudnn.allow_tf32 = bool(cfg.get("tf32", True))


def seed_everything(seed: int) -> None:
    """Weight init draws from the global RNGs; the training loops use their own seeded generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True where the CPU multiplies bf16 in hardware (AVX512_BF16 or AMX): there bf16 is ~2x float32.

    Cached: the answer cannot change within a process.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_enabled(cfg: DictConfig | None, device: torch.device) -> bool:
    """`device.amp_bf16`: auto (on CUDA and on CPUs with native bf16), true, or false."""
    setting = "auto" if cfg is None else cfg.get("amp_bf16", "auto")
    if isinstance(setting, str) and setting.lower() == "auto":
        return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
    if setting not in (True, False):
        raise ConfigError(f"device.amp_bf16 must be auto, true or false, got {setting!r}")
    return bool(setting)


@dataclass(frozen=True)
class Compute:
    """Where and how the networks run, resolved once from the `device` config; every phase receives it."""

    device: torch.device
    bf16: bool = False  # bf16 autocast for the networks' matmuls
    compile: bool = False  # torch.compile the training step

    @classmethod
    def from_config(cls, cfg: DictConfig | None, device: torch.device) -> Compute:
        return cls(device, bf16_enabled(cfg, device), bool(cfg is not None and cfg.get("compile", False)))

    def autocast(self):
        """bf16 autocast where `bf16` says so. The model casts the network outputs back to float32, so
        the mixture prior, the ELBO terms and the responsibilities stay in full precision, and the
        optimiser state is float32 throughout."""
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def compiled(self, fn):
        """`fn` compiled when `compile` is set: it fuses the prior's and the ELBO's many small operations,
        and compiling takes tens of seconds per variant of the step, so it pays only on long runs."""
        return torch.compile(fn) if self.compile else fn


def check_compile(cfg: DictConfig) -> None:
    """torch.compile on the CPU builds C++ kernels: without a compiler it would fail mid-run, so say so now."""
    if not bool(cfg.get("compile", False)) or resolve_device(cfg).type == "cuda":
        return
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise ConfigError(
            f"device.compile=true on the CPU needs a C++ compiler ({compiler} not found); "
            "install one (apt-get install g++) or set device.compile=false"
        )

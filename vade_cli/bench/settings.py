"""What one benchmark run measures: the product's own config (as `vade-run` composes it), resized."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from vade_cli import run
from vade_cli.device import Compute
from vade_cli.model import VaDE


def product_config(overrides: list[str]) -> DictConfig:
    """The config `vade-run <overrides>` runs with: model, train, pretrain, device, the digits data."""
    with initialize_config_module(config_module="vade_cli.conf", version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@dataclass(frozen=True)
class Shape:
    """The step and eval sizes: the configured network on MNIST-shaped data, or tiny data for --quick."""

    n_features: int
    hidden: tuple[int, ...]
    latent_dim: int
    n_clusters: int
    n_full: int  # samples in the eval pass and the memory probe

    @classmethod
    def from_config(cls, cfg: DictConfig, n_features: int, n_full: int) -> Shape:
        """Widths from the composed model config, so the bench follows the network the runs use."""
        return cls(n_features, tuple(int(h) for h in cfg.model.hidden), int(cfg.model.latent_dim),
                   int(cfg.n_clusters), n_full)  # fmt: skip

    def widths(self) -> str:
        return "-".join(str(w) for w in (self.n_features, *self.hidden, self.latent_dim))


@dataclass(frozen=True)
class Settings:
    """What one benchmark run measures, resolved from the command line."""

    device: torch.device
    cfg: DictConfig  # the composed product config (device, model, pretrain, train, dataset)
    shape: Shape
    batch_sizes: tuple[int, ...]
    repeats: int
    run_repeats: int  # repeats of (d): the loop-minus-bare difference needs more of them than a throughput
    steps: int
    warmup_steps: int
    run_epochs: int  # epochs of the digits run timed in (d): >= 2, so a steady epoch can be told apart

    @property
    def device_cfg(self) -> DictConfig:
        """threads, amp_bf16, compile, tf32: the `device` config a run configures the process with."""
        return self.cfg.device

    @property
    def compute(self) -> Compute:
        """What `train.fit` and `run.evaluate` receive, resolved from the device config as a run does."""
        return Compute.from_config(self.device_cfg, self.device)

    @property
    def precision(self) -> str:
        """What the product's networks run in here: `device.amp_bf16` resolved for this device."""
        return "bf16" if self.compute.bf16 else "fp32"

    @property
    def first_batch(self) -> int:
        """The memory probe runs at the first batch size asked for: the paper's 100 by default."""
        return self.batch_sizes[0]

    def n_step_data(self) -> int:
        """Samples in the tensor the step loops slice: every loop sees each sample at most once a run."""
        return self.steps * max(self.batch_sizes)


def with_bf16(compute: Compute, on: bool) -> Compute:
    """The device settings with bf16 autocast forced on or off (the two rooflines)."""
    return dataclasses.replace(compute, bf16=on)


def train_config(settings: Settings, batch_size: int, epochs: int) -> DictConfig:
    """The default training settings (optimiser, schedule, checkpoint policy), resized in length only."""
    cfg = settings.cfg.train.copy()
    cfg.batch_size, cfg.epochs = batch_size, epochs
    return cfg


def build_vade(cfg: DictConfig, n_features: int, device: torch.device) -> VaDE:
    """`run.build_model` for `n_features`-dimensional Bernoulli data (MNIST's kind) that is not loaded."""
    return run.build_model(cfg, SimpleNamespace(n_features=n_features, likelihood="bernoulli")).to(device)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Weights and data from a fixed seed, without leaving the caller's global RNG moved."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield

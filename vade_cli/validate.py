"""Config checks that run before any work starts, so bad input costs nothing and writes nothing."""

from __future__ import annotations

import argparse
from typing import Any

from omegaconf import DictConfig

from vade_cli.errors import ConfigError

TASKS = ("train", "predict", "sample")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def positive_int(name: str, value: Any) -> int:
    if not _is_int(value) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def positive_int_arg(text: str) -> int:
    """`positive_int` as an argparse `type=`: the same check and message, as a usage error."""
    try:
        value: Any = int(text)
    except ValueError:
        value = text
    try:
        return positive_int("the value", value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def int_list_arg(text: str, what: str, minimum: int) -> list[int]:
    """A comma-separated list of integers >= `minimum` (0 or 1) as an argparse `type=`."""
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be comma-separated integers, got '{text}'") from None
    if not values or min(values) < minimum:
        kind = "positive" if minimum == 1 else "non-negative"
        raise argparse.ArgumentTypeError(f"{what} must be {kind} integers, got '{text}'")
    return values


def positive_number(name: str, value: Any) -> float:
    if not _is_number(value) or not value > 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def non_negative_int(name: str, value: Any) -> int:
    if not _is_int(value) or value < 0:
        raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
    return value


def one_of(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def check_config(cfg: DictConfig) -> None:
    """Everything that can be checked without the data."""
    if cfg.task not in TASKS:
        raise ConfigError(f"task must be one of {', '.join(TASKS)}, got '{cfg.task}'")
    if not _is_int(cfg.seed) or cfg.seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {cfg.seed!r}")
    n_clusters = cfg.n_clusters
    if n_clusters is None:
        raise ConfigError("n_clusters is not set and the dataset has no class count; pass n_clusters=K")
    if not _is_int(n_clusters) or n_clusters < 2:
        raise ConfigError(f"n_clusters must be an integer >= 2, got {n_clusters!r}")

    hidden = list(cfg.model.hidden) if cfg.model.hidden is not None else []
    if not hidden or not all(_is_int(h) and h > 0 for h in hidden):
        raise ConfigError(f"model.hidden must be a non-empty list of positive widths, got {hidden!r}")
    positive_int("model.latent_dim", cfg.model.latent_dim)
    positive_number("model.obs_variance", cfg.model.obs_variance)

    from vade_cli import pretrain, prior_init  # here, not at the top: argparse helpers above stay torch-free

    pre = cfg.pretrain
    positive_int("pretrain.epochs", pre.epochs)
    positive_int("pretrain.batch_size", pre.batch_size)
    positive_number("pretrain.lr", pre.lr)
    one_of("pretrain.optimizer", pre.optimizer, pretrain.OPTIMIZERS)
    one_of("pretrain.loss", pre.loss, pretrain.LOSSES)
    one_of("pretrain.weight_init", pre.weight_init, pretrain.WEIGHT_INITS)
    one_of("pretrain.init", pre.init, prior_init.METHODS)
    non_negative_int("pretrain.align_epochs", pre.align_epochs)
    positive_int("pretrain.init_restarts", pre.init_restarts)
    positive_int("pretrain.umap_neighbors", pre.umap_neighbors)
    positive_int("pretrain.init_draws", pre.init_draws)
    non_negative_int("pretrain.output_refit_epochs", pre.output_refit_epochs)
    if pre.max_steps is not None:
        positive_int("pretrain.max_steps", pre.max_steps)
    non_negative_int("pretrain.min_epochs", pre.min_epochs)

    train = cfg.train
    non_negative_int("train.epochs", train.epochs)  # 0: stop after the prior init (the AE + init baseline)
    positive_int("train.batch_size", train.batch_size)
    positive_number("train.lr", train.lr)
    if train.prior_lr is not None:
        positive_number("train.prior_lr", train.prior_lr)
    positive_number("train.lr_decay", train.lr_decay)
    positive_int("train.lr_decay_every", train.lr_decay_every)
    if not _is_number(train.lr_min) or train.lr_min < 0:
        raise ConfigError(f"train.lr_min must be >= 0, got {train.lr_min!r}")
    if not _is_number(train.checkpoint_every_s) or train.checkpoint_every_s < 0:
        raise ConfigError(f"train.checkpoint_every_s must be a number >= 0, got {train.checkpoint_every_s!r}")
    positive_number("train.adam_eps", train.adam_eps)
    non_negative_int("train.anchor_epochs", train.anchor_epochs)
    if train.free_epochs is not None:
        non_negative_int("train.free_epochs", train.free_epochs)
    if not _is_number(train.anchor_plateau) or train.anchor_plateau < 0:
        raise ConfigError(f"train.anchor_plateau must be a number >= 0 (0: off), got {train.anchor_plateau!r}")
    non_negative_int("train.warmup_epochs", train.warmup_epochs)
    if cfg.device.threads is not None:
        positive_int("device.threads", cfg.device.threads)

    from vade_cli import device, trackers

    device.check_compile(cfg.device)
    trackers.check(cfg.get("logger"))


def check_against_data(cfg: DictConfig, n_samples: int) -> None:
    """Checks that need the dataset's size."""
    if cfg.n_clusters > n_samples:
        raise ConfigError(f"n_clusters={cfg.n_clusters} exceeds the {n_samples} samples; use at most {n_samples}")
    if cfg.train.batch_size > n_samples:
        raise ConfigError(
            f"train.batch_size={cfg.train.batch_size} exceeds the {n_samples} samples; use at most {n_samples}"
        )

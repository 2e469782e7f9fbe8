"""Pretraining: the autoencoder inside VaDE, trained on reconstruction with a recipe (`pretrain`).

Autoencoders are cached by a digest of everything that determines them, so sweeps over training
settings and repeated runs skip the slowest, least interesting phase; the prior's start from the
latent means is `prior_init`'s.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

from vade_cli import checkpoint
from vade_cli.device import Compute
from vade_cli.errors import CheckpointError
from vade_cli.model import VaDE
from vade_cli.train import Phase, StopRequest, adam, fit_minibatches, run_phase, step_lr_factor

log = logging.getLogger(__name__)

# Bump when pretraining's numerics change (optimiser, loss, init), so old autoencoders are not reused.
CACHE_VERSION = 4  # 3: recipes (optimizer, loss, weight_init), bf16 autocast; 4: refit applied after the cache
# The pretrain settings that decide the autoencoder's weights; the prior-init ones (init, restarts, ...)
# do not, so sweeping them reuses the cached autoencoder.
AE_KEYS = ("epochs", "batch_size", "optimizer", "lr", "momentum", "loss", "weight_init")
OPTIMIZERS = ("adam", "sgd")
LOSSES = ("likelihood", "mse")
WEIGHT_INITS = ("torch", "dec")


@dataclass
class PretrainResult:
    seconds: float
    cache_hit: bool
    cache_path: Path | None
    history: list[dict[str, Any]]


def autoencoder_epochs(cfg: DictConfig, n_samples: int) -> int:
    """`pretrain.epochs`, or fewer once both `pretrain.max_steps` updates and `pretrain.min_epochs` passes
    are done (rounded up to a whole epoch). Small data needs a number of updates, large data a number of
    passes: the default's 4,000 steps and 100 epochs end MNIST's 10k split and its 70k at 100 epochs,
    USPS at 109, and leave digits all 300."""
    epochs = int(cfg.epochs)
    if cfg.get("max_steps") is None:
        return epochs
    steps_per_epoch = math.ceil(n_samples / min(int(cfg.batch_size), n_samples))
    return min(epochs, max(int(cfg.min_epochs), math.ceil(int(cfg.max_steps) / steps_per_epoch)))


def cache_key(data_fingerprint: str, n_samples: int, model_cfg: DictConfig, pretrain_cfg: DictConfig, seed: int,
              likelihood: str, bf16: bool) -> str:
    """Digest of what determines the autoencoder's weights: data, network shape, recipe (with the epochs
    it will run), seed, precision."""
    relevant = {
        "version": CACHE_VERSION,
        "data": data_fingerprint,
        "network": {"hidden": list(model_cfg.hidden), "latent_dim": int(model_cfg.latent_dim)},
        "recipe": {k: OmegaConf.select(pretrain_cfg, k) for k in AE_KEYS} | {"epochs": autoencoder_epochs(pretrain_cfg, n_samples)},
        "seed": seed,
        "bf16": bf16,
    }
    if pretrain_cfg.loss == "likelihood":  # the reconstruction loss depends on these only through it
        relevant["likelihood"] = likelihood
        if likelihood == "gaussian":
            relevant["obs_variance"] = float(model_cfg.obs_variance)
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:20]


def read_cache(cache_path: Path | None) -> dict[str, Any] | None:
    """A cached autoencoder, or None; an unreadable entry is a miss (said in one line) and is rewritten later."""
    if cache_path is None or not cache_path.is_file():
        return None
    try:
        payload = checkpoint.load(cache_path, kind="autoencoder")
        if not {"model", "history"} <= payload.keys():
            raise CheckpointError(f"{cache_path}: no autoencoder in it")
        return payload
    except CheckpointError as exc:
        log.warning("pretraining cache entry unreadable, training afresh and rewriting it: %s", exc)
        return None


def autoencoder_modules(model: VaDE) -> nn.ModuleDict:
    """The parts of VaDE that pretraining trains: encoder body, mean head and decoder."""
    return nn.ModuleDict({"body": model.encoder.body, "mean": model.encoder.mean, "decoder": model.decoder})


def dec_weight_init(module: nn.Module) -> None:
    """DEC-keras's initialisation: weights U(+-sqrt(1/fan_in)), biases zero."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            bound = 1.0 / math.sqrt(layer.in_features)
            nn.init.uniform_(layer.weight, -bound, bound)
            nn.init.zeros_(layer.bias)


def make_optimizer(params, cfg: DictConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=float(cfg.lr), momentum=float(cfg.momentum))
    return adam(params, lr=float(cfg.lr))


def pretrain_autoencoder(
    model: VaDE,
    x: torch.Tensor,
    cfg: DictConfig,
    seed: int,
    checkpoint_path: Path,
    cache_path: Path | None,
    stop: StopRequest,
    progress: Any = None,
    resume: dict[str, Any] | None = None,
    compute: Compute | None = None,
    on_epoch_end: Any = None,
) -> PretrainResult:
    """Train (or load from the cache) the autoencoder inside `model` with the `cfg` recipe."""
    start = time.perf_counter()
    compute = compute or Compute(x.device)
    ae = autoencoder_modules(model)
    payload = read_cache(cache_path) if resume is None else None
    if payload is not None:
        ae.load_state_dict(payload["model"])
        refit_output(model, x, cfg, seed, compute)
        return PretrainResult(time.perf_counter() - start, True, cache_path, payload["history"])

    if cfg.weight_init == "dec":
        dec_weight_init(ae)
    generator = torch.Generator(device=x.device).manual_seed(seed)
    optimizer = make_optimizer(ae.parameters(), cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, step_lr_factor(1.0, 1, 1.0))
    mse = cfg.loss == "mse"

    def step(idx: torch.Tensor):
        with compute.autocast():
            return (model.autoencoder_mse(x[idx]) if mse else model.autoencoder_loss(x[idx])), None

    epochs = autoencoder_epochs(cfg, len(x))

    def stop_when(history: list[dict[str, Any]]) -> str | None:
        if epochs < int(cfg.epochs) and len(history) >= epochs:
            return f"step budget (pretrain.max_steps={cfg.max_steps}, pretrain.min_epochs={cfg.min_epochs})"
        return None

    phase = Phase("pretrain", step, ae, optimizer, scheduler, generator, n_samples=len(x),
                  batch_size=min(int(cfg.batch_size), len(x)), epochs=epochs,
                  checkpoint_path=checkpoint_path, on_epoch_end=on_epoch_end, stop_when=stop_when)
    history = run_phase(phase, stop, progress, resume)
    if cache_path is not None:  # cached before the refit, so refit settings can be swept on one autoencoder
        checkpoint.save(cache_path, {"kind": "autoencoder", "model": ae.state_dict(), "history": history})
    refit_output(model, x, cfg, seed, compute)
    return PretrainResult(time.perf_counter() - start, False, cache_path, history)


def refit_output(model: VaDE, x: torch.Tensor, cfg: DictConfig, seed: int, compute: Compute) -> None:
    """After a squared-error autoencoder, make its output layer speak VaDE's Bernoulli likelihood."""
    if cfg.loss == "mse" and model.likelihood == "bernoulli" and int(cfg.output_refit_epochs) > 0:
        refit_bernoulli_output(model, x, int(cfg.output_refit_epochs), seed, compute)


def refit_bernoulli_output(model: VaDE, x: torch.Tensor, epochs: int, seed: int, compute: Compute) -> None:
    """Turn an MSE-trained linear output into Bernoulli logits without moving the latent space.

    An autoencoder trained on squared error predicts pixel values x^ on its linear output; VaDE's
    Bernoulli decoder needs logits. Starting from logit ~ 8 (x^ - 1/2), a few epochs of Adam on the
    cross-entropy fit the output layer alone, a logistic regression on the fixed features of the
    decoder's last hidden layer. The encoder is not touched, so the prior is initialised in the
    latent space the autoencoder learned.
    """
    out = model.decoder.out
    with torch.inference_mode(), compute.autocast():
        z = model.latent_means(x)
        features = torch.cat([model.decoder.body(z[i : i + 4096]).float() for i in range(0, len(x), 4096)])
    features = features.clone()  # leave inference mode: these are plain inputs to a trainable layer
    with torch.no_grad():
        out.weight.mul_(8.0)
        out.bias.mul_(8.0).sub_(4.0)
    generator = torch.Generator(device=x.device).manual_seed(seed + 2)
    fit_minibatches(out.parameters(),
         lambda idx: F.binary_cross_entropy_with_logits(out(features[idx]).float(), x[idx], reduction="none").sum(-1).mean(),
         len(x), epochs, generator, compute)

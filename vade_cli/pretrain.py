"""Pretraining: an autoencoder on reconstruction, then the prior initialised from its latent means.

The prior's weights, means and variances are saved as the "GMM-init snapshot" (see `prior_init`). Autoencoders
are cached by a digest of everything that determines them, so sweeps over training settings and
repeated runs skip the slowest, least interesting phase.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

from vade_cli import checkpoint, metrics, prior_init
from vade_cli.device import autocast
from vade_cli.model import VaDE
from vade_cli.train import Phase, StopRequest, adam, run_phase, step_lr_factor

# Bump when pretraining's numerics change (optimiser, loss, init), so old autoencoders are not reused.
CACHE_VERSION = 4  # 3: recipes (optimizer, loss, weight_init), bf16 autocast; 4: refit applied after the cache
# The pretrain settings that decide the autoencoder's weights; the prior-init ones (init, restarts, ...)
# do not, so sweeping them reuses the cached autoencoder.
AE_KEYS = ("epochs", "batch_size", "optimizer", "lr", "momentum", "loss", "weight_init")
OPTIMIZERS = ("adam", "sgd")
LOSSES = ("likelihood", "mse")
WEIGHT_INITS = ("torch", "dec")
REFIT_SCOPES = ("output", "decoder")


@dataclass
class PretrainResult:
    seconds: float
    cache_hit: bool
    cache_path: Path | None
    history: list[dict[str, Any]]


def cache_key(data_fingerprint: str, model_cfg: DictConfig, pretrain_cfg: DictConfig, seed: int,
              likelihood: str, bf16: bool) -> str:
    """Digest of what determines the autoencoder's weights: data, network shape, recipe, seed, precision."""
    relevant = {
        "version": CACHE_VERSION,
        "data": data_fingerprint,
        "network": {"hidden": list(model_cfg.hidden), "latent_dim": int(model_cfg.latent_dim)},
        "recipe": {k: OmegaConf.select(pretrain_cfg, k) for k in AE_KEYS},
        "seed": seed,
        "bf16": bf16,
    }
    if pretrain_cfg.loss == "likelihood":  # the reconstruction loss depends on these only through it
        relevant["likelihood"] = likelihood
        if likelihood == "gaussian":
            relevant["obs_variance"] = float(model_cfg.obs_variance)
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:20]


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
    device_cfg: DictConfig | None = None,
    on_epoch_end: Any = None,
) -> PretrainResult:
    """Train (or load from the cache) the autoencoder inside `model` with the `cfg` recipe."""
    start = time.perf_counter()
    ae = autoencoder_modules(model)
    if cache_path is not None and cache_path.is_file() and resume is None:
        payload = checkpoint.load(cache_path, kind="autoencoder")
        ae.load_state_dict(payload["model"])
        refit_output(model, x, cfg, seed, device_cfg)
        return PretrainResult(time.perf_counter() - start, True, cache_path, payload["history"])

    if cfg.weight_init == "dec":
        dec_weight_init(ae)
    generator = torch.Generator(device=x.device).manual_seed(seed)
    optimizer = make_optimizer(ae.parameters(), cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, step_lr_factor(1.0, 1, 1.0))
    mse = cfg.loss == "mse"

    def step(idx: torch.Tensor):
        with autocast(device_cfg, x.device):
            return (model.autoencoder_mse(x[idx]) if mse else model.autoencoder_loss(x[idx])), None

    phase = Phase(
        name="pretrain",
        step=step,
        module=ae,
        optimizer=optimizer,
        scheduler=scheduler,
        generator=generator,
        n_samples=len(x),
        batch_size=min(int(cfg.batch_size), len(x)),
        epochs=int(cfg.epochs),
        checkpoint_path=checkpoint_path,
        on_epoch_end=on_epoch_end,
    )
    history = run_phase(phase, stop, progress, resume)
    if cache_path is not None:  # cached before the refit, so refit settings can be swept on one autoencoder
        checkpoint.save(cache_path, {"kind": "autoencoder", "model": ae.state_dict(), "history": history})
    refit_output(model, x, cfg, seed, device_cfg)
    return PretrainResult(time.perf_counter() - start, False, cache_path, history)


def refit_output(model: VaDE, x: torch.Tensor, cfg: DictConfig, seed: int, device_cfg) -> None:
    """After a squared-error autoencoder, make its output layer speak VaDE's Bernoulli likelihood."""
    if cfg.loss == "mse" and model.likelihood == "bernoulli" and int(cfg.output_refit_epochs) > 0:
        refit_bernoulli_output(model, x, int(cfg.output_refit_epochs), seed, device_cfg, str(cfg.output_refit_scope))


def refit_bernoulli_output(model: VaDE, x: torch.Tensor, epochs: int, seed: int, device_cfg, scope: str = "output") -> None:
    """Turn an MSE-trained linear output into Bernoulli logits without moving the latent space.

    An autoencoder trained on squared error predicts pixel values x^ on its linear output; VaDE's
    Bernoulli decoder needs logits. Starting from logit ~ 8 (x^ - 1/2), a few epochs of Adam on the
    cross-entropy fit either the output layer alone (`scope=output`: a logistic regression on fixed
    features) or the whole decoder (`scope=decoder`) on the fixed latent means. The encoder is not
    touched, so the prior is initialised in the latent space the autoencoder learned.
    """
    out = model.decoder.out
    decoder_only = scope == "decoder"
    with torch.inference_mode(), autocast(device_cfg, x.device):
        z = model.latent_means(x)
        inputs = z if decoder_only else torch.cat(
            [model.decoder.body(z[i : i + 4096]).float() for i in range(0, len(x), 4096)])
    inputs = inputs.clone()  # leave inference mode: these are plain inputs to a trainable layer
    with torch.no_grad():
        out.weight.mul_(8.0)
        out.bias.mul_(8.0).sub_(4.0)
    head = model.decoder if decoder_only else out
    optimizer = adam(head.parameters(), lr=1e-3)
    generator = torch.Generator(device=x.device).manual_seed(seed + 2)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=generator, device=x.device)
        for idx in perm.split(256):
            with autocast(device_cfg, x.device):
                logits = head(inputs[idx]).float()
            loss = F.binary_cross_entropy_with_logits(logits, x[idx], reduction="none").sum(-1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def fit_prior(model: VaDE, x: torch.Tensor, y: np.ndarray | None, cfg: DictConfig, seed: int,
              device_cfg: DictConfig | None = None) -> dict[str, Any]:
    """Initialise the prior from the latent means with `cfg.init`, and return the snapshot.

    The snapshot's `metrics` score the prior's own predictions at this point (what VaDE starts
    from); `partition_metrics` score the init method's partition (they differ for umap).
    """
    start = time.perf_counter()
    with autocast(device_cfg, x.device):
        z_t = model.latent_means(x)
    z = z_t.double().cpu().numpy()
    init = prior_init.initialise(z, model.prior.n_clusters, cfg, seed)
    dev = model.prior.mu.device
    weights, means, variances = (torch.as_tensor(a, dtype=torch.float32, device=dev)
                                 for a in (init.weights, init.means, init.variances))
    model.prior.set_from_gmm(weights, means, variances)
    with torch.inference_mode():
        pred = model.prior.log_joint(z_t.to(dev)).argmax(1).cpu().numpy()
    return {
        "method": str(cfg.init),
        "weights": weights.cpu(),
        "means": means.cpu(),
        "variances": variances.cpu(),
        "log_likelihood": init.log_likelihood,  # mean per-sample log-likelihood of the latent means
        "draws_agreement": init.draws_agreement,  # mean NMI between the init_draws partitions
        "metrics": metrics.scores(y, pred),
        "partition_metrics": metrics.scores(y, init.partition),
        "draws_metrics": [metrics.scores(y, d) for d in init.draws or []] if y is not None else [],  # reporting only
        "partition": torch.as_tensor(init.partition, dtype=torch.long),
        "prediction": torch.as_tensor(pred, dtype=torch.long),  # the prior's own clusters: VaDE's start
        "seconds": time.perf_counter() - start,
    }


# Snapshot entries with one number per sample.
PER_SAMPLE = ("partition", "prediction")


def save_snapshot(run_dir: Path, snapshot: dict[str, Any]) -> None:
    """gmm_init.pt (tensors, for reloading) and gmm_init.json (for reading), both atomically."""
    checkpoint.save(run_dir / checkpoint.GMM_INIT_PT, {"kind": "gmm_init", **snapshot})
    readable = {k: v for k, v in snapshot.items() if k not in PER_SAMPLE}  # N numbers belong in the .pt only
    checkpoint.atomic_write_json(run_dir / checkpoint.GMM_INIT_JSON, readable)

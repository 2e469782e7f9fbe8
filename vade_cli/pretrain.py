"""Pretraining: an autoencoder on reconstruction, then a diagonal GMM on its latent means.

The GMM's weights, means and variances become VaDE's prior (the "GMM-init snapshot"). Autoencoders
are cached by a digest of everything that determines them, so sweeps over training settings and
repeated runs skip the slowest, least interesting phase.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from sklearn.mixture import GaussianMixture
from torch import nn

from vade_cli import checkpoint, metrics
from vade_cli.model import VaDE
from vade_cli.train import Phase, StopRequest, adam, run_phase, step_lr_factor

# Bump when pretraining's numerics change (optimiser, loss, init), so old autoencoders are not reused.
CACHE_VERSION = 2  # 2: fused Adam


@dataclass
class PretrainResult:
    seconds: float
    cache_hit: bool
    cache_path: Path | None
    history: list[dict[str, Any]]


def cache_key(data_fingerprint: str, model_cfg: DictConfig, pretrain_cfg: DictConfig, seed: int) -> str:
    """Digest of what determines the autoencoder's weights (device aside): data, network, settings, seed."""
    relevant = {
        "version": CACHE_VERSION,
        "data": data_fingerprint,
        "model": OmegaConf.to_container(model_cfg, resolve=True),
        "pretrain": {k: v for k, v in OmegaConf.to_container(pretrain_cfg, resolve=True).items() if k != "cache"},
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:20]


def autoencoder_modules(model: VaDE) -> nn.ModuleDict:
    """The parts of VaDE that pretraining trains: encoder body, mean head and decoder."""
    return nn.ModuleDict({"body": model.encoder.body, "mean": model.encoder.mean, "decoder": model.decoder})


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
) -> PretrainResult:
    """Train (or load from the cache) the autoencoder inside `model`."""
    start = time.perf_counter()
    ae = autoencoder_modules(model)
    if cache_path is not None and cache_path.is_file() and resume is None:
        payload = checkpoint.load(cache_path, kind="autoencoder")
        ae.load_state_dict(payload["model"])
        return PretrainResult(time.perf_counter() - start, True, cache_path, payload["history"])

    generator = torch.Generator(device=x.device).manual_seed(seed)
    optimizer = adam(ae.parameters(), lr=float(cfg.lr))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, step_lr_factor(1.0, 1, 1.0))

    def step(idx: torch.Tensor):
        return model.autoencoder_loss(x[idx]), None

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
    )
    history = run_phase(phase, stop, progress, resume)
    if cache_path is not None:
        checkpoint.save(cache_path, {"kind": "autoencoder", "model": ae.state_dict(), "history": history})
    return PretrainResult(time.perf_counter() - start, False, cache_path, history)


def fit_gmm_prior(model: VaDE, x: torch.Tensor, y: np.ndarray | None, cfg: DictConfig, seed: int) -> dict[str, Any]:
    """Fit a diagonal GMM on the latent means, copy it into the prior, and return the snapshot."""
    start = time.perf_counter()
    z = model.latent_means(x).double().cpu().numpy()
    gmm = GaussianMixture(
        n_components=model.prior.n_clusters,
        covariance_type="diag",
        n_init=int(cfg.gmm_n_init),
        max_iter=int(cfg.gmm_max_iter),
        random_state=seed,
    ).fit(z)
    dev = model.prior.mu.device
    weights = torch.as_tensor(gmm.weights_, dtype=torch.float32, device=dev)
    means = torch.as_tensor(gmm.means_, dtype=torch.float32, device=dev)
    variances = torch.as_tensor(gmm.covariances_, dtype=torch.float32, device=dev)
    model.prior.set_from_gmm(weights, means, variances)
    pred = gmm.predict(z)
    return {
        "weights": weights.cpu(),
        "means": means.cpu(),
        "variances": variances.cpu(),
        "log_likelihood": float(gmm.score(z)),  # mean per-sample log-likelihood of the latent means
        "converged": bool(gmm.converged_),
        "n_iter": int(gmm.n_iter_),
        "metrics": metrics.scores(y, pred),
        "seconds": time.perf_counter() - start,
    }


def save_snapshot(run_dir: Path, snapshot: dict[str, Any]) -> None:
    """gmm_init.pt (tensors, for reloading) and gmm_init.json (for reading), both atomically."""
    checkpoint.save(run_dir / checkpoint.GMM_INIT_PT, {"kind": "gmm_init", **snapshot})
    checkpoint.atomic_write_json(run_dir / checkpoint.GMM_INIT_JSON, snapshot)

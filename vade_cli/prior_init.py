"""How VaDE's mixture prior is initialised from the autoencoder's latent means (`pretrain.init`).

VaDE refines its start more than it redraws it, so this choice decides much of the final ACC.
Every method returns the same thing, a partition of the latent means and the prior it implies:

- `gmm`:    a diagonal GMM (EM started from k-means), `init_restarts` fits, best log-likelihood kept.
- `kmeans`: k-means (`init_restarts` starts, best inertia kept); pi, mu_c, sigma2_c are the moments
            of its clusters.
- `umap`:   N2D's manifold step (McConville et al., 2019): UMAP of the latent means to as many
            dimensions as the latent space (min_dist 0), a full-covariance GMM there gives the
            partition, and the partition's moments in VaDE's latent space become the prior; with
            `align_epochs` the encoder is first fitted to the embedding (`align_to_embedding`).

With `init_draws` > 1 the method runs that many times from different seeds and the central
partition of the draws (vade_cli/consensus.py) is kept: UMAP's random state alone moves a
partition by several points. No method sees labels. Randomness comes from the run's seed only.
`fit_prior` does all of it to a model and returns the snapshot saved as gmm_init.pt/.json.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture
from torch import nn

from vade_cli import checkpoint, metrics
from vade_cli.consensus import central_partition
from vade_cli.device import Compute
from vade_cli.errors import ConfigError
from vade_cli.model import VaDE, reconstruction_nll
from vade_cli.train import MINIBATCH, fit_minibatches

METHODS = ("gmm", "kmeans", "umap")
VAR_FLOOR = 1e-6  # a cluster of identical points must not get a zero variance


@dataclass
class PriorInit:
    weights: np.ndarray  # [K]
    means: np.ndarray  # [K,J]
    variances: np.ndarray  # [K,J]
    partition: np.ndarray  # [N] the method's own cluster of every point
    log_likelihood: float  # mean per-sample log-likelihood of z under the diagonal mixture (label-free)
    draws_agreement: float = 1.0  # mean pairwise NMI between the init_draws partitions (1: one draw)
    draws: list[np.ndarray] | None = None  # the init_draws partitions the consensus came from
    embedding: np.ndarray | None = None  # [N,J] umap: the first draw's embedding, where the partition is compact


def cluster_moments(z: np.ndarray, partition: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights, means and diagonal variances of a hard partition, all clusters at once (one-hot products)."""
    onehot = np.eye(k)[partition]  # [N,K]
    counts = onehot.sum(0)
    safe = np.maximum(counts, 1.0)[:, None]
    means = onehot.T @ z / safe
    variances = onehot.T @ (z * z) / safe - means * means
    variances = np.maximum(variances, VAR_FLOOR)
    # An empty cluster keeps a tiny weight and the global moments, so it can still be reached.
    empty = counts == 0
    means[empty], variances[empty] = z.mean(0), z.var(0) + VAR_FLOOR
    weights = np.maximum(counts, 1e-3) / np.maximum(counts, 1e-3).sum()
    return weights, means, variances


def diagonal_log_likelihood(z: np.ndarray, weights: np.ndarray, means: np.ndarray, variances: np.ndarray) -> float:
    """Mean log p(z) under a diagonal mixture, by log-sum-exp over clusters."""
    log_norm = -0.5 * (np.log(2 * np.pi * variances)[None] + (z[:, None, :] - means[None]) ** 2 / variances[None]).sum(-1)
    joint = np.log(weights)[None] + log_norm
    top = joint.max(1, keepdims=True)
    return float((top[:, 0] + np.log(np.exp(joint - top).sum(1))).mean())


def _gmm(z: np.ndarray, k: int, cfg: DictConfig, seed: int) -> tuple[np.ndarray, None]:
    gmm = GaussianMixture(
        n_components=k, covariance_type="diag", n_init=int(cfg.init_restarts), max_iter=int(cfg.gmm_max_iter),
        reg_covar=VAR_FLOOR, random_state=seed,
    ).fit(z)
    return gmm.predict(z), None


def _kmeans(z: np.ndarray, k: int, cfg: DictConfig, seed: int) -> tuple[np.ndarray, None]:
    return KMeans(n_clusters=k, n_init=int(cfg.init_restarts), random_state=seed).fit_predict(z), None


@contextmanager
def _torch_threads_kept() -> Iterator[None]:
    """A `device.threads=1` job once went on training with every core after the UMAP init (its
    OpenMP thread count was 2 after it): two such jobs on 2 cores ran their VaDE epochs about three
    times slower. Whatever a partitioner's libraries do to it, torch's count is put back."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _umap(z: np.ndarray, k: int, cfg: DictConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        import umap  # umap-learn: numba-compiled, so imported only when asked for
    except ImportError as exc:  # pragma: no cover - umap-learn is a base dependency
        raise ConfigError("pretrain.init=umap needs umap-learn: pip install umap-learn") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state": intended, for reproducibility
        embedded = umap.UMAP(  # as many dimensions as the latent space, so the encoder can be fitted to it
            n_components=z.shape[1], n_neighbors=int(cfg.umap_neighbors), min_dist=0.0, random_state=seed,
        ).fit_transform(z)
    gmm = GaussianMixture(
        n_components=k, covariance_type="full", n_init=int(cfg.init_restarts), random_state=seed,
    ).fit(embedded)
    return gmm.predict(embedded), embedded


_PARTITIONERS = {"gmm": _gmm, "kmeans": _kmeans, "umap": _umap}


def draw_seeds(seed: int, draws: int) -> list[int]:
    """The run's seed for the first draw (so one draw is the plain method), derived seeds after it."""
    return [seed] + [int(np.random.SeedSequence([seed, r]).generate_state(1)[0] >> 1) for r in range(1, draws)]


def initialise(z: np.ndarray, k: int, cfg: DictConfig, seed: int) -> PriorInit:
    """Partition the latent means `z` [N,J] with `cfg.init` and return the prior that partition implies."""
    method = str(cfg.init)
    if method not in _PARTITIONERS:
        raise ConfigError(f"pretrain.init must be one of {', '.join(METHODS)}, got '{method}'")
    with _torch_threads_kept():
        results = [_PARTITIONERS[method](z, k, cfg, s) for s in draw_seeds(seed, int(cfg.init_draws))]
    draws = [partition for partition, _ in results]
    partition, draws_agreement = central_partition(draws, k)
    return prior_of(z, partition, k, cfg, draws_agreement, draws, results[0][1])


def prior_of(z: np.ndarray, partition: np.ndarray, k: int, cfg: DictConfig, draws_agreement: float = 1.0,
             draws: list[np.ndarray] | None = None, embedding: np.ndarray | None = None) -> PriorInit:
    """The diagonal prior a partition implies in the latent space `z` (its clusters' moments)."""
    weights, means, variances = cluster_moments(z, partition, k)
    if cfg.uniform_pi:
        weights = np.full(k, 1.0 / k)
    return PriorInit(weights, means, variances, partition, diagonal_log_likelihood(z, weights, means, variances),
                     draws_agreement, draws, embedding)


# ---------------------------------------------------------------- the prior's start in a model


def fit_prior(model: VaDE, x: torch.Tensor, y: np.ndarray | None, cfg: DictConfig, seed: int,
              compute: Compute | None = None) -> dict[str, Any]:
    """Initialise the prior from the latent means with `cfg.init`, and return the snapshot.

    With `cfg.align_epochs` and a method that embeds (umap), the encoder is first fitted to the
    embedding in which the partition was found, so the diagonal prior starts at the partition itself.
    The snapshot's `metrics` score the prior's own predictions at this point (what VaDE starts
    from); `partition_metrics` score the init method's partition.
    """
    start = time.perf_counter()
    compute = compute or Compute(x.device)
    with compute.autocast():
        z_t = model.latent_means(x)
    k = model.prior.n_clusters
    init = initialise(z_t.double().cpu().numpy(), k, cfg, seed)
    if init.embedding is not None and int(cfg.align_epochs) > 0:
        align_to_embedding(model, x, init.embedding, int(cfg.align_epochs), seed, compute)
        with compute.autocast():
            z_t = model.latent_means(x)
        init = prior_of(z_t.double().cpu().numpy(), init.partition, k, cfg, init.draws_agreement, init.draws)
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


# The alignment takes at least this many Adam steps, whatever the epochs: 20 epochs are 800 steps on
# 10,000 rows but 20 on iris and JAFFE, where the encoder never reached the embedding (JAFFE seed 1:
# the prior started at 34.27 against its partition's 39.91; with 200 steps at 39.91).
ALIGN_MIN_STEPS = 200


def align_to_embedding(model: VaDE, x: torch.Tensor, embedding: np.ndarray, epochs: int, seed: int,
                       compute: Compute) -> None:
    """Move the latent space to the partition's embedding, then teach the decoder the moved codes.

    The manifold step finds clusters in a UMAP embedding where they are compact, but their moments
    in the autoencoder's own latent space overlap, so a diagonal prior there starts several points
    under the partition and VaDE never gets back. Regressing the encoder's means onto the
    standardised embedding (squared error, Adam) puts the partition's Gaussians into the latent
    space itself; the whole decoder is then refitted on the fixed new means with the data's own
    likelihood, so VaDE's first steps do not tear the latent space apart to rebuild reconstructions.
    """
    epochs = max(epochs, math.ceil(ALIGN_MIN_STEPS / math.ceil(len(x) / MINIBATCH)))
    target = torch.as_tensor((embedding - embedding.mean(0)) / (embedding.std(0) + 1e-8), dtype=torch.float32,
                             device=x.device)
    generator = torch.Generator(device=x.device).manual_seed(seed + 3)
    encoder = nn.ModuleList([model.encoder.body, model.encoder.mean])
    fit_minibatches(encoder.parameters(), lambda idx: (model.encoder.embed(x[idx]).float() - target[idx]).pow(2).sum(-1).mean(),
         len(x), epochs, generator, compute)
    z = model.latent_means(x).clone()
    fit_minibatches(model.decoder.parameters(),
         lambda idx: reconstruction_nll(x[idx], model.decoder(z[idx]).float(), model.likelihood, model.obs_variance).mean(),
         len(x), epochs, generator, compute)


# Snapshot entries with one number per sample.
PER_SAMPLE = ("partition", "prediction")


def save_snapshot(run_dir: Path, snapshot: dict[str, Any]) -> None:
    """gmm_init.pt (tensors, for reloading) and gmm_init.json (for reading), both atomically."""
    checkpoint.save(run_dir / checkpoint.GMM_INIT_PT, {"kind": "gmm_init", **snapshot})
    readable = {k: v for k, v in snapshot.items() if k not in PER_SAMPLE}  # N numbers belong in the .pt only
    checkpoint.atomic_write_json(run_dir / checkpoint.GMM_INIT_JSON, readable)

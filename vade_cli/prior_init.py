"""How VaDE's mixture prior is initialised from the autoencoder's latent means (`pretrain.init`).

VaDE refines its start more than it redraws it, so this choice decides much of the final ACC.
Every method returns the same thing, a partition of the latent means and the prior it implies:

- `gmm`:    a diagonal GMM (EM started from k-means), `init_restarts` fits, best log-likelihood kept.
- `kmeans`: k-means (`init_restarts` starts, best inertia kept); pi, mu_c, sigma2_c are the moments
            of its clusters.
- `umap`:   N2D's manifold step (McConville et al., 2019): UMAP of the latent means to K dimensions
            (min_dist 0), a full-covariance GMM there gives the partition, and the partition's
            moments in VaDE's latent space become the prior.

With `init_draws` > 1 the method runs that many times from different seeds and the central
partition of the draws (vade_cli/consensus.py) is kept: UMAP's random state alone moves a
partition by several points. No method sees labels. Randomness comes from the run's seed only.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import DictConfig
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

from vade_cli.consensus import central_partition
from vade_cli.errors import ConfigError

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

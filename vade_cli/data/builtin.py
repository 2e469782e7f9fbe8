"""Datasets that need no files: scikit-learn's digits (the embedded default) and synthetic blobs."""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from vade_cli.data import Dataset, register
from vade_cli.data._common import likelihood_of


@register("digits")
def load_digits(cfg: DictConfig) -> Dataset:
    """1,797 8x8 handwritten digits shipped inside scikit-learn, scaled x/16 into [0,1]."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    return Dataset("digits", x, bunch.target.astype(np.int64), likelihood_of(cfg, "bernoulli"), (8, 8))


@register("synthetic")
def load_synthetic(cfg: DictConfig) -> Dataset:
    """Gaussian blobs in a small latent space pushed through a fixed random nonlinear map.

    The map is a random two-layer tanh network, so the clusters are separable but not linearly
    so in feature space: a fair, fast test of the whole VaDE pipeline.
    """
    rng = np.random.default_rng(int(cfg.get("data_seed", 0)))
    n, d = int(cfg.n_samples), int(cfg.n_features)
    k, dz = int(cfg.n_classes), int(cfg.latent_dim)
    centers = spread_points(rng, k, dz) * float(cfg.separation)
    y = np.sort(np.arange(n) % k)
    z = centers[y] + rng.normal(size=(n, dz))
    # Pre-activations of order 1: a saturated tanh would fold distinct clusters onto the same corner.
    w1 = rng.normal(size=(dz, 4 * dz)) / (np.sqrt(dz) * float(cfg.separation))
    w2 = rng.normal(size=(4 * dz, d)) / np.sqrt(4 * dz)
    h = np.tanh(z @ w1) @ w2
    h = (h - h.mean(axis=0)) / h.std(axis=0) * float(cfg.feature_scale)
    likelihood = likelihood_of(cfg, "bernoulli")
    x = 1.0 / (1.0 + np.exp(-h)) if likelihood == "bernoulli" else h
    perm = rng.permutation(n)
    return Dataset("synthetic", x[perm].astype(np.float32), y[perm].astype(np.int64), likelihood)


def spread_points(rng: np.random.Generator, k: int, dim: int) -> np.ndarray:
    """k unit vectors chosen far apart (greedy farthest point among random candidates).

    Random centres can land next to each other and make classes inseparable; these cannot.
    """
    candidates = rng.normal(size=(64 * k, dim))
    candidates /= np.linalg.norm(candidates, axis=1, keepdims=True)
    chosen = [0]
    dist = np.linalg.norm(candidates - candidates[0], axis=1)
    for _ in range(k - 1):
        chosen.append(int(dist.argmax()))
        dist = np.minimum(dist, np.linalg.norm(candidates - candidates[chosen[-1]], axis=1))
    return candidates[chosen]

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
    centers = rng.normal(scale=float(cfg.separation), size=(k, dz))
    y = np.sort(np.arange(n) % k)
    z = centers[y] + rng.normal(size=(n, dz))
    w1 = rng.normal(size=(dz, 4 * dz)) / np.sqrt(dz)
    w2 = rng.normal(size=(4 * dz, d)) / np.sqrt(4 * dz)
    h = np.tanh(z @ w1) @ w2
    likelihood = likelihood_of(cfg, "bernoulli")
    x = 1.0 / (1.0 + np.exp(-h)) if likelihood == "bernoulli" else h
    perm = rng.permutation(n)
    return Dataset("synthetic", x[perm].astype(np.float32), y[perm].astype(np.int64), likelihood)

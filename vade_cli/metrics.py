"""Clustering scores against reference labels: ACC (Hungarian matching), NMI, ARI, confusion; and
the label-free silhouette of the latent means.

Labels are used here and nowhere in training or model selection.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def contingency(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Counts [n_clusters, n_classes]: row = predicted cluster, column = true class."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    n_rows, n_cols = int(y_pred.max()) + 1, int(y_true.max()) + 1
    table = np.zeros((n_rows, n_cols), dtype=np.int64)
    np.add.at(table, (y_pred, y_true), 1)
    return table


def best_matching(y_true: np.ndarray, y_pred: np.ndarray) -> dict[int, int]:
    """Cluster -> class that maximises matched samples (one cluster per class; extra clusters unmatched)."""
    table = contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return dict(zip(rows.tolist(), cols.tolist()))


def cluster_acc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of samples whose cluster maps to their class under the best one-to-one matching."""
    table = contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / len(y_true))


def scores(y_true: np.ndarray | None, y_pred: np.ndarray) -> dict[str, float]:
    """ACC, NMI, ARI; empty when there are no labels."""
    if y_true is None:
        return {}
    return {
        "acc": cluster_acc(y_true, y_pred),
        "nmi": float(normalized_mutual_info_score(y_true, y_pred)),
        "ari": float(adjusted_rand_score(y_true, y_pred)),
    }


SILHOUETTE_POINTS = 2000  # silhouette is O(n^2) in memory and time


def subsample(n: int, limit: int, seed: int) -> np.ndarray:
    """Sorted random indices, all of them when n <= limit: a fixed picture for a fixed seed."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def silhouette(latent: np.ndarray, pred: np.ndarray, seed: int) -> float | None:
    """Silhouette of the latent means under the predicted clusters, on up to SILHOUETTE_POINTS of
    them (None when undefined)."""
    from sklearn.metrics import silhouette_score

    idx = subsample(len(latent), SILHOUETTE_POINTS, seed)
    if not 2 <= len(np.unique(pred[idx])) <= len(idx) - 1:
        return None
    return float(silhouette_score(latent[idx], pred[idx]))

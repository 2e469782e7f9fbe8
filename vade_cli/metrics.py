"""Clustering scores against reference labels: ACC (Hungarian matching), NMI, ARI, confusion; and
the label-free silhouette of the latent means.

Labels are used here and nowhere in training or model selection.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import entropy
from sklearn.metrics import mutual_info_score


def contingency(y_true: np.ndarray, y_pred: np.ndarray, k: int | None = None) -> np.ndarray:
    """Counts [n_clusters, n_classes]: row = predicted cluster, column = true class ([k, k] when given,
    so two partitions with a cluster empty in either still get a square table)."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    n_rows, n_cols = (k, k) if k is not None else (int(y_pred.max()) + 1, int(y_true.max()) + 1)
    return np.bincount(y_pred * n_cols + y_true, minlength=n_rows * n_cols).reshape(n_rows, n_cols)


def best_matching(y_true: np.ndarray, y_pred: np.ndarray, k: int | None = None) -> dict[int, int]:
    """Cluster -> class that maximises matched samples (one cluster per class; extra clusters unmatched;
    with `k`, every one of k clusters gets one of k names)."""
    table = contingency(y_true, y_pred, k)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return dict(zip(rows.tolist(), cols.tolist()))


def acc_from_table(table: np.ndarray) -> float:
    """Fraction of samples whose cluster maps to their class under the best one-to-one matching."""
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def cluster_acc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return acc_from_table(contingency(y_true, y_pred))


def nmi_from_table(table: np.ndarray) -> float:
    """NMI with the arithmetic-mean normaliser, scikit-learn's default (and its value for one class and
    one cluster: 1)."""
    h_pred, h_true = entropy(table.sum(1)), entropy(table.sum(0))
    if h_pred == 0 and h_true == 0:
        return 1.0
    mi = mutual_info_score(None, None, contingency=table)
    return float(mi / max((h_pred + h_true) / 2, np.finfo(np.float64).eps))


def ari_from_table(table: np.ndarray) -> float:
    """Adjusted Rand index from pair counts (Hubert and Arabie); 1 when both sides are one block or all
    singletons, as in scikit-learn."""
    n = int(table.sum())
    index, rows, cols = _pairs(table), _pairs(table.sum(1)), _pairs(table.sum(0))
    expected = rows * cols / (n * (n - 1) / 2) if n > 1 else 0.0
    spread = (rows + cols) / 2 - expected
    return 1.0 if spread == 0 else float((index - expected) / spread)


def _pairs(counts: np.ndarray) -> float:
    """How many unordered pairs the counts hold together: sum of n choose 2."""
    return float((counts * (counts - 1)).sum() / 2)


def scores(y_true: np.ndarray | None, y_pred: np.ndarray) -> dict[str, float]:
    """ACC, NMI, ARI from one contingency table; empty when there are no labels.

    They are computed every epoch of a labelled run, where scikit-learn's three scorers, each
    rebuilding and validating the table, were most of the epoch-end callback's time after the log.
    tests/test_metrics.py holds them equal to scikit-learn's.
    """
    if y_true is None:
        return {}
    table = contingency(y_true, y_pred)
    return {"acc": acc_from_table(table), "nmi": nmi_from_table(table), "ari": ari_from_table(table)}


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

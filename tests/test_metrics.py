"""Cluster ACC by Hungarian matching, NMI and ARI on hand-made cases."""

import numpy as np
import pytest

from vade_cli.metrics import best_matching, cluster_acc, contingency, scores


def test_permuted_labels_score_one():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    perm = np.array([2, 0, 1])  # cluster ids are arbitrary names
    assert cluster_acc(y, perm[y]) == 1.0
    assert scores(y, perm[y]) == pytest.approx({"acc": 1.0, "nmi": 1.0, "ari": 1.0})


def test_known_confusion_matrix():
    # rows: clusters, cols: classes. Best matching: c0->k1 (4), c1->k0 (3), c2->k2 (2) = 9 of 12.
    table = np.array([[1, 4, 0], [3, 1, 1], [0, 0, 2]])
    y_true = np.concatenate([[k] * table[c, k] for c in range(3) for k in range(3)])
    y_pred = np.concatenate([[c] * table[c, k] for c in range(3) for k in range(3)])
    assert (contingency(y_true, y_pred) == table).all()
    assert cluster_acc(y_true, y_pred) == pytest.approx(9 / 12)
    assert best_matching(y_true, y_pred) == {0: 1, 1: 0, 2: 2}


def test_more_clusters_than_classes_leaves_extra_clusters_unmatched():
    y_true = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    y_pred = np.array([0, 0, 2, 2, 1, 1, 1, 3])  # class 0 split in two; one stray point
    # one cluster per class: 0->0 (2 right) and 1->1 (3 right); clusters 2 and 3 count as errors
    assert cluster_acc(y_true, y_pred) == pytest.approx(5 / 8)


def test_constant_prediction_is_majority_fraction():
    y_true = np.array([0, 1, 1, 2, 2, 2])
    assert cluster_acc(y_true, np.zeros(6, dtype=int)) == pytest.approx(3 / 6)


def test_no_labels_no_scores():
    assert scores(None, np.array([0, 1])) == {}


LABELINGS = {
    "random, 10 x 10": (np.random.default_rng(0).integers(0, 10, 500), np.random.default_rng(1).integers(0, 10, 500)),
    "more clusters than classes": (np.random.default_rng(2).integers(0, 3, 200), np.random.default_rng(3).integers(0, 7, 200)),
    "ids with gaps": (np.array([0, 0, 5, 5, 9]), np.array([3, 3, 3, 8, 8])),
    "one cluster": (np.array([0, 1, 1, 2]), np.zeros(4, dtype=int)),
    "one class, one cluster": (np.zeros(5, dtype=int), np.full(5, 4)),
    "all singletons": (np.arange(6), np.arange(6)[::-1].copy()),
}


@pytest.mark.parametrize("name", LABELINGS)
def test_scores_equal_scikit_learns(name):
    """scores() computes NMI and ARI from one contingency table; scikit-learn's scorers are the reference."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    y_true, y_pred = LABELINGS[name]
    got = scores(y_true, y_pred)
    assert got["nmi"] == pytest.approx(normalized_mutual_info_score(y_true, y_pred), abs=1e-12)
    assert got["ari"] == pytest.approx(adjusted_rand_score(y_true, y_pred), abs=1e-12)

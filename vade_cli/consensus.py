"""One partition from several partitions of the same points (`pretrain.init_draws`).

UMAP's random state alone moves an N2D partition of the same latent means by several ACC points,
so one embedding is a draw from a lottery. The central partition of several draws is steadier:
the draw that agrees most with the others (mean NMI), refined by a majority vote of all draws,
each draw's cluster names first matched to the current answer (Hungarian matching on the
contingency table). Nothing here sees labels: the draws are only compared with each other.
"""

from __future__ import annotations

import numpy as np

from vade_cli.metrics import best_matching, contingency, nmi_from_table

VOTE_ROUNDS = 3  # the vote settles in one or two rounds; more rounds change nothing


def renamed_like(partition: np.ndarray, reference: np.ndarray, k: int) -> np.ndarray:
    """`partition` with its cluster names swapped for the reference's names they overlap most."""
    names = best_matching(reference, partition, k)
    return np.array([names[c] for c in range(k)])[partition]


def agreement(partitions: list[np.ndarray], k: int) -> np.ndarray:
    """[R,R] NMI between every pair of draws (1 on the diagonal)."""
    r = len(partitions)
    table = np.ones((r, r))
    for i in range(r):
        for j in range(i + 1, r):
            table[i, j] = table[j, i] = nmi_from_table(contingency(partitions[i], partitions[j], k))
    return table


def central_partition(partitions: list[np.ndarray], k: int) -> tuple[np.ndarray, float]:
    """The consensus of `partitions` ([N] ints in [0, K)) and the draws' mean pairwise NMI.

    The mean NMI is a label-free reading of how much the draws disagree (1: all the same).
    """
    if len(partitions) == 1:
        return partitions[0], 1.0
    nmi = agreement(partitions, k)
    current = partitions[int(np.argmax(nmi.sum(1)))]  # the medoid draw starts the vote and breaks its ties
    points = np.arange(len(current))
    for _ in range(VOTE_ROUNDS):
        votes = np.zeros((len(current), k))
        for draw in partitions:
            votes[points, renamed_like(draw, current, k)] += 1.0
        votes[points, current] += 0.5
        current = votes.argmax(1)
    off_diagonal = nmi[~np.eye(len(partitions), dtype=bool)]
    return current, float(off_diagonal.mean())

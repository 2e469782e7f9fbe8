"""The central partition of several draws: renaming, majority vote, agreement."""

import numpy as np
import pytest

from vade_cli.consensus import central_partition, renamed_like


def truth(k=4, per=50):
    return np.repeat(np.arange(k), per)


def test_a_renamed_partition_gets_the_references_names_back():
    y = truth()
    permuted = np.array([2, 0, 3, 1])[y]
    np.testing.assert_array_equal(renamed_like(permuted, y, 4), y)


def test_identical_draws_give_that_partition_and_full_agreement():
    y = truth()
    draws = [y, np.array([1, 2, 3, 0])[y], np.array([3, 2, 1, 0])[y]]
    partition, agreement = central_partition(draws, 4)
    assert len({(a, b) for a, b in zip(y, partition)}) == 4  # the same clusters, whatever their names
    assert agreement == pytest.approx(1.0)


def test_the_majority_mends_each_draws_own_mistakes():
    y = truth()
    rng = np.random.default_rng(0)
    draws = []
    for names in ([0, 1, 2, 3], [3, 1, 0, 2], [1, 0, 3, 2]):
        draw = y.copy()
        wrong = rng.choice(len(y), size=15, replace=False)  # a different 7.5% misplaced in every draw
        draw[wrong] = (draw[wrong] + 1) % 4
        draws.append(np.array(names)[draw])
    partition, agreement = central_partition(draws, 4)
    mended = renamed_like(partition, y, 4)
    singles = [np.mean(renamed_like(d, y, 4) == y) for d in draws]
    assert np.mean(mended == y) > max(singles)
    assert 0.0 < agreement < 1.0


def test_one_draw_is_returned_as_it_is():
    y = truth()
    partition, agreement = central_partition([y], 4)
    assert partition is y and agreement == 1.0


def test_a_draw_with_an_empty_cluster_is_still_matched():
    y = truth()
    merged = np.where(y == 3, 2, y)  # cluster 3 empty in this draw
    partition, agreement = central_partition([y, np.array([1, 0, 3, 2])[y], merged], 4)
    np.testing.assert_array_equal(renamed_like(partition, y, 4), y)
    assert 0.0 < agreement < 1.0

"""Counterfactual metrics: pooled R², the genes that change most, and the observed changes of seen combinations."""

from __future__ import annotations

import numpy as np
import pytest

from xmodal.metrics.counterfactual import change_scores, r2, seen_changes, top_changed


def test_r2_is_one_for_the_truth_zero_for_its_mean_and_negative_beyond() -> None:
    true = np.array([[1.0, -1.0], [3.0, 1.0]])
    assert r2(true, true) == 1.0
    assert r2(np.full_like(true, true.mean()), true) == pytest.approx(0.0)
    assert r2(-true, true) < 0
    assert np.isnan(r2(np.ones(3), np.ones(3)))  # no variance to explain
    with pytest.raises(ValueError, match="shapes differ"):
        r2(np.ones(3), np.ones(4))


def test_top_changed_ranks_by_the_mean_change_magnitude() -> None:
    change = np.array([[0.1, -2.0, 0.5], [0.1, -1.0, 0.4]])
    assert list(top_changed(change, k=2)) == [1, 2]


def test_change_scores_reward_the_true_change_only() -> None:
    rng = np.random.default_rng(0)
    true = rng.normal(size=(20, 8))
    perfect = change_scores(true, true, k=3)
    assert perfect == {"cell_change_r2": 1.0, "cell_change_r2_top3": 1.0, "mean_change_r2": 1.0}
    noisy = change_scores(true + rng.normal(size=true.shape), true, k=3)
    assert noisy["cell_change_r2"] < 0.6


def test_seen_changes_pair_values_within_strata_with_enough_cells() -> None:
    # field 0 (two values) changes the first gene by +2; stratum field 1; one stratum lacks value 2
    codes = np.array([[1, 1]] * 12 + [[2, 1]] * 12 + [[1, 2]] * 12 + [[2, 2]] * 3)
    x = np.zeros((len(codes), 2))
    x[codes[:, 0] == 2, 0] = 2.0
    changes = seen_changes(x, codes, field=0, strata=[1], min_cells=10)
    assert len(changes) == 2  # 1→2 and 2→1 in stratum 1; stratum 2 has 3 cells of value 2
    up = next(c for c in changes if c.code == 2)
    np.testing.assert_allclose(up.observed, [2.0, 0.0])
    assert set(codes[up.rows, 0]) == {1}
    assert set(codes[up.rows, 1]) == {1}

"""Nearest neighbours and the plotting PCA (SciPy/NumPy) against brute force and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from xmodal.geometry import nearest_neighbors, pca_2d


@pytest.mark.parametrize("k", [1, 3, 10])
def test_nearest_neighbors_match_brute_force(k: int) -> None:
    rng = np.random.default_rng(k)
    ref, query = rng.normal(size=(50, 5)), rng.normal(size=(20, 5))
    dist, idx = nearest_neighbors(ref, query, k=k)
    assert dist.shape == idx.shape == (20, k)
    full = cdist(query, ref)
    np.testing.assert_array_equal(idx, np.argsort(full, axis=1)[:, :k])
    np.testing.assert_allclose(dist, np.sort(full, axis=1)[:, :k])


def test_nearest_neighbors_rejects_k_beyond_the_reference() -> None:
    with pytest.raises(ValueError, match="between 1 and the 3 reference rows"):
        nearest_neighbors(np.zeros((3, 2)), np.zeros((1, 2)), k=4)


def test_pca_2d_spans_the_same_plane_as_scikit_learn_with_a_fixed_sign() -> None:
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)) * np.array([5, 3, 1, 1, 1, 1, 1, 1])
    ours = pca_2d(x)
    theirs = PCA(2).fit_transform(x)
    for j in range(2):
        assert abs(np.corrcoef(ours[:, j], theirs[:, j])[0, 1]) == pytest.approx(1.0)
    assert np.var(ours[:, 0]) > np.var(ours[:, 1])
    # the same projection from the covariance's eigenvectors, whatever sign eigh gives them, once the
    # largest-magnitude loading of each is made positive
    _, vectors = np.linalg.eigh(np.cov(x, rowvar=False))
    top = vectors[:, ::-1][:, :2]
    top = top * np.sign(top[np.abs(top).argmax(axis=0), [0, 1]])
    np.testing.assert_allclose(ours, (x - x.mean(axis=0)) @ top, atol=1e-8)

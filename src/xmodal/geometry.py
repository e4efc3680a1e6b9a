"""Geometry shared by methods and metrics: nearest neighbours and a 2-D PCA (gwot's intra-modality distances
live in :mod:`xmodal.methods.gwot._solver`).

Nearest neighbours and the PCA use SciPy/NumPy only: the evaluate and register steps then start
without importing scikit-learn (about 1 s of every pipeline task that scores a model).
"""

from __future__ import annotations

import numpy as np


def nearest_neighbors(reference: np.ndarray, query: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest reference rows of every query row (Euclidean), nearest first.

    Parameters
    ----------
    reference
        Shape ``(n_ref, d)``.
    query
        Shape ``(n_query, d)``.
    k
        Neighbours per query row, ``1 <= k <= n_ref``.

    Returns
    -------
    tuple of numpy.ndarray
        Distances ``(n_query, k)`` (float64) and reference indices ``(n_query, k)`` (int64).
    """
    from scipy.spatial import cKDTree

    reference = np.asarray(reference, dtype=np.float64)
    if not 1 <= k <= len(reference):
        raise ValueError(f"k must be between 1 and the {len(reference)} reference rows, got {k}")
    dist, idx = cKDTree(reference).query(np.asarray(query, dtype=np.float64), k=k)
    shape = (len(query), k)
    return np.asarray(dist, dtype=np.float64).reshape(shape), np.asarray(idx, dtype=np.int64).reshape(shape)


def pca_2d(x: np.ndarray) -> np.ndarray:
    """Project rows onto their first two principal components (for plots).

    Parameters
    ----------
    x
        Shape ``(n, d)``.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, 2)`` (a second column of zeros when ``min(n, d) < 2``, e.g. a one-feature embedding); each
        component's sign is fixed so that its largest-magnitude loading is positive, so the picture does not flip
        between runs.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:2]
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    signs[signs == 0] = 1.0
    xy = centred @ (components * signs[:, None]).T
    return np.hstack([xy, np.zeros((len(xy), 2 - xy.shape[1]))]) if xy.shape[1] < 2 else xy

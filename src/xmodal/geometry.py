"""Geometry shared by methods and metrics: intra-modality distances, nearest neighbours, a 2-D PCA.

Nearest neighbours and the PCA use SciPy/NumPy only: the evaluate and register steps then start
without importing scikit-learn (about 1 s of every pipeline task that scores a model).
"""

from __future__ import annotations

from typing import Literal

import numpy as np


def intra_distances(
    x: np.ndarray, *, kind: Literal["geodesic", "euclidean"] = "geodesic", n_neighbors: int = 50
) -> np.ndarray:
    """Pairwise distances between the cells of one modality, scaled to a maximum of 1.

    Parameters
    ----------
    x
        Cells × features, shape ``(n, d)``.
    kind
        ``"geodesic"``: shortest-path lengths on the symmetrised kNN graph with Euclidean edge
        weights (SCOT's choice; it follows the data manifold). Cells in different connected
        components get the largest finite distance. ``"euclidean"``: straight-line distances.
    n_neighbors
        Neighbours per cell of the kNN graph (clipped to ``n - 1``).

    Returns
    -------
    numpy.ndarray
        Shape ``(n, n)``, symmetric, zero diagonal, max 1 (float64).
    """
    from scipy.sparse.csgraph import shortest_path
    from scipy.spatial.distance import cdist

    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 cells to compute distances, got {n}")
    if kind == "euclidean":
        dist = cdist(x, x)
    elif kind == "geodesic":
        from sklearn.neighbors import kneighbors_graph

        graph = kneighbors_graph(x, min(n_neighbors, n - 1), mode="distance", include_self=False)
        graph = graph.maximum(graph.T)
        dist = shortest_path(graph, method="D", directed=False)
        finite = np.isfinite(dist)
        if not finite.all():
            dist[~finite] = dist[finite].max()
    else:
        raise ValueError(f"kind must be 'geodesic' or 'euclidean', got {kind!r}")
    top = dist.max()
    return dist / top if top > 0 else dist


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

"""Intra-modality geometry: distance matrices that Gromov–Wasserstein compares."""

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

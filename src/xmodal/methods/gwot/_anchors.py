"""Anchors for large ``gwot`` fits: k-means centroids with masses, and the soft extension back to cells.

Above ``solver.max_exact_cells`` the GW problem is solved between ``n_anchors`` weighted centroids per
modality instead of between cells (quantized GW, after Chowdhury et al. 2021). Nothing here holds an
``n × n`` matrix: k-means and the nearest-anchor queries work in chunks of cells × anchors, so memory is
``O(n·d + m²)`` for ``n`` cells and ``m`` anchors, and time ``O(s·m·d)`` per k-means pass on a sample of
``s = 100·m`` cells plus ``O(n·m·d)`` once to place every cell.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

_CHUNK = 8192


def nearest_anchors(x: np.ndarray, anchors: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest anchors of every cell (squared Euclidean), in chunks.

    Parameters
    ----------
    x
        Cells ``(n, d)``.
    anchors
        Anchors ``(m, d)``.
    k
        Anchors per cell, ``1 <= k <= m``.

    Returns
    -------
    tuple of numpy.ndarray
        Squared distances ``(n, k)`` (float64, nearest first) and anchor indices ``(n, k)`` (int64).
    """
    m = len(anchors)
    k = max(1, min(k, m))
    sq_anchor = np.einsum("md,md->m", anchors, anchors)
    dist = np.empty((len(x), k))
    index = np.empty((len(x), k), dtype=np.int64)
    for start in range(0, len(x), _CHUNK):
        block = x[start:start + _CHUNK]
        d2 = np.einsum("nd,nd->n", block, block)[:, None] - 2.0 * block @ anchors.T + sq_anchor[None, :]
        np.maximum(d2, 0.0, out=d2)
        if k == 1:
            part = d2.argmin(axis=1)[:, None]
        elif k < m:
            part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        else:
            part = np.broadcast_to(np.arange(m), d2.shape).copy()
        vals = np.take_along_axis(d2, part, axis=1)
        order = np.argsort(vals, axis=1, kind="stable")
        dist[start:start + len(block)] = np.take_along_axis(vals, order, axis=1)
        index[start:start + len(block)] = np.take_along_axis(part, order, axis=1)
    return dist, index


def kmeans_anchors(
    x: np.ndarray, n_anchors: int, *, rng: np.random.Generator, n_iter: int = 10, sample_per_anchor: int = 100,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lloyd's k-means on a seeded sample of at most ``sample_per_anchor·m`` cells, then one pass over all.

    The centroids are fitted on the sample (100 cells per centroid place it as well as all cells do), then every
    cell is assigned once, which gives the masses: the cost is ``O(n·m·d)`` once, not per pass. Empty clusters
    are re-seeded from the sample.

    Parameters
    ----------
    x
        Cells ``(n, d)``.
    n_anchors
        Centroids ``m`` (clipped to ``n``).
    n_iter
        Lloyd passes over all cells.

    Returns
    -------
    tuple of numpy.ndarray
        Centroids ``(m, d)``, masses ``(m,)`` (cells per centroid / ``n``, summing to 1) and each cell's
        centroid ``(n,)``.
    """
    from tqdm.auto import tqdm

    n = len(x)
    m = min(n_anchors, n)
    fit = x if n <= sample_per_anchor * m else x[np.sort(rng.choice(n, size=sample_per_anchor * m, replace=False))]
    centres = fit[np.sort(rng.choice(len(fit), size=m, replace=False))].copy()
    for _ in tqdm(range(n_iter), desc="gwot anchors", unit="pass", disable=None if progress else True, leave=False):
        _, idx = nearest_anchors(fit, centres, k=1)
        assign = idx[:, 0]
        counts = np.bincount(assign, minlength=m)
        sums = np.zeros_like(centres)
        np.add.at(sums, assign, fit)
        empty = counts == 0
        centres[~empty] = sums[~empty] / counts[~empty, None]
        if empty.any():
            centres[empty] = fit[rng.choice(len(fit), size=int(empty.sum()), replace=False)]
    _, idx = nearest_anchors(x, centres, k=1)
    assign = idx[:, 0]
    counts = np.bincount(assign, minlength=m).astype(np.float64)
    keep = counts > 0
    if not keep.all():  # a re-seeded centre that won no cell in the last pass: drop it
        remap = np.cumsum(keep) - 1
        centres, counts, assign = centres[keep], counts[keep], remap[assign]
    return centres, counts / n, assign

"""Alignment metrics for paired cross-modal embeddings.

All functions are pure: they take embeddings that already live in one shared space and return
plain Python floats (or NumPy arrays for the per-cell variants). Distances are Euclidean.

* :func:`foscttm` / :func:`foscttm_per_cell` -- fraction of samples closer than the true match,
  as in GLUE (``scglue.metrics.foscttm``: divided by ``n``, both directions), except that a sample at
  exactly the true match's distance counts half (GLUE counts it not at all). 0 is perfect, random
  embeddings give about 0.5. On continuous embeddings ties do not occur and the values are GLUE's;
  a collapsed embedding (every cell at one point), or test cells that are all the same, score about
  0.5, where GLUE's rule gives them a perfect 0 that no gate could refuse.
* :func:`matching_accuracy` -- top-k matching accuracy, ties broken at random (its expectation).
* :func:`knn_label_transfer` -- k-nearest-neighbour label transfer from a reference to a query.

The pairwise distances are computed in blocks of ``chunk_size`` rows, so memory is
``O(chunk_size * n)`` rather than ``O(n ** 2)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial.distance import cdist

__all__ = [
    "foscttm",
    "foscttm_per_cell",
    "knn_label_transfer",
    "label_transfer_confusion",
    "matching_accuracy",
]


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _as_embedding(a: Any, name: str) -> np.ndarray:
    """Return ``a`` as a finite, non-empty 2-D float array or raise :class:`ValueError`."""
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array: {exc}") from exc
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_cells, n_dims); got {arr.ndim}-D "
            f"array of shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); need at least one row and column")
    if not np.isfinite(arr).all():
        n_bad = int((~np.isfinite(arr)).sum())
        raise ValueError(f"{name} contains {n_bad} NaN or infinite value(s)")
    return arr


def _check_paired(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate two paired embeddings: same number of rows and same dimension."""
    xa = _as_embedding(x, "x")
    ya = _as_embedding(y, "y")
    if xa.shape[0] != ya.shape[0]:
        raise ValueError(
            f"x and y must be paired row by row, but x has {xa.shape[0]} rows and "
            f"y has {ya.shape[0]}"
        )
    if xa.shape[1] != ya.shape[1]:
        raise ValueError(
            f"x and y must live in the same embedding space, but x has {xa.shape[1]} "
            f"dimensions and y has {ya.shape[1]}"
        )
    return xa, ya


def _check_positive_int(value: Any, name: str) -> int:
    """Return ``value`` as an ``int`` >= 1 or raise :class:`ValueError`."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1; got {value}")
    return int(value)


def _as_labels(labels: ArrayLike, n: int, name: str, n_name: str) -> np.ndarray:
    """Return ``labels`` as a 1-D array of length ``n`` or raise :class:`ValueError`."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries but {n_name} has {n} rows")
    return arr


# --------------------------------------------------------------------------------------------
# chunked distance kernel
# --------------------------------------------------------------------------------------------


def _closer_counts(a: np.ndarray, b: np.ndarray, chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Count, for each row ``i`` of ``a``, the rows of ``b`` strictly closer than ``b[i]``, and those exactly as
    close (``b[i]`` itself left out).

    Parameters
    ----------
    a, b
        Paired embeddings, shape ``(n, d)`` each, already validated.
    chunk_size
        Number of rows of ``a`` handled at once.

    Returns
    -------
    closer : np.ndarray
        Integer array of shape ``(n,)``: ``|{j : d(a_i, b_j) < d(a_i, b_i)}|``.
    ties : np.ndarray
        Integer array of shape ``(n,)``: ``|{j != i : d(a_i, b_j) = d(a_i, b_i)}|``.
    """
    n = a.shape[0]
    counts = np.empty(n, dtype=np.int64)
    ties = np.empty(n, dtype=np.int64)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        # Squared Euclidean distance is monotone in the Euclidean one, so the comparison is
        # the same; cdist computes every entry independently, so the true-partner distance
        # read from the block is bit-identical to the one it is compared against.
        block = cdist(a[start:stop], b, metric="sqeuclidean")  # (stop - start, n)
        rows = np.arange(stop - start)
        true_dist = block[rows, start + rows]
        counts[start:stop] = (block < true_dist[:, None]).sum(axis=1)
        ties[start:stop] = (block == true_dist[:, None]).sum(axis=1) - 1
    return counts, ties


# --------------------------------------------------------------------------------------------
# public metrics
# --------------------------------------------------------------------------------------------


def foscttm_per_cell(
    x: np.ndarray, y: np.ndarray, *, chunk_size: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell FOSCTTM (fraction of samples closer than the true match), both directions.

    For cell ``i`` in the x→y direction the value is
    ``(|{j : d(x_i, y_j) < d(x_i, y_i)}| + |{j != i : d(x_i, y_j) = d(x_i, y_i)}| / 2) / n``: GLUE's
    ``scglue.metrics.foscttm`` (divided by ``n``) with a tie counted half, so a cell whose partner is no
    closer than any other scores about 0.5 (random), not 0 (perfect); the y→x direction swaps the roles of
    ``x`` and ``y``.

    Parameters
    ----------
    x
        Embedding of modality 1, shape ``(n, d)``. Row ``i`` is the true partner of ``y[i]``.
    y
        Embedding of modality 2 in the same space, shape ``(n, d)``.
    chunk_size
        Rows processed per block; peak memory is about ``chunk_size * n`` floats.

    Returns
    -------
    foscttm_x : np.ndarray
        Shape ``(n,)``, values in ``[0, (n - 1) / n]``: the x→y fraction for each cell.
    foscttm_y : np.ndarray
        Shape ``(n,)``: the y→x fraction for each cell.

    Raises
    ------
    ValueError
        If the inputs are not 2-D, are empty, differ in number of rows or dimensions, contain
        NaN or infinite values, or ``chunk_size < 1``.
    """
    xa, ya = _check_paired(x, y)
    chunk = _check_positive_int(chunk_size, "chunk_size")
    n = xa.shape[0]
    closer_x, ties_x = _closer_counts(xa, ya, chunk)
    closer_y, ties_y = _closer_counts(ya, xa, chunk)
    foscttm_x = (closer_x + 0.5 * ties_x) / n
    foscttm_y = (closer_y + 0.5 * ties_y) / n
    return foscttm_x, foscttm_y


def foscttm(x: np.ndarray, y: np.ndarray, *, chunk_size: int = 2048) -> float:
    """Mean FOSCTTM over both directions (0 is perfect, random embeddings give about 0.5).

    Parameters
    ----------
    x
        Embedding of modality 1, shape ``(n, d)``. Row ``i`` is the true partner of ``y[i]``.
    y
        Embedding of modality 2 in the same space, shape ``(n, d)``.
    chunk_size
        Rows processed per block; peak memory is about ``chunk_size * n`` floats.

    Returns
    -------
    float
        Mean of the ``2n`` per-cell values returned by :func:`foscttm_per_cell`.

    Raises
    ------
    ValueError
        As :func:`foscttm_per_cell`.
    """
    foscttm_x, foscttm_y = foscttm_per_cell(x, y, chunk_size=chunk_size)
    return float(np.concatenate([foscttm_x, foscttm_y]).mean())


def matching_accuracy(
    x: np.ndarray,
    y: np.ndarray,
    *,
    ks: Sequence[int] = (1, 5),
    chunk_size: int = 2048,
) -> dict[str, float]:
    """Top-k matching accuracy between paired embeddings, averaged over both directions.

    ``y_i`` counts as found among the ``k`` nearest rows of ``y`` for ``x_i`` when it ranks within the first
    ``k``, rows at exactly its distance placed in random order: with ``c`` rows strictly closer and ``t`` others
    tied, the cell scores ``clip((k - c) / (t + 1), 0, 1)``, the chance of it (so a collapsed embedding scores
    ``k / n``, chance, not 1). The y→x direction is the same with the roles swapped; the reported value is the
    mean over all ``2n`` cells.

    Parameters
    ----------
    x
        Embedding of modality 1, shape ``(n, d)``. Row ``i`` is the true partner of ``y[i]``.
    y
        Embedding of modality 2 in the same space, shape ``(n, d)``.
    ks
        Neighbourhood sizes, each ``>= 1``. A ``k >= n`` always gives 1.0.
    chunk_size
        Rows processed per block; peak memory is about ``chunk_size * n`` floats.

    Returns
    -------
    dict[str, float]
        ``{"matching_top{k}": accuracy}`` for each ``k`` in ``ks``, in the order given.

    Raises
    ------
    ValueError
        As :func:`foscttm_per_cell`, or if ``ks`` is empty or contains a value ``< 1``.
    """
    xa, ya = _check_paired(x, y)
    chunk = _check_positive_int(chunk_size, "chunk_size")
    if isinstance(ks, int | np.integer):
        raise ValueError(f"ks must be a sequence of integers, e.g. (1, 5); got {ks!r}")
    k_values = [_check_positive_int(k, "each k in ks") for k in ks]
    if not k_values:
        raise ValueError("ks is empty; give at least one neighbourhood size, e.g. (1, 5)")
    (closer_x, ties_x), (closer_y, ties_y) = _closer_counts(xa, ya, chunk), _closer_counts(ya, xa, chunk)
    closer, ties = np.concatenate([closer_x, closer_y]), np.concatenate([ties_x, ties_y])
    return {f"matching_top{k}": float(np.clip((k - closer) / (ties + 1), 0.0, 1.0).mean()) for k in k_values}


def knn_label_transfer(
    ref: np.ndarray,
    ref_labels: ArrayLike,
    query: np.ndarray,
    query_labels: ArrayLike,
    *,
    k: int = 5,
    return_predictions: bool = False,
) -> Any:
    """Transfer labels from a reference to a query with a k-nearest-neighbour classifier.

    Every query row gets the majority label of its ``k`` nearest reference rows (Euclidean distance,
    uniform weights: scikit-learn's ``KNeighborsClassifier`` rule, computed with SciPy's k-d tree); the
    predictions are scored against ``query_labels``. Vote ties go to the label that sorts first.

    Macro-F1 and balanced accuracy are averaged over the **sorted labels present in
    query_labels** (``labels=`` in scikit-learn). A class that occurs only in the reference
    therefore has no F1 term of its own (its F1 would be 0 by construction, penalising a
    reference that is simply richer than the query), but every query cell predicted as such a
    class still lowers the recall, and so the F1, of its true class. A query class that is
    never predicted gets F1 0 (``zero_division=0``).

    Parameters
    ----------
    ref
        Reference embedding, shape ``(n_ref, d)``.
    ref_labels
        Labels of the reference cells, shape ``(n_ref,)``; strings or integers.
    query
        Query embedding in the same space, shape ``(n_query, d)``.
    query_labels
        True labels of the query cells, shape ``(n_query,)``, same kind as ``ref_labels``.
    k
        Number of neighbours, ``>= 1``; clipped to ``n_ref``.
    return_predictions
        Return the predicted query labels, shape ``(n_query,)``, instead of the scores.

    Returns
    -------
    dict[str, float]
        ``label_transfer_accuracy`` (fraction of query cells predicted correctly),
        ``label_transfer_macro_f1`` and ``label_transfer_balanced_accuracy`` (mean recall over
        the query's classes).

    Raises
    ------
    ValueError
        If an embedding is not 2-D, is empty or contains NaN or infinite values, the two
        embeddings differ in dimension, a label array does not match its embedding's number of
        rows, or ``k < 1``.
    """
    ref_arr = _as_embedding(ref, "ref")
    query_arr = _as_embedding(query, "query")
    if ref_arr.shape[1] != query_arr.shape[1]:
        raise ValueError(
            f"ref and query must live in the same embedding space, but ref has "
            f"{ref_arr.shape[1]} dimensions and query has {query_arr.shape[1]}"
        )
    k_checked = _check_positive_int(k, "k")
    ref_y = _as_labels(ref_labels, ref_arr.shape[0], "ref_labels", "ref")
    query_y = _as_labels(query_labels, query_arr.shape[0], "query_labels", "query")

    pred = _knn_predict(ref_arr, ref_y, query_arr, k=min(k_checked, ref_arr.shape[0]))
    if return_predictions:
        return pred
    return {"label_transfer_accuracy": float(np.mean(query_y == pred)),
            **_macro_f1_and_recall(query_y, pred)}


def _knn_predict(ref: np.ndarray, ref_y: np.ndarray, query: np.ndarray, *, k: int) -> np.ndarray:
    """Majority label of the ``k`` nearest reference rows; ties go to the smallest label."""
    from xmodal.geometry import nearest_neighbors

    classes, codes = np.unique(ref_y, return_inverse=True)
    _, idx = nearest_neighbors(ref, query, k=k)
    votes = np.zeros((len(query), len(classes)), dtype=np.int64)
    np.add.at(votes, (np.repeat(np.arange(len(query)), k), codes[idx].ravel()), 1)
    return classes[votes.argmax(axis=1)]  # argmax takes the first maximum: the smallest tied label


def _macro_f1_and_recall(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Macro-F1 and balanced accuracy over the classes of ``truth`` (a never-predicted class scores 0)."""
    f1s, recalls = [], []
    for cls in np.unique(truth):
        true_pos = float(np.sum((truth == cls) & (pred == cls)))
        recall = true_pos / float(np.sum(truth == cls))
        n_pred = float(np.sum(pred == cls))
        precision = true_pos / n_pred if n_pred else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
        recalls.append(recall)
    return {"label_transfer_macro_f1": float(np.mean(f1s)),
            "label_transfer_balanced_accuracy": float(np.mean(recalls))}


def label_transfer_confusion(
    ref: np.ndarray,
    ref_labels: ArrayLike,
    query: np.ndarray,
    query_labels: ArrayLike,
    *,
    k: int = 5,
) -> tuple[list[str], list[list[int]]]:
    """Confusion matrix of :func:`knn_label_transfer` (same classifier, same validation).

    Returns
    -------
    tuple
        ``categories`` (sorted union of true and predicted labels, as strings) and ``matrix``
        (``len(categories)`` × ``len(categories)``; rows: true label, columns: predicted label).
    """
    pred = knn_label_transfer(ref, ref_labels, query, query_labels, k=k, return_predictions=True)
    truth = np.asarray(query_labels).astype(str)
    pred = np.asarray(pred).astype(str)
    categories = sorted(set(truth) | set(pred))
    index = {c: i for i, c in enumerate(categories)}
    matrix = np.zeros((len(categories), len(categories)), dtype=np.int64)
    np.add.at(matrix, ([index[t] for t in truth], [index[p] for p in pred]), 1)
    return categories, matrix.tolist()


def neighborhood_matching(
    x: np.ndarray,
    y: np.ndarray,
    *,
    ks: Sequence[int] = (5, 50),
) -> dict[str, float]:
    """Seed 000's "kNN accuracy": is a cell's cross-modal match in its partner's neighbourhood?

    For every ``y_i`` take its nearest ``x`` row under the L1 (Manhattan) metric, ``x_m``; it
    counts as correct when ``m`` is among the ``k`` nearest ``x`` rows of the true partner ``x_i``
    (L1, ``x_i`` itself included). A neighbourhood-preserving alignment scores high even when the
    exact partner is missed.

    Parameters
    ----------
    x
        Embedding of modality 1, ``(n, d)``; row ``i`` is the partner of ``y[i]``.
    y
        Embedding of modality 2 in the same space, ``(n, d)``.
    ks
        Neighbourhood sizes (clipped to ``n``).

    Returns
    -------
    dict[str, float]
        ``{"neighborhood_matching_k{k}": accuracy}`` for each ``k``.
    """
    from scipy.spatial import cKDTree

    xa, ya = _check_paired(x, y)
    k_values = [_check_positive_int(k, "each k in ks") for k in ks]
    tree = cKDTree(xa)
    _, nearest = tree.query(ya, k=1, p=1)
    kmax = min(max(k_values), len(xa))
    _, neigh = tree.query(xa, k=kmax, p=1)
    neigh = np.asarray(neigh).reshape(len(xa), kmax)
    # rank of the matched row among the partner's neighbours (kmax when absent)
    hit = neigh == np.asarray(nearest).reshape(-1, 1)
    rank = np.where(hit.any(axis=1), hit.argmax(axis=1), kmax)
    return {f"neighborhood_matching_k{k}": float((rank < min(k, len(xa))).mean()) for k in k_values}

"""Counterfactual metrics: how well predicted expression changes match true (or observed) ones.

All are pure functions of arrays. ``R²`` here is the coefficient of determination pooled over every entry given,
``1 − Σ (pred − true)² / Σ (true − mean(true))²``: 1 is perfect, 0 is what predicting the mean entry scores, and it
is negative for predictions worse than that (a predicted change of zero scores about 0 when the true changes average
about zero).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: fewest cells of a (stratum, value) group compared by :func:`seen_changes`
MIN_GROUP = 10


def r2(pred: np.ndarray, true: np.ndarray) -> float:
    """Pooled coefficient of determination of ``pred`` against ``true`` (same shape, any number of entries).

    Returns ``nan`` when ``true`` has no variance.
    """
    pred, true = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape:
        raise ValueError(f"shapes differ: {pred.shape} and {true.shape}")
    total = float(((true - true.mean()) ** 2).sum())
    if total == 0.0:
        return float("nan")
    return 1.0 - float(((pred - true) ** 2).sum()) / total


def top_changed(true_change: np.ndarray, *, k: int = 50) -> np.ndarray:
    """Indices of the ``k`` genes whose mean true change ``(cells, genes) → (genes,)`` is largest in magnitude."""
    mean = np.abs(np.asarray(true_change, dtype=np.float64).mean(axis=0))
    return np.argsort(-mean, kind="stable")[: min(k, len(mean))]


def change_scores(pred_change: np.ndarray, true_change: np.ndarray, *, k: int = 50) -> dict[str, float]:
    """R² of per-cell changes over all genes and over the ``k`` genes that change most, and of the mean change.

    Parameters
    ----------
    pred_change, true_change
        ``(cells, genes)``: each cell's predicted and true change of expression between two contexts.
    k
        The genes whose mean true change is largest in magnitude.

    Returns
    -------
    dict
        ``cell_change_r2``, ``cell_change_r2_top{k}`` and ``mean_change_r2`` (per-gene means of the changes).
    """
    top = top_changed(true_change, k=k)
    return {"cell_change_r2": r2(pred_change, true_change),
            f"cell_change_r2_top{k}": r2(pred_change[:, top], true_change[:, top]),
            "mean_change_r2": r2(pred_change.mean(axis=0), true_change.mean(axis=0))}


@dataclass(frozen=True)
class SeenChange:
    """One observed change between two values of the counterfactual field within a stratum of validation cells.

    Attributes
    ----------
    rows
        Validation rows with the source value (they are moved).
    field
        Index of the counterfactual field.
    code
        The target value's code.
    observed
        ``(G,)``: mean expression of the stratum's cells with the target value minus that of the moved cells.
    """

    rows: np.ndarray
    field: int
    code: int
    observed: np.ndarray


def seen_changes(x: np.ndarray, codes: np.ndarray, *, field: int, strata: list[int],
                 min_cells: int = MIN_GROUP) -> list[SeenChange]:
    """Every ``(stratum, a → b)`` change of field ``field`` whose two groups both have ``min_cells`` validation cells.

    Parameters
    ----------
    x
        ``(n, G)`` log1p-normalised validation cells.
    codes
        ``(n, F)`` their codes.
    field
        The counterfactual field's index.
    strata
        Indices of the fields held fixed (the other fields of the held-out combinations).
    """
    out: list[SeenChange] = []
    keys = codes[:, strata] if strata else np.zeros((len(codes), 0), dtype=np.int64)
    for key in np.unique(keys, axis=0):
        if (key == 0).any():  # an unknown stratum value is not a stratum
            continue
        inside = np.all(keys == key, axis=1)
        groups = {int(c): np.flatnonzero(inside & (codes[:, field] == c)) for c in np.unique(codes[inside, field])
                  if c > 0}
        groups = {c: rows for c, rows in groups.items() if len(rows) >= min_cells}
        for a, rows_a in groups.items():
            for b, rows_b in groups.items():
                if a != b:
                    out.append(SeenChange(rows=rows_a, field=field, code=b,
                                          observed=x[rows_b].mean(axis=0) - x[rows_a].mean(axis=0)))
    return out


__all__ = ["MIN_GROUP", "SeenChange", "change_scores", "r2", "seen_changes", "top_changed"]

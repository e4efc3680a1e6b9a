"""Classification metrics (pure NumPy): accuracy, balanced accuracy, macro-F1, Cohen's κ, per-class F1."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike


def confusion_matrix(truth: ArrayLike, pred: ArrayLike, *, classes: Sequence[str]) -> np.ndarray:
    """Counts ``(K, K)``: rows the true class, columns the predicted class, in the order of ``classes``.

    Labels outside ``classes`` raise ``ValueError``.
    """
    t, p = np.asarray(truth).astype(str), np.asarray(pred).astype(str)
    if t.shape != p.shape:
        raise ValueError(f"truth and pred differ in length: {t.shape} vs {p.shape}")
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(t) - set(index)) + sorted(set(p) - set(index))
    if unknown:
        raise ValueError(f"labels {unknown[:3]} are not among the classes {list(classes)}")
    out = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(out, (np.array([index[x] for x in t], dtype=int), np.array([index[x] for x in p], dtype=int)), 1)
    return out


def classification_metrics(truth: ArrayLike, pred: ArrayLike, *, classes: Sequence[str],
                           prefix: str = "") -> dict[str, float]:
    """Accuracy, balanced accuracy, macro-F1, Cohen's κ and the F1 of every class.

    Parameters
    ----------
    truth, pred
        True and predicted labels ``(n,)``.
    classes
        The label set (e.g. ``G1``, ``S``, ``G2M``); macro-F1 and balanced accuracy average over the
        classes present in ``truth`` (a class never predicted scores F1 0).
    prefix
        Prepended to every key (``target_atac_`` → ``target_atac_macro_f1``).

    Returns
    -------
    dict
        ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``cohen_kappa``, ``f1_<class>`` for each
        class present in ``truth`` and ``n``; NaN metrics for an empty set.
    """
    cm = confusion_matrix(truth, pred, classes=classes).astype(np.float64)
    n = cm.sum()
    if n == 0:
        nan = float("nan")
        return {f"{prefix}{k}": nan for k in ("accuracy", "balanced_accuracy", "macro_f1", "cohen_kappa")} | {
            f"{prefix}n": 0.0}
    tp = np.diag(cm)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=precision + recall > 0)
    observed = tp.sum() / n
    expected = float((support * predicted).sum()) / n**2
    kappa = (observed - expected) / (1 - expected) if expected < 1 else (1.0 if observed == 1 else 0.0)
    out = {"accuracy": float(observed), "balanced_accuracy": float(recall[present].mean()),
           "macro_f1": float(f1[present].mean()), "cohen_kappa": float(kappa), "n": float(n)}
    out |= {f"f1_{c}": float(f1[i]) for i, c in enumerate(classes) if present[i]}
    return {f"{prefix}{k}": v for k, v in out.items()}

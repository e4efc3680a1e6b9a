"""Classification metrics (pure NumPy): accuracy, balanced accuracy, macro-F1, Cohen's κ, per-class F1."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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


#: prefixes of the keys :func:`trivial_scores` adds to a family's held-out scores (read by ``register``'s gates)
TRIVIAL, CLASSES = "trivial/", "classes/"


def constant_baseline(truth: ArrayLike, *, classes: Sequence[str] | None = None) -> dict[str, float]:
    """The best score a constant prediction (every cell the same class) reaches on each metric of
    :func:`classification_metrics`: what a model that learned nothing scores on these cells.

    Parameters
    ----------
    truth
        True labels ``(n,)``.
    classes
        The label set (default: the labels of ``truth``).

    Returns
    -------
    dict
        ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``cohen_kappa`` and ``f1_<class>``, each the maximum over
        the constant predictions; empty for no cells. With one class in ``truth`` every value is 1.

    Examples
    --------
    >>> constant_baseline(["t", "t", "t", "u"])["accuracy"]
    0.75
    >>> constant_baseline(["t", "t"])["macro_f1"]
    1.0
    """
    t = np.asarray(truth).astype(str)
    present = sorted(set(t.tolist()))
    label_set = list(classes) if classes is not None else present
    best: dict[str, float] = {}
    for c in present:  # a class absent from the truth scores 0 everywhere: never better
        for key, value in classification_metrics(t, np.full(t.shape, c), classes=label_set).items():
            if key != "n" and (key not in best or value > best[key]):
                best[key] = value
    return best


def trivial_scores(metrics: Mapping[str, float], truth: ArrayLike, *, classes: Sequence[str] | None = None,
                   prefix: str = "") -> dict[str, float]:
    """The trivial baseline of every classification metric in ``metrics`` computed over ``truth``.

    A gate on such a metric means something only when a model that learned nothing would fail it: where
    :func:`constant_baseline` already passes a gate's bound (test cells of one class, or of one class so common
    that always answering it clears the bar), ``register`` asks the model to beat the baseline instead, which no
    model can on cells of one class.

    Parameters
    ----------
    metrics
        Held-out scores, e.g. ``{"label_transfer_accuracy": 0.9, ...}``.
    truth
        The true labels of the cells those metrics were computed on.
    classes
        The label set (default: the labels of ``truth``).
    prefix
        The metrics' prefix (``label_transfer_``, ``target_atac_``).

    Returns
    -------
    dict
        ``trivial/<metric>`` (:func:`constant_baseline`) and ``classes/<metric>`` (the number of classes among the
        cells) for each metric of ``metrics`` that has a baseline.

    Examples
    --------
    >>> trivial_scores({"label_transfer_accuracy": 0.8}, ["t", "t"], prefix="label_transfer_")
    {'trivial/label_transfer_accuracy': 1.0, 'classes/label_transfer_accuracy': 1.0}
    """
    n_classes = float(len(set(np.asarray(truth).astype(str).tolist())))
    out: dict[str, float] = {}
    for key, value in constant_baseline(truth, classes=classes).items():
        name = f"{prefix}{key}"
        if name in metrics:
            out[f"{TRIVIAL}{name}"] = value
            out[f"{CLASSES}{name}"] = n_classes
    return out

"""Evaluation metrics: pure functions of embeddings and labels."""

from __future__ import annotations

from xmodal.metrics.alignment import (
    foscttm,
    foscttm_per_cell,
    knn_label_transfer,
    label_transfer_confusion,
    matching_accuracy,
    neighborhood_matching,
)
from xmodal.metrics.classification import (
    CLASSES,
    TRIVIAL,
    classification_metrics,
    confusion_matrix,
    constant_baseline,
    trivial_scores,
)
from xmodal.metrics.counterfactual import change_scores, r2, top_changed

__all__ = [
    "CLASSES",
    "TRIVIAL",
    "change_scores",
    "classification_metrics",
    "confusion_matrix",
    "constant_baseline",
    "foscttm",
    "foscttm_per_cell",
    "knn_label_transfer",
    "label_transfer_confusion",
    "matching_accuracy",
    "neighborhood_matching",
    "r2",
    "top_changed",
    "trivial_scores",
]

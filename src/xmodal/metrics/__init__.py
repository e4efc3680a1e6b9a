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
from xmodal.metrics.classification import classification_metrics, confusion_matrix
from xmodal.metrics.counterfactual import change_scores, r2, top_changed

__all__ = [
    "change_scores",
    "classification_metrics",
    "confusion_matrix",
    "foscttm",
    "foscttm_per_cell",
    "knn_label_transfer",
    "label_transfer_confusion",
    "matching_accuracy",
    "neighborhood_matching",
    "r2",
    "top_changed",
]

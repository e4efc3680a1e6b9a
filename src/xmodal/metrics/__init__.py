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

__all__ = [
    "foscttm",
    "foscttm_per_cell",
    "knn_label_transfer",
    "label_transfer_confusion",
    "matching_accuracy",
    "neighborhood_matching",
]

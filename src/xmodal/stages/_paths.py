"""Where each stage reads and writes, relative to the project root (the DVC layout)."""

from __future__ import annotations

from pathlib import Path


def ingested_dir(root: str | Path, dataset: str) -> Path:
    """``data/ingested/<dataset>``: canonical ``data.h5mu`` + ``schema.json``."""
    return Path(root) / "data" / "ingested" / dataset


def processed_dir(root: str | Path, dataset: str) -> Path:
    """``data/processed/<dataset>``: preprocessed data with the split, plus the fitted preprocessor."""
    return Path(root) / "data" / "processed" / dataset


def model_dir(root: str | Path, dataset: str, method: str) -> Path:
    """``models/<dataset>/<method>``: the saved model."""
    return Path(root) / "models" / dataset / method


ABLATION = "ablation"
"""Sub-folder of a model folder holding the method's ablation (its registry entry's ``ablation``)."""


def checkpoint_dir(root: str | Path, dataset: str, method: str) -> Path:
    """``checkpoints/<dataset>/<method>``: resumable training state (outside DVC and git)."""
    return Path(root) / "checkpoints" / dataset / method


def report_dir(root: str | Path, dataset: str, method: str) -> Path:
    """``reports/<dataset>/<method>``: ``metrics.json`` and plots."""
    return Path(root) / "reports" / dataset / method


def registry_dir(root: str | Path, dataset: str, method: str) -> Path:
    """``reports/<dataset>/<method>/registry``: the promotion decision JSON (outside DVC)."""
    return Path(root) / "reports" / "registry" / dataset / method


def monitor_dir(root: str | Path, dataset: str) -> Path:
    """``reports/monitor/<dataset>``: the drift report (``drift.html``) and decision (``drift.json``)."""
    return Path(root) / "reports" / "monitor" / dataset

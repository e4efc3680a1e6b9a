"""MLflow adapter: tracking URIs, lineage tags, logging a run with its model, registry aliases.

MLflow is imported lazily (inside functions) so the rest of xmodal works without it.
"""

from __future__ import annotations

from xmodal.tracking._lineage import lineage_tags, model_sha256
from xmodal.tracking._mlflow import (
    ModelVersionRef,
    Tracker,
    flatten_params,
    load_registered,
    resolve_tracking_uri,
)

__all__ = [
    "ModelVersionRef",
    "Tracker",
    "flatten_params",
    "lineage_tags",
    "load_registered",
    "model_sha256",
    "resolve_tracking_uri",
]

"""Kubeflow pipelines wiring the components; installed as ``xmodal.pipelines``.

No data logic lives here: only the graph, resources, scheduling, secrets, retries and caching, all
read from ``params.yaml`` (``pipeline:``) at compile time.
"""

from __future__ import annotations

from xmodal.pipelines.training import build_training_pipeline

__all__ = ["build_training_pipeline"]

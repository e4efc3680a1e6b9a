"""The lifecycle stages, each a ``run(params, *, ..., root)`` function reading and writing files atomically."""

from __future__ import annotations

from xmodal.stages import evaluate, ingest, monitor, preprocess, register, report, train

__all__ = ["evaluate", "ingest", "monitor", "preprocess", "register", "report", "train"]

"""The lifecycle stages, each a ``run(params, *, ..., root)`` function reading and writing files atomically.

The stage modules are imported on first use (``stages.train`` or ``from xmodal.stages import train``), so
a process that runs one stage — a pipeline task, ``xmodal ingest`` — loads only what that stage needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xmodal.stages import evaluate, ingest, monitor, preprocess, register, report, train, tune

__all__ = ["evaluate", "ingest", "monitor", "preprocess", "register", "report", "train", "tune"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

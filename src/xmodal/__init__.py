"""xmodal: train, evaluate and ship cross-modal single-cell models.

The library is organised by layer (see ``DESIGN.md``): :mod:`xmodal.config` (typed params),
:mod:`xmodal.data` (readers, validation, synthetic and bundled data), :mod:`xmodal.metrics`,
:mod:`xmodal.methods` (the method registry), :mod:`xmodal.stages` (the lifecycle) and
:mod:`xmodal.tracking` (MLflow). Heavy dependencies are imported lazily.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"
__all__ = ["__version__"]

logging.getLogger(__name__).addHandler(logging.NullHandler())

"""Kubeflow Pipelines (v2) components, one folder per stage; installed as ``xmodal.components``.

Each component is a lightweight Python component whose body is one call into
:mod:`xmodal.stages.steps`; it runs in the project image (see :mod:`._image`), so nothing is pip-installed
at run time. Module level imports only the standard library, ``kfp`` and :mod:`._image`.
"""

from __future__ import annotations

from xmodal.components.evaluate.component import evaluate
from xmodal.components.ingest.component import ingest
from xmodal.components.monitor.component import monitor
from xmodal.components.preprocess.component import preprocess
from xmodal.components.register.component import register
from xmodal.components.train.component import train
from xmodal.components.train_distributed.component import train_distributed

__all__ = ["evaluate", "ingest", "monitor", "preprocess", "register", "train", "train_distributed"]

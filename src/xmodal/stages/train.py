"""``train``: fit a registered method on the training split of a processed dataset."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xmodal._io import atomic_dir
from xmodal.config import Params
from xmodal.data import read_paired
from xmodal.errors import ConfigError
from xmodal.methods import get_method
from xmodal.stages._paths import checkpoint_dir, model_dir, processed_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """The saved model folder and the model's fit summary."""

    output: Path
    info: dict[str, Any]


def run(params: Params, *, dataset: str, method: str, root: str | Path = ".", resume: bool = False) -> TrainResult:
    """Fit ``method`` on the training cells of ``data/processed/<dataset>`` and save it.

    Parameters
    ----------
    params
        ``params.methods[method]`` holds the hyper-parameters; ``params.seed`` seeds the fit.
    dataset, method
        Names in ``params.yaml`` and the method registry.
    root
        Project root; the model goes to ``models/<dataset>/<method>``.
    resume
        Continue from ``checkpoints/<dataset>/<method>/checkpoint.pt`` (methods whose registry
        entry is ``resumable``; they write that checkpoint while training).

    Returns
    -------
    TrainResult
        Output folder and fit summary. Validation cells are never seen by the fit.
    """
    spec = get_method(method)
    family = params.dataset(dataset).family
    if spec.family != family:
        raise ConfigError(f"method {method!r} works on family {spec.family!r}; dataset {dataset!r} is {family!r}")
    if resume and not spec.resumable:
        raise ConfigError(f"method {method!r} does not checkpoint its training; run without --resume")
    train = read_paired(processed_dir(root, dataset)).split("train")
    fit_kw = {"checkpoint_dir": checkpoint_dir(root, dataset, method), "resume": resume} if spec.resumable else {}
    model = spec.model_cls()(params.method(method)).fit(train, seed=params.seed, **fit_kw)
    out = model_dir(root, dataset, method)
    with atomic_dir(out) as tmp:
        model.save(tmp)
    log.info("train %s/%s → %s", dataset, method, out)
    return TrainResult(output=out, info=dict(model.info))

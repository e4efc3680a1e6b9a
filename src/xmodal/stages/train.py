"""``train``: fit a registered method on the training split of a processed dataset."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xmodal._io import atomic_dir, prepare_output, remove_stale_in
from xmodal.config import Params
from xmodal.data import read_paired
from xmodal.errors import ConfigError
from xmodal.methods import get_method
from xmodal.stages._paths import ABLATION, checkpoint_dir, model_dir, processed_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """The saved model folder and the model's fit summary."""

    output: Path
    info: dict[str, Any]


def load_training_data(params: Params, *, dataset: str, method: str, root: str | Path = ".") -> Any:
    """What ``method`` may see of ``data/processed/<dataset>``: the training cells (``paired``), or the
    training and validation cells (``multiome``: validation selects the kept model; test cells are dropped).

    Raises
    ------
    ConfigError
        When the method does not work on the dataset's family.
    """
    spec = get_method(method)
    family = params.dataset(dataset).family
    if spec.family != family:
        raise ConfigError(f"method {method!r} works on family {spec.family!r}; dataset {dataset!r} is {family!r}")
    if family == "multiome":
        from xmodal.data.multiome_io import read_multiome
        from xmodal.stages.preprocess_multiome import without_test

        return without_test(read_multiome(processed_dir(root, dataset)))
    return read_paired(processed_dir(root, dataset)).split("train")


def training_kwargs(params: Params, *, dataset: str) -> dict[str, Any]:
    """Keyword arguments of ``fit`` that come from the dataset (``multiome``: the source and target domains)."""
    cfg = params.dataset(dataset)
    if cfg.family == "multiome":
        return {"source_domain": cfg.source_domain, "target_domain": cfg.target_domain}  # type: ignore[union-attr]
    return {}


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
        Output folder and fit summary. Validation cells are never seen by the fit (``multiome``: the
        target domain's validation cells select the kept model; test cells are never passed in). A
        method with an ``ablation`` in its registry entry also gets that baseline, fitted with the same
        settings, in ``ablation/`` of the model folder.
    """
    spec = get_method(method)
    if resume and not spec.resumable:
        raise ConfigError(f"method {method!r} does not checkpoint its training; run without --resume")
    config = params.method(method)
    out = prepare_output(model_dir(root, dataset, method))
    if spec.resumable:  # a checkpoint being written when the last run was killed
        remove_stale_in(checkpoint_dir(root, dataset, method))
    train = load_training_data(params, dataset=dataset, method=method, root=root)
    fit_kw = training_kwargs(params, dataset=dataset)
    resume_kw = {"checkpoint_dir": checkpoint_dir(root, dataset, method), "resume": resume} if spec.resumable else {}
    model = spec.model_cls()(config).fit(train, seed=params.seed, **fit_kw, **resume_kw)
    ablation = None
    if spec.ablation:
        log.info("train %s/%s: the ablation (%s) with the same settings", dataset, method, spec.ablation)
        ablation = spec.model_cls()(config.model_copy(update=spec.ablation)).fit(train, seed=params.seed, **fit_kw)
    with atomic_dir(out) as tmp:
        model.save(tmp)
        if ablation is not None:
            ablation.save(tmp / ABLATION)
    log.info("train %s/%s → %s", dataset, method, out)
    return TrainResult(output=out, info=dict(model.info))

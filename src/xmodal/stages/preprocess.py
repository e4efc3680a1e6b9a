"""``preprocess``: split cells into train / validation / test, then the family's preprocessing fitted on training
cells only, saved beside the data so raw cells can be brought into the model's features later."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from xmodal._io import atomic_dir, prepare_output, update_json
from xmodal.config import Params
from xmodal.data import SCHEMA_FILE
from xmodal.families import family_of
from xmodal.stages._paths import ingested_dir, processed_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreprocessResult:
    """What ``preprocess`` wrote and how many cells of each modality (or domain) landed in each split."""

    output: Path
    sizes: dict[str, dict[str, int]]

    @property
    def n_train(self) -> dict[str, int]:
        """Training cells per modality (or domain)."""
        return self.sizes["train"]

    @property
    def n_validation(self) -> dict[str, int]:
        """Validation cells (early stopping, selection, tuning) per modality (or domain)."""
        return self.sizes["validation"]

    @property
    def n_test(self) -> dict[str, int]:
        """Test cells (the headline, the gates, promotion) per modality (or domain)."""
        return self.sizes["test"]


def run(params: Params, *, dataset: str, root: str | Path = ".") -> PreprocessResult:
    """Split ``data/ingested/<dataset>`` and preprocess it into ``data/processed/<dataset>``.

    Parameters
    ----------
    params
        ``params.split`` (shares, stratification, seed, floors) and ``preprocess.<family>``.
    dataset
        Dataset name.
    root
        Project root.

    Returns
    -------
    PreprocessResult
        Output folder and split sizes. Bad or too few cells raise
        :class:`~xmodal.errors.XmodalInputError` and nothing is written.
    """
    family = family_of(params, dataset)
    cfg = params.preprocess_config(family.name)
    out = prepare_output(processed_dir(root, dataset))
    with atomic_dir(out) as tmp:
        sizes = family.preprocess(ingested_dir(root, dataset), out=tmp, cfg=cfg, split=params.split,
                                  dataset=params.dataset(dataset))
        update_json(tmp / SCHEMA_FILE, settings={"preprocess": cfg.model_dump(mode="json"),
                                                 "split": params.split.model_dump(mode="json")})
    result = PreprocessResult(output=out, sizes=sizes)
    log.info("preprocess %s: train %s, validation %s, test %s → %s", dataset, result.n_train, result.n_validation,
             result.n_test, out)
    return result

"""``ingest``: a dataset's raw data → validated ``data.h5mu`` + ``schema.json``, by its family's readers."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xmodal._io import atomic_dir, prepare_output, update_json
from xmodal.config import Params
from xmodal.data import SCHEMA_FILE
from xmodal.families import family_of
from xmodal.stages._paths import ingested_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    """What ``ingest`` wrote: the output folder and its schema (shapes, content hashes)."""

    output: Path
    schema: dict[str, Any]


def _settings(params: Params, dataset: str) -> dict[str, Any]:
    """What ``schema.json`` records of the settings the data were made with (the registry logs these)."""
    return {"dataset": params.dataset(dataset).model_dump(mode="json"), "seed": params.seed}


def run(params: Params, *, dataset: str, root: str | Path = ".", source_root: str | Path | None = None) -> IngestResult:
    """Read and validate dataset ``dataset`` and write it in canonical form.

    Parameters
    ----------
    params
        Loaded parameters; ``params.datasets[dataset]`` names the family and says where the data come from.
    dataset
        Dataset name in ``params.yaml``.
    root
        Project root; the output ``data/ingested/<dataset>`` is under it.
    source_root
        Where relative input paths of the source are resolved (default: ``root``). A pipeline step
        writes into a scratch root but reads the project's raw files.

    Returns
    -------
    IngestResult
        The output directory and schema. On invalid input an
        :class:`~xmodal.errors.XmodalInputError` is raised and nothing is written.
    """
    cfg = params.dataset(dataset)
    family = family_of(params, dataset)
    out = prepare_output(ingested_dir(root, dataset))
    with atomic_dir(out) as tmp:
        shown = family.ingest(cfg, out=tmp, source_root=Path(root if source_root is None else source_root),
                              seed=params.seed)
        schema = update_json(tmp / SCHEMA_FILE, settings=_settings(params, dataset))
    log.info("ingest %s (%s): %s → %s", dataset, family.name, shown, out)
    return IngestResult(output=out, schema=schema)

"""``ingest``: dataset source → canonical ``Dataset`` artifact (``data.h5mu`` + ``schema.json``)."""

# no `from __future__ import annotations`: KFP reads the real annotation objects
from kfp import dsl
from kfp.dsl import Dataset, Output

from xmodal.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def ingest(params_text: str, dataset: str, source_root: str, ingested: Output[Dataset]) -> None:
    """Read and validate ``dataset`` (a name in params) into ``ingested``."""
    from xmodal.stages.steps import ingest_step

    ingested.metadata.update(ingest_step(params_text, dataset=dataset, output=ingested.path, source_root=source_root))

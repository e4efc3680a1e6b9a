"""``preprocess``: ingested ``Dataset`` → split, scaled, PCA-reduced ``Dataset`` with fitted preprocessors."""

# no `from __future__ import annotations`: KFP reads the real annotation objects
from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from xmodal.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def preprocess(params_text: str, dataset: str, ingested: Input[Dataset], processed: Output[Dataset]) -> None:
    """Split into train/validation and preprocess (statistics from training cells only)."""
    from xmodal.stages.steps import preprocess_step

    processed.metadata.update(preprocess_step(params_text, dataset=dataset, ingested=ingested.path,
                                              output=processed.path))

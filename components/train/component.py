"""``train``: processed ``Dataset`` → ``Model`` (one method from the registry)."""

# no `from __future__ import annotations`: KFP reads the real annotation objects
from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from xmodal.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train(params_text: str, dataset: str, method: str, processed: Input[Dataset], model: Output[Model]) -> None:
    """Fit ``method`` on the training cells; validation cells are never seen."""
    from xmodal.stages.steps import train_step

    model.metadata.update(train_step(params_text, dataset=dataset, method=method, processed=processed.path,
                                     output=model.path))

"""``train_distributed``: processed ``Dataset`` → ``Model``, trained as a Kubeflow Trainer TrainJob across nodes."""

# no `from __future__ import annotations`: KFP reads the real annotation objects
from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from xmodal.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_distributed(params_text: str, dataset: str, method: str, processed: Input[Dataset],
                      model: Output[Model]) -> None:
    """Stage the data in S3, run ``torchrun … xmodal train`` on the nodes of a TrainJob, fetch the model."""
    from xmodal.stages.steps import train_distributed_step

    model.metadata.update(train_distributed_step(params_text, dataset=dataset, method=method, processed=processed.path,
                                        output=model.path))

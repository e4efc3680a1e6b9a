"""``register``: models + evaluations → MLflow versions, ``challenger``/``champion`` aliases, decisions."""

# no `from __future__ import annotations`: KFP reads the real annotation objects
from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Model, Output

from xmodal.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register(
    params_text: str,
    dataset: str,
    ingested: Input[Dataset],
    processed: Input[Dataset],
    models: Input[list[Model]],
    evaluations: Input[list[Dataset]],
    decisions: Output[Markdown],
    registered_as: str = "",
    reference_ingested: Optional[Input[Dataset]] = None,  # noqa: UP045 - KFP reads typing.Optional
    reference_processed: Optional[Input[Dataset]] = None,  # noqa: UP045
) -> str:
    """Log and register each model; promote to ``champion`` only past the gates and the champion.

    ``registered_as`` names the dataset whose registered models the new versions join (empty: ``dataset``);
    ``reference_ingested``/``reference_processed`` are that dataset's folders, whose held-out cells the gates
    are judged on. Returns the decisions as ``dataset/method=decision`` pairs separated by commas.
    """
    from xmodal.stages.steps import register_step

    return ",".join(f"{d['dataset']}/{d['method']}={d['decision']}" for d in register_step(
        params_text, dataset=dataset, ingested=ingested.path, processed=processed.path,
        models=[m.path for m in models], evaluations=[e.path for e in evaluations], output=decisions.path,
        registered_as=registered_as,
        reference_ingested=None if reference_ingested is None else reference_ingested.path,
        reference_processed=None if reference_processed is None else reference_processed.path))

"""``monitor``: new data vs the champion's training data → drift report and a retrain decision."""

# no `from __future__ import annotations`: KFP reads the real annotation objects
from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from xmodal.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def monitor(
    params_text: str,
    dataset: str,
    ingested: Input[Dataset],
    processed: Input[Dataset],
    new: Input[Dataset],
    drift: Output[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
) -> bool:
    """Evidently drift on a PCA fitted on the reference; returns whether to retrain."""
    from xmodal.stages.steps import monitor_step

    return monitor_step(params_text, dataset=dataset, ingested=ingested.path, processed=processed.path,
                        new=new.path, output=drift.path, metrics=metrics, html=report.path)

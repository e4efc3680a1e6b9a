"""``evaluate``: ``Model`` + processed ``Dataset`` → metrics (shown in the Kubeflow UI), report, plots."""

# no `from __future__ import annotations`: KFP reads the real annotation objects
from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from xmodal.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    params_text: str,
    dataset: str,
    processed: Input[Dataset],
    model: Input[Model],
    evaluation: Output[Dataset],
    metrics: Output[Metrics],
    label_transfer: Output[ClassificationMetrics],
    report: Output[HTML],
) -> None:
    """Score the alignment on validation cells: metrics, label-transfer confusion matrix, HTML report."""
    from xmodal.stages.steps import evaluate_step

    evaluate_step(params_text, dataset=dataset, processed=processed.path, model=model.path, output=evaluation.path,
                  metrics=metrics, confusion=label_transfer, html=report.path)

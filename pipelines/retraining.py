"""The retraining pipeline: monitor new data against the champion's → ``dsl.If(drift)`` → training pipeline."""

# no `from __future__ import annotations`: KFP reads the pipeline function's real annotations
from typing import Any

from xmodal.config import Params
from xmodal.errors import ConfigError

PIPELINE_NAME = "xmodal-retraining"


def build_retraining_pipeline(params: Params, *, params_text: str, dataset: str | None = None,
                              new_dataset: str | None = None) -> Any:
    """Build the retraining pipeline.

    ``dataset`` (the champion's data) and ``new_dataset`` (incoming cells, another entry of ``datasets:``,
    typically an ``s3://`` source) are both ingested; ``monitor`` compares the new cells with the
    reference's training cells, and only when it says so does the training pipeline run on ``new_dataset``.
    The retrained models join the reference's registered models (``xmodal-<method>-<dataset>``): each
    becomes the ``challenger`` and replaces the ``champion`` only if it passes the gates on the reference's
    held-out cells and beats the champion on the new data's held-out cells.

    Parameters
    ----------
    params
        Parsed parameters (``pipeline:`` and ``monitor:`` sections).
    params_text
        Default of the pipeline parameter ``params_text`` (what every step parses).
    dataset, new_dataset
        Defaults of the pipeline parameters (``pipeline.dataset`` / ``pipeline.new_dataset`` otherwise).

    Returns
    -------
    kfp GraphComponent
    """
    from kfp import dsl

    from xmodal.components import ingest, monitor, preprocess
    from xmodal.pipelines._platform import configure_task
    from xmodal.pipelines.training import add_training_tasks, default_dataset, method_groups

    cfg = params.pipeline
    reference = dataset or default_dataset(params)
    incoming = new_dataset or cfg.new_dataset
    if not incoming:
        raise ConfigError("pipeline.new_dataset: name the dataset of incoming cells (or pass --new-dataset)")
    params.dataset(incoming)
    method_groups(params, dataset=incoming)  # fail early: incoming data without methods

    @dsl.pipeline(name=PIPELINE_NAME,
                  description="drift of new data vs the champion's training data → retrain when it drifted")
    def retraining(params_text: str = params_text, dataset: str = reference, new_dataset: str = incoming,
                   source_root: str = "") -> None:
        ref = configure_task(ingest(params_text=params_text, dataset=dataset, source_root=source_root),
                             cfg=cfg, name="ingest reference")
        ref_prep = configure_task(preprocess(params_text=params_text, dataset=dataset, ingested=ref.outputs["ingested"]),
                                  cfg=cfg, name="preprocess reference")
        new = configure_task(ingest(params_text=params_text, dataset=new_dataset, source_root=source_root),
                             cfg=cfg, name="ingest new data")
        check = configure_task(monitor(params_text=params_text, dataset=dataset, ingested=ref.outputs["ingested"],
                                       processed=ref_prep.outputs["processed"], new=new.outputs["ingested"]),
                               cfg=cfg, name="monitor")
        check.set_caching_options(enable_caching=False)  # new data arrive under the same name
        with dsl.If(check.outputs["Output"] == True, name="drifted"):  # noqa: E712 (a KFP condition, not Python)
            # the training tasks, registering into the reference's models: their gates are judged on the
            # reference's held-out cells, which the register task gets from the reference's tasks above
            add_training_tasks(params, dataset_name=incoming, params_text=params_text, dataset=new_dataset,
                               source_root=source_root, registered_as=dataset,
                               reference_ingested=ref.outputs["ingested"],
                               reference_processed=ref_prep.outputs["processed"], prefix="retrain: ")

    return retraining

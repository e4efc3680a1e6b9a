"""The MLflow run of a training, opened when training starts: params, dataset inputs, live metrics.

``train`` opens it on rank 0 before the fit; the engine sends each record to it while training
runs (batched: at most one write per ``flush_seconds`` or ``flush_records``); when the model is
saved the run is tagged with the model's hash and closed. ``register`` then finds the run by that
hash and attaches the model to it, instead of creating a second run after the fact.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
TRAINING_RUN_TAG = "xmodal.training_run"
"""Tag ``"true"`` on runs opened by ``train``."""
_DIGEST_LEN = 36  # MLflow's dataset digest column


def dataset_inputs(processed: Path, *, dataset: str) -> list[Any]:
    """MLflow dataset inputs of a processed dataset: one per modality, digest = its content hash.

    Read from ``schema.json`` (``modalities.<m>.sha256``, ``n_obs``, ``n_vars``); the context tag is
    ``training`` (only the training split is read by a fit).
    """
    from mlflow.entities import Dataset, DatasetInput, InputTag

    from xmodal._io import read_json

    schema_file = processed / "schema.json"
    schema = read_json(schema_file) if schema_file.is_file() else {}
    out = []
    for key, mod in sorted((schema.get("modalities") or {}).items()):
        if not isinstance(mod, dict) or not mod.get("sha256"):
            continue
        name = f"{dataset}/{mod.get('name', key)}"
        profile = {k: mod[k] for k in ("n_obs", "n_vars", "kind") if k in mod}
        entity = Dataset(name=name, digest=str(mod["sha256"])[:_DIGEST_LEN], source_type="local",
                         source=json.dumps({"uri": str(processed / "data.h5mu"), "sha256": mod["sha256"]}),
                         schema=json.dumps({"modality": key, "family": schema.get("family")}),
                         profile=json.dumps({**profile, "split": "train"}))
        out.append(DatasetInput(dataset=entity, tags=[InputTag(key="mlflow.data.context", value="training")]))
    return out


class TrainingRun:
    """A live MLflow run (a :class:`~xmodal.train.LiveLogger`).

    Parameters
    ----------
    tracker
        An open :class:`~xmodal.tracking.Tracker`.
    run_name
        MLflow run name.
    params
        Flat params logged at once.
    inputs
        Dataset inputs (:func:`dataset_inputs`).
    tags
        Run tags (lineage).
    flush_seconds, flush_records
        Buffer metrics for at most this long / this many values.
    """

    def __init__(self, tracker: Any, *, run_name: str, params: Mapping[str, str], inputs: list[Any],
                 tags: Mapping[str, str], flush_seconds: float = 2.0, flush_records: int = 500) -> None:
        from mlflow.entities import Param

        self.client = tracker.client
        run = self.client.create_run(tracker.experiment_id(), run_name=run_name,
                                     tags={**tags, TRAINING_RUN_TAG: "true"})
        self.run_id = run.info.run_id
        plist = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(plist), 100):
            self.client.log_batch(self.run_id, params=plist[start:start + 100])
        if inputs:
            self.client.log_inputs(self.run_id, datasets=inputs)
        self.flush_seconds, self.flush_records = flush_seconds, flush_records
        self._buffer: list[Any] = []
        self._last = time.monotonic()
        log.info("training run %s opened in MLflow", self.run_id)

    def log_metrics(self, metrics: dict[str, float], *, step: int) -> None:
        """Queue one step's values as ``train/<name>``; written every few seconds."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._buffer += [Metric(f"train/{k}", float(v), now, int(step)) for k, v in metrics.items()
                         if isinstance(v, int | float) and math.isfinite(float(v))]
        if len(self._buffer) >= self.flush_records or time.monotonic() - self._last >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the queued values."""
        while self._buffer:
            chunk, self._buffer = self._buffer[:1000], self._buffer[1000:]
            self.client.log_batch(self.run_id, metrics=chunk)
        self._last = time.monotonic()

    def finish(self, *, tags: Mapping[str, str] | None = None, status: str = "FINISHED") -> None:
        """Flush, tag (e.g. with the saved model's hash) and close the run."""
        try:
            self.flush()
            for k, v in (tags or {}).items():
                self.client.set_tag(self.run_id, k, v)
        finally:
            self.client.set_terminated(self.run_id, status=status)


__all__ = ["TRAINING_RUN_TAG", "TrainingRun", "dataset_inputs"]

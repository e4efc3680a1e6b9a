"""The engine's settings, shared by every deep method's config (``methods.<name>.device`` etc.)."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import Field, model_validator

from xmodal.config import StrictModel

ENGINE_FIELDS = ("device", "precision", "strategy", "devices", "num_nodes", "checkpoint_every", "threads")
"""Fields of :class:`EngineSettings`: where and how a model trains, not what it learns."""

BOOKKEEPING = ("checkpoint_every", "threads", "device", "precision")
"""Fields a checkpoint may be resumed under with other values (they do not change the trained weights on CPU;
``device`` and ``precision`` are free so a run started on one machine can finish on another)."""


class EngineSettings(StrictModel):
    """Where and how a deep method trains: device, precision, distribution and checkpoints.

    Every deep method's config inherits these fields, so ``params.yaml: methods.<name>`` sets them.
    """

    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when PyTorch sees a device, else CPU; cuda without a device is an error")
    precision: Literal["32", "bf16-mixed"] = Field(
        "32", description="32: float32 everywhere; bf16-mixed: autocast matmuls to bfloat16 (GPUs with bf16; "
        "weights and optimiser state stay float32)")
    strategy: Literal["auto", "ddp"] = Field(
        "auto", description="auto: one process; ddp: torch DistributedDataParallel, one process per device, "
        "started by torchrun (or Kubeflow's trainer); batch_size is per process")
    devices: int | Literal["auto"] = Field(
        "auto", description="processes per node under ddp (auto: torchrun's LOCAL_WORLD_SIZE, else 1)")
    num_nodes: int | Literal["auto"] = Field(
        "auto", description="nodes under ddp (auto: torchrun's WORLD_SIZE / LOCAL_WORLD_SIZE, else 1)")
    checkpoint_every: int = Field(500, ge=1, description="write a resumable checkpoint every this many steps")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (null: torch's default)")

    @model_validator(mode="after")
    def _positive_counts(self) -> EngineSettings:
        for name in ("devices", "num_nodes"):
            value = getattr(self, name)
            if value != "auto" and value < 1:
                raise ValueError(f"{name} must be ≥ 1 or `auto`")
        return self


def settings_digest(config: StrictModel, *, shapes: Any, seed: int, exclude: tuple[str, ...] = ()) -> str:
    """What a checkpoint must match to be resumed: every setting of ``config`` but where it trains
    (:data:`ENGINE_FIELDS`) and ``exclude``, plus the data's ``shapes`` and the ``seed`` (16 hex digits)."""
    fields = config.model_dump(mode="json", exclude={*ENGINE_FIELDS, *exclude})
    blob = json.dumps({"config": fields, "dims": list(shapes), "seed": seed}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


__all__ = ["BOOKKEEPING", "ENGINE_FIELDS", "EngineSettings", "settings_digest"]

"""Typed parameters: ``params.yaml`` → pydantic models, unknown or mistyped keys are errors.

Precedence: CLI overrides (``--set a.b=1``) > ``params.yaml`` > the defaults in the models. A dataset entry is
validated by its family's config (:mod:`xmodal.families`), a method's section by the method's config
(:mod:`xmodal.methods`).
"""

from __future__ import annotations

from xmodal.config._load import apply_overrides, load_params, params_from_dict
from xmodal.config._models import (
    DistributedTraining,
    EvaluateConfig,
    GateBound,
    GpuPool,
    MonitorConfig,
    Params,
    PipelineConfig,
    RegisterConfig,
    RunConfig,
    SplitConfig,
    StrictModel,
    TaskResources,
    Toleration,
    TuneConfig,
    changed_settings,
    describe_settings,
)

__all__ = [
    "EvaluateConfig",
    "GateBound",
    "GpuPool",
    "MonitorConfig",
    "Params",
    "DistributedTraining",
    "PipelineConfig",
    "RegisterConfig",
    "RunConfig",
    "SplitConfig",
    "StrictModel",
    "TaskResources",
    "Toleration",
    "TuneConfig",
    "apply_overrides",
    "changed_settings",
    "describe_settings",
    "load_params",
    "params_from_dict",
]

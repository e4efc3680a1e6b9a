"""Typed parameters: ``params.yaml`` → pydantic models, unknown or mistyped keys are errors.

Precedence: CLI overrides (``--set a.b=1``) > ``params.yaml`` > the defaults in the models.
"""

from __future__ import annotations

from xmodal.config._load import apply_overrides, load_params, params_from_dict
from xmodal.config._models import (
    AnnDataSource,
    CsvPairedSource,
    DatasetConfig,
    EvaluateConfig,
    GateBound,
    GpuPool,
    MonitorConfig,
    Params,
    Pbmc68kSource,
    PipelineConfig,
    PreprocessConfig,
    RegisterConfig,
    RunGroup,
    StrictModel,
    SyntheticMultiomeSource,
    SyntheticPairedSource,
    TaskResources,
    Toleration,
)

__all__ = [
    "AnnDataSource",
    "CsvPairedSource",
    "DatasetConfig",
    "EvaluateConfig",
    "GateBound",
    "GpuPool",
    "MonitorConfig",
    "Params",
    "Pbmc68kSource",
    "PipelineConfig",
    "PreprocessConfig",
    "RegisterConfig",
    "RunGroup",
    "StrictModel",
    "SyntheticMultiomeSource",
    "SyntheticPairedSource",
    "TaskResources",
    "Toleration",
    "apply_overrides",
    "load_params",
    "params_from_dict",
]

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
    MultiomeDatasetConfig,
    MultiomeDomainFiles,
    MultiomeFilesSource,
    MultiomePreprocessConfig,
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
    TuneConfig,
)

__all__ = [
    "AnnDataSource",
    "CsvPairedSource",
    "DatasetConfig",
    "EvaluateConfig",
    "GateBound",
    "GpuPool",
    "MonitorConfig",
    "MultiomeDatasetConfig",
    "MultiomeDomainFiles",
    "MultiomeFilesSource",
    "MultiomePreprocessConfig",
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
    "TuneConfig",
    "apply_overrides",
    "load_params",
    "params_from_dict",
]

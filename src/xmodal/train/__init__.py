"""One training engine for every deep method, built on PyTorch Lightning.

A deep method is a :class:`XmodalModule` (a LightningModule), a :class:`StepLoader` saying what each
step's batch is, and a config inheriting :class:`EngineSettings`. :func:`fit` runs it: seeded and
deterministic on CPU, checkpointed atomically, resumable bit-identically, with a progress bar, live
metrics, NaN checks, early stopping on validation cells, any device and precision, and DDP over
``devices × num_nodes`` processes started by ``torchrun``.

Importing this package is cheap; Lightning is imported with the first engine name used.
"""

from __future__ import annotations

from xmodal._targets import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "_config": ("BOOKKEEPING", "ENGINE_FIELDS", "EngineSettings", "data_hash", "settings_digest"),
    "_engine": ("CHECKPOINT", "FitResult", "LiveLogger", "Selection", "check_checkpoint_place", "fit", "global_rank",
                "read_checkpoint", "resolve_layout"),
    "_loader": ("StepLoader", "epoch_slice", "permutation", "shard"),
    "_module": ("XmodalModule",),
})

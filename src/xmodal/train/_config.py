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


def settings_digest(config: StrictModel, *, shapes: Any, seed: int, data: str, exclude: tuple[str, ...] = ()) -> str:
    """What a checkpoint must match to be resumed (16 hex digits).

    Parameters
    ----------
    config
        The method's settings: every field but where it trains (:data:`ENGINE_FIELDS`) and ``exclude``.
    shapes
        The data's dimensions.
    seed
        The fit's seed.
    data
        A content hash of what the fit trains on (:func:`data_hash`, or a hash the data carries), so that a
        checkpoint of another dataset, or of the same one split another way, is never resumed on this one.
    exclude
        Fields a checkpoint may be resumed under with other values (e.g. a longer ``max_iter``).

    Returns
    -------
    str
        The digest; :func:`xmodal.train.fit` adds the process count.
    """
    fields = config.model_dump(mode="json", exclude={*ENGINE_FIELDS, *exclude})
    blob = json.dumps({"config": fields, "dims": list(shapes), "seed": seed, "data": str(data)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def data_hash(*parts: Any) -> str:
    """SHA-256 (hex) of the arrays a fit trains on, in order: NumPy arrays, SciPy sparse matrices, torch tensors,
    numbers, strings, ``None`` and (nested) lists or tuples of them.

    Each array enters with its type, dtype and shape, so equal bytes of another shape or type hash differently;
    a sparse matrix enters as canonical CSR (its indices sorted, explicit zeros kept as stored).

    Raises
    ------
    TypeError
        For a part of another type.
    """
    h = hashlib.sha256()
    for part in parts:
        _hash_into(h, part)
    return h.hexdigest()


def _hash_into(h: Any, part: Any) -> None:
    import numpy as np
    import scipy.sparse as sp
    import torch

    if part is None or isinstance(part, bool | int | float | str):
        h.update(f"{type(part).__name__}:{part!r};".encode())
    elif isinstance(part, list | tuple):
        h.update(f"seq{len(part)}[".encode())
        for item in part:
            _hash_into(h, item)
        h.update(b"]")
    elif sp.issparse(part):
        x = sp.csr_matrix(part, copy=True)
        x.sort_indices()
        h.update(f"csr{x.shape}{x.dtype};".encode())
        for arr in (x.indptr.astype(np.int64), x.indices.astype(np.int64), x.data):
            h.update(np.ascontiguousarray(arr).tobytes())
    elif isinstance(part, torch.Tensor):
        _hash_into(h, part.detach().cpu().numpy())
    elif isinstance(part, np.ndarray | np.generic):
        arr = np.ascontiguousarray(part)
        if arr.dtype == object:
            _hash_into(h, [str(v) for v in arr.ravel()])
            h.update(f"object{arr.shape};".encode())
            return
        h.update(f"nd{arr.shape}{arr.dtype.str};".encode())
        h.update(arr.tobytes())
    else:
        raise TypeError(f"data_hash: cannot hash a {type(part).__name__}")


__all__ = ["BOOKKEEPING", "ENGINE_FIELDS", "EngineSettings", "data_hash", "settings_digest"]

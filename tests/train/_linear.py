"""A least-squares regression trained through the engine: deterministic, so DDP must match one process exactly."""

from __future__ import annotations

from typing import Any

import torch

from xmodal.train import (
    EngineSettings,
    StepLoader,
    XmodalModule,
    epoch_slice,
    fit,
    permutation,
    shard,
)

N, D, STEPS = 64, 5, 12


class Linear(XmodalModule):
    method = "linear"

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(D, 1)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = torch.nn.functional.mse_loss(self.layer(batch["x"]), batch["y"])
        self.record({"loss": float(loss.detach())})
        return loss


def fit_linear(*, batch_size: int, strategy: str = "ddp") -> dict[str, torch.Tensor]:
    """Train ``STEPS`` steps on fixed data; return the final weights."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, D, generator=g)
    y = x @ torch.arange(1.0, D + 1).unsqueeze(1) + 0.1 * torch.randn(N, 1, generator=g)

    def batch(step: int, rank: int, world: int) -> dict[str, Any]:
        epoch, start = epoch_slice(N, step=step, per_rank=batch_size, world=world)
        rows = shard(permutation(N, seed=0, stream=0, epoch=epoch)[start:start + batch_size * world], rank=rank,
                     world=world)
        return {"step": step, "x": x[rows], "y": y[rows]}

    module = Linear()
    fit(module, StepLoader(batch, total=STEPS), settings=EngineSettings(device="cpu", strategy=strategy),
        digest="linear", seed=0, what="linear")
    return {k: v.detach().clone() for k, v in module.state_dict().items()}

"""Batches as a pure function of ``(step, rank, world)``: the one loader the engine iterates.

A method says what the batch of a step is (:class:`BatchPlan`); :class:`StepLoader` turns that into
an iterable Lightning treats as *stateful* (it has ``state_dict``/``load_state_dict``), so the
loader's position is saved in every checkpoint and a resumed run sees exactly the batches an
uninterrupted one would have seen. Under DDP each rank takes its own slice of the step's global
batch (:func:`shard`), so ranks never overlap and the global batch is ``world × batch_size``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch

BatchFn = Callable[[int, int, int], dict[str, Any]]
"""``batch(step, rank, world) -> {"step": step, ...tensors}`` of one process."""


def permutation(n: int, *, seed: int, stream: int, epoch: int) -> np.ndarray:
    """A seeded permutation of ``range(n)`` for one data stream and epoch, identical on every rank."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(stream) * 7919 + int(epoch))
    return torch.randperm(n, generator=g).numpy()


def epoch_slice(n: int, *, step: int, per_rank: int, world: int) -> tuple[int, int]:
    """``(epoch, offset)`` of a step's global batch of ``per_rank × world`` rows in epochs of ``n`` rows.

    An epoch holds ``n // (per_rank × world)`` steps (the rest of the rows is dropped, as ``drop_last``).

    Raises
    ------
    ValueError
        When one global batch does not fit in ``n`` rows.
    """
    size = per_rank * world
    per_epoch = n // size
    if per_epoch == 0:
        raise ValueError(f"a global batch of {size} rows ({world} process(es) × {per_rank}) exceeds the {n} rows")
    epoch, i = divmod(step, per_epoch)
    return epoch, i * size


def shard(rows: np.ndarray, *, rank: int, world: int) -> np.ndarray:
    """Rank ``rank``'s contiguous part of a global batch ``(world × b,)`` → ``(b,)``; parts never overlap."""
    b = len(rows) // world
    return rows[rank * b:(rank + 1) * b]


IterateFn = Callable[[int, int, int, int], Iterable[dict[str, Any]]]
"""``iterate(start, total, rank, world)`` → the batches of steps ``start … total − 1`` of one process, in order."""


class StepLoader:
    """Iterate the batches of steps ``position … total − 1`` for this process (see the module docstring).

    Parameters
    ----------
    batch
        ``batch(step, rank, world)`` → a dict holding ``"step"`` and the process's tensors.
    total
        Steps of the whole training; iteration ends there.
    iterate
        Yields the same batches as ``batch`` would, another way (e.g. from DataLoader worker processes that read
        ahead); default: ``batch`` called step by step in this process.
    """

    def __init__(self, batch: BatchFn, *, total: int, iterate: IterateFn | None = None) -> None:
        self.batch, self.total, self.iterate = batch, int(total), iterate
        self.position = 0
        self.rank, self.world = 0, 1
        self.finished = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.finished:  # stopped early: nothing is left to train
            return
        if self.iterate is not None:
            yield from self.iterate(self.position, self.total, self.rank, self.world)
            return
        for step in range(self.position, self.total):
            yield self.batch(step, self.rank, self.world)

    def state_dict(self) -> dict[str, int]:
        """The next step training will see, and the process layout it was sharded for."""
        return {"step": self.position, "world": self.world}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a saved position."""
        self.position = int(state["step"])


__all__ = ["BatchFn", "IterateFn", "StepLoader", "epoch_slice", "permutation", "shard"]

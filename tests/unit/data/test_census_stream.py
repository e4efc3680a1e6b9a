"""The census streaming loader: epochs, DDP sharding, exact resume, spawn workers, bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from xmodal.families.census._stream import MemoryChunks, StreamPlan, stream_loader


def _store(n_cells: int = 1000, chunk_size: int = 100) -> MemoryChunks:
    counts = sp.random(n_cells, 20, density=0.1, format="csr", random_state=0, dtype=np.float32)
    codes = np.stack([np.arange(n_cells), np.arange(n_cells) // chunk_size], axis=1)  # cell id, chunk id
    return MemoryChunks(counts, codes, chunk_size=chunk_size)


def _ids(plan: StreamPlan, steps: range, rank: int = 0, world: int = 1) -> list[np.ndarray]:
    return [plan.rows(s, rank, world)[1][:, 0] for s in steps]


def test_an_epoch_sees_each_cell_once_and_mixes_chunks() -> None:
    plan = StreamPlan(_store(), batch_size=32, seed=0, buffer_chunks=4)
    steps = plan.steps_in_epoch(0, 1)
    assert steps == 1000 // 32
    cells = np.concatenate(_ids(plan, range(steps)))
    assert len(np.unique(cells)) == len(cells) == steps * 32
    chunks_per_batch = [len(np.unique(plan.rows(s, 0, 1)[1][:, 1])) for s in range(steps)]
    assert np.mean(chunks_per_batch) > 2.5  # cells of a buffer of 4 chunks are shuffled together


def test_the_order_changes_every_epoch_and_repeats_under_the_seed() -> None:
    plan = StreamPlan(_store(), batch_size=50, seed=3)
    steps = plan.steps_in_epoch(0, 1)
    first = np.concatenate(_ids(plan, range(steps)))
    second = np.concatenate(_ids(plan, range(steps, 2 * steps)))
    assert not np.array_equal(first, second)
    again = StreamPlan(_store(), batch_size=50, seed=3)
    np.testing.assert_array_equal(np.concatenate(_ids(again, range(steps))), first)
    other = StreamPlan(_store(), batch_size=50, seed=4)
    assert not np.array_equal(np.concatenate(_ids(other, range(steps))), first)


def test_ddp_ranks_are_disjoint_equal_and_reassigned_each_epoch() -> None:
    store = _store(n_cells=1050)  # 11 chunks, the last of 50 rows: ranks get unequal cells, equal steps
    plan = StreamPlan(store, batch_size=40, seed=0, buffer_chunks=2)
    for epoch in range(3):
        steps = plan.steps_in_epoch(epoch, 2)
        start = sum(plan.steps_in_epoch(e, 2) for e in range(epoch))
        ranks = [np.concatenate(_ids(plan, range(start, start + steps), rank=r, world=2)) for r in (0, 1)]
        assert len(ranks[0]) == len(ranks[1])
        assert not set(ranks[0]) & set(ranks[1])
    assignments = [frozenset(int(c) for lane in plan._layout(e, 0, 2) for buf in lane.buffers for c in buf)
                   for e in range(4)]
    assert len(set(assignments)) > 1


def test_resume_mid_epoch_gives_the_same_batches() -> None:
    uninterrupted = StreamPlan(_store(), batch_size=30, seed=1, buffer_chunks=3)
    expected = _ids(uninterrupted, range(60))
    resumed = StreamPlan(_store(), batch_size=30, seed=1, buffer_chunks=3)  # a fresh process: empty caches
    got = _ids(resumed, range(17, 60))  # 17 is mid-buffer and mid-epoch
    for a, b in zip(expected[17:], got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_spawn_workers_yield_the_in_process_batches() -> None:
    plan = StreamPlan(_store(), batch_size=25, seed=2, lanes=2)
    inline = [b["codes"][:, 0].numpy() for b in stream_loader(plan, start=5, total=45)]
    workers = [b["codes"][:, 0].numpy() for b in stream_loader(plan, start=5, total=45, workers=2)]
    assert len(inline) == len(workers) == 40
    for a, b in zip(inline, workers, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="lanes=3"):
        stream_loader(plan, start=0, total=4, workers=3)


class _Generated:
    """Chunks made on demand: the store is never in memory, so the loader's own footprint is what is measured."""

    def __init__(self, n_chunks: int, rows: int = 500, genes: int = 200) -> None:
        self.n_chunks, self.rows, self.genes = n_chunks, rows, genes

    @property
    def sizes(self) -> list[int]:
        return [self.rows] * self.n_chunks

    def read(self, index: int):
        counts = sp.random(self.rows, self.genes, density=0.07, format="csr", random_state=index, dtype=np.float32)
        return counts, np.full((self.rows, 1), index, dtype=np.int64)


def _peak(n_chunks: int) -> int:
    plan = StreamPlan(_Generated(n_chunks), batch_size=128, seed=0, buffer_chunks=4)
    steps = plan.steps_in_epoch(0, 1)
    tracemalloc.start()
    for s in range(steps):
        plan(s, 0, 1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(plan._buffers) <= 2
    return peak


def test_memory_is_bounded_by_the_buffer_not_the_dataset() -> None:
    small, large = _peak(8), _peak(80)  # 4 000 and 40 000 cells
    assert large < 1.3 * small, (small, large)

"""The census family's streaming loader: chunks in a seeded per-epoch order, cells shuffled in a buffer of chunks.

Census-scale data never fits in memory, so cells are read chunk by chunk (a chunk: a contiguous block of rows
of the store, the unit of I/O). The loader is a pure function of ``(step, rank, world)``, like every batch plan
of :mod:`xmodal.train`, so the engine's checkpoints resume it mid-epoch exactly:

1. **Epoch ``e``**: the chunk ids are permuted with a seed of ``(seed, e)``, identically on every rank.
2. **DDP**: rank ``r`` of ``w`` takes chunks ``perm[r::w]`` (``n_chunks // w`` each): a new assignment every
   epoch, so no rank is stuck with the same block of datasets (Census rows are ordered by dataset).
3. **Lanes**: a rank's chunks are dealt to ``lanes`` streams (``chunks[l::lanes]``); step ``s`` of the epoch
   reads lane ``s % lanes``. With ``lanes`` DataLoader workers, worker ``l`` serves lane ``l`` alone and the
   DataLoader's round-robin yields the steps in order, so the batches are the same with or without workers.
4. **Buffers**: a lane's chunks are grouped ``buffer_chunks`` at a time; the rows of a buffer are permuted with a
   seed of ``(seed, e, rank, lane, buffer)``; a lane's batches are consecutive slices of its buffers' shuffled
   rows (a batch may straddle two buffers). Memory: two buffers per lane, whatever the dataset's size.
5. Every rank and lane runs the same number of steps per epoch (the smallest lane's ``rows // batch_size``), so
   DDP ranks never wait on each other; the few rows beyond it are dropped that epoch, different ones each epoch.

:class:`ChunkReader` is what a backend implements (``sizes`` and ``read(i)``); it must be picklable, because
DataLoader workers start with ``spawn`` (TileDB is not safe to fork).
"""

from __future__ import annotations

import bisect
import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
import torch

log = logging.getLogger(__name__)


class ChunkReader(Protocol):
    """A store split into chunks: the rows of each chunk, and one chunk's counts and metadata codes."""

    @property
    def sizes(self) -> Sequence[int]:
        """Rows of every chunk, in store order."""

    def read(self, index: int) -> tuple[sp.csr_matrix, np.ndarray]:
        """Chunk ``index``: counts ``(rows, genes)`` CSR and metadata codes ``(rows, fields)`` int64."""


class MemoryChunks:
    """An in-memory matrix cut into chunks of ``chunk_size`` rows (the synthetic generator's backend, tests).

    Parameters
    ----------
    counts
        ``(n_cells, n_genes)`` CSR.
    codes
        ``(n_cells, n_fields)`` int64 metadata codes.
    chunk_size
        Rows per chunk (the last one may be shorter).
    """

    def __init__(self, counts: sp.csr_matrix, codes: np.ndarray, *, chunk_size: int) -> None:
        if counts.shape[0] != len(codes):
            raise ValueError(f"{counts.shape[0]} rows of counts, {len(codes)} rows of codes")
        self.counts, self.codes, self.chunk_size = sp.csr_matrix(counts), np.asarray(codes, dtype=np.int64), chunk_size
        n = counts.shape[0]
        self._sizes = [min(chunk_size, n - s) for s in range(0, n, chunk_size)]

    @property
    def sizes(self) -> list[int]:  # noqa: D102 - ChunkReader
        return self._sizes

    def read(self, index: int) -> tuple[sp.csr_matrix, np.ndarray]:  # noqa: D102 - ChunkReader
        rows = slice(index * self.chunk_size, index * self.chunk_size + self._sizes[index])
        return self.counts[rows], self.codes[rows]


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in key])


@dataclass(frozen=True)
class _Lane:
    buffers: list[list[int]]  # chunk ids per buffer
    starts: list[int]  # first row of each buffer in the lane's stream (cumulative), plus the total at the end


class StreamPlan:
    """Batches of the stream as a function of ``(step, rank, world)``; see the module docstring.

    Parameters
    ----------
    reader
        The chunked store.
    batch_size
        Cells per batch per rank.
    seed
        Seeds chunk orders and buffer shuffles.
    buffer_chunks
        Chunks shuffled together (more: better mixing, more memory).
    lanes
        Parallel streams per rank (set it to the DataLoader's worker count; 1 without workers).
    dense
        Return ``x`` as a dense float32 tensor ``(batch, genes)`` (else a CSR matrix).
    """

    def __init__(self, reader: ChunkReader, *, batch_size: int, seed: int, buffer_chunks: int = 4, lanes: int = 1,
                 dense: bool = True) -> None:
        if batch_size < 1 or buffer_chunks < 1 or lanes < 1:
            raise ValueError("batch_size, buffer_chunks and lanes must be at least 1")
        self.reader, self.batch_size, self.seed = reader, int(batch_size), int(seed)
        self.buffer_chunks, self.lanes, self.dense = int(buffer_chunks), int(lanes), dense
        self.sizes = np.asarray(list(reader.sizes), dtype=np.int64)
        self._first = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)  # each chunk's first row
        self._epoch_starts: dict[int, list[int]] = {}  # world → first step of each epoch computed so far
        self._layouts: OrderedDict[tuple[int, int, int], list[_Lane]] = OrderedDict()
        self._buffers: OrderedDict[tuple[int, int, int, int], tuple[sp.csr_matrix, np.ndarray]] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:  # a worker starts with empty caches
        state = dict(self.__dict__)
        state["_layouts"], state["_buffers"] = OrderedDict(), OrderedDict()
        return state

    # ------------------------------------------------------------ layout (no data read)
    def _layout(self, epoch: int, rank: int, world: int) -> list[_Lane]:
        key = (epoch, rank, world)
        if key not in self._layouts:
            n = len(self.sizes)
            per_rank = n // world
            if per_rank < self.lanes:
                raise ValueError(f"{n} chunks cannot feed {world} process(es) × {self.lanes} lane(s): make chunks "
                                 "smaller or use fewer processes/workers")
            perm = _rng(self.seed, 11, epoch).permutation(n)
            mine = perm[rank::world][:per_rank]
            lanes = []
            for lane in range(self.lanes):
                chunks = [int(c) for c in mine[lane::self.lanes]]
                buffers = [chunks[i:i + self.buffer_chunks] for i in range(0, len(chunks), self.buffer_chunks)]
                starts = [0]
                for buf in buffers:
                    starts.append(starts[-1] + int(self.sizes[buf].sum()))
                lanes.append(_Lane(buffers, starts))
            self._layouts[key] = lanes
            while len(self._layouts) > 4 * max(world, 1):
                self._layouts.popitem(last=False)
        return self._layouts[key]

    def steps_in_epoch(self, epoch: int, world: int) -> int:
        """Steps of epoch ``epoch`` with ``world`` processes (the same on every rank), a multiple of ``lanes``."""
        rows = min(lane.starts[-1] for rank in range(world) for lane in self._layout(epoch, rank, world))
        steps = (rows // self.batch_size) * self.lanes
        if steps == 0:
            raise ValueError(f"a lane holds {rows} cells, less than one batch of {self.batch_size}: lower batch_size "
                             "or use fewer processes/workers")
        return steps

    def total_steps(self, epochs: int, world: int) -> int:
        """Steps of ``epochs`` epochs with ``world`` processes."""
        return sum(self.steps_in_epoch(e, world) for e in range(epochs))

    def locate(self, step: int, world: int) -> tuple[int, int]:
        """``(epoch, step within the epoch)`` of a global step."""
        starts = self._epoch_starts.setdefault(world, [0])
        while starts[-1] <= step:
            starts.append(starts[-1] + self.steps_in_epoch(len(starts) - 1, world))
        epoch = bisect.bisect_right(starts, step) - 1
        return epoch, step - starts[epoch]

    # ------------------------------------------------------------ data
    def _buffer(self, epoch: int, rank: int, world: int, lane: int, index: int
                ) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
        key = (epoch, rank, lane, index)
        if key not in self._buffers:
            while len(self._buffers) >= 2 * self.lanes:  # drop the oldest first: never three buffers of a lane at once
                self._buffers.popitem(last=False)
            chunks = self._layout(epoch, rank, world)[lane].buffers[index]
            parts = [self.reader.read(c) for c in chunks]
            counts = sp.vstack([p[0] for p in parts], format="csr")
            codes = np.concatenate([p[1] for p in parts])
            ids = np.concatenate([self._first[c] + np.arange(self.sizes[c]) for c in chunks])
            order = _rng(self.seed, 13, epoch, rank, lane, index).permutation(counts.shape[0])
            self._buffers[key] = (counts[order], codes[order], ids[order])  # two per lane: a batch may straddle two
        return self._buffers[key]

    def batch(self, step: int, rank: int, world: int) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
        """Counts ``(batch, genes)`` CSR, codes ``(batch, fields)`` and the cells' rows ``(batch,)`` (0-based, in the
        reader's order) of rank ``rank``'s batch at ``step``."""
        epoch, s = self.locate(step, world)
        lane_id = s % self.lanes
        lane = self._layout(epoch, rank, world)[lane_id]
        first = (s // self.lanes) * self.batch_size
        last = first + self.batch_size
        parts: list[tuple[sp.csr_matrix, np.ndarray, np.ndarray]] = []
        b = bisect.bisect_right(lane.starts, first) - 1
        while first < last:
            counts, codes, ids = self._buffer(epoch, rank, world, lane_id, b)
            lo, hi = first - lane.starts[b], min(last, lane.starts[b + 1]) - lane.starts[b]
            parts.append((counts[lo:hi], codes[lo:hi], ids[lo:hi]))
            first += hi - lo
            b += 1
        if len(parts) == 1:
            return parts[0]
        return (sp.vstack([p[0] for p in parts], format="csr"), np.concatenate([p[1] for p in parts]),
                np.concatenate([p[2] for p in parts]))

    def rows(self, step: int, rank: int, world: int) -> tuple[sp.csr_matrix, np.ndarray]:
        """Counts ``(batch, genes)`` CSR and codes ``(batch, fields)`` of rank ``rank``'s batch at ``step``."""
        x, codes, _ = self.batch(step, rank, world)
        return x, codes

    def __call__(self, step: int, rank: int, world: int) -> dict[str, Any]:
        """The engine's batch plan: ``{"step", "x", "codes", "rows"}`` (``x`` dense float32 unless ``dense=False``;
        ``rows``: the cells' rows in the reader's order)."""
        x, codes, ids = self.batch(step, rank, world)
        if self.dense:
            x = torch.from_numpy(np.asarray(x.todense(), dtype=np.float32))
        return {"step": step, "x": x, "codes": torch.from_numpy(codes), "rows": torch.from_numpy(ids)}


class StreamDataset(torch.utils.data.IterableDataset):
    """Steps ``start … total − 1`` of a :class:`StreamPlan` for one rank, split over DataLoader workers by lane.

    With ``W`` workers (``W`` = the plan's ``lanes``), worker ``w`` yields steps ``start + w``, ``start + w + W``, …:
    always the same lane, so it reads only that lane's chunks; the DataLoader's round-robin returns them in
    step order. Build the DataLoader with :func:`stream_loader`.
    """

    def __init__(self, plan: StreamPlan, *, start: int, total: int, rank: int = 0, world: int = 1) -> None:
        super().__init__()
        self.plan, self.start, self.total, self.rank, self.world = plan, int(start), int(total), rank, world

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        for step in range(self.start + worker, self.total, workers):
            yield self.plan(step, self.rank, self.world)


def stream_loader(plan: StreamPlan, *, start: int, total: int, rank: int = 0, world: int = 1,
                  workers: int = 0) -> torch.utils.data.DataLoader | StreamDataset:
    """Iterate steps ``start … total − 1``: in-process, or with ``workers`` spawn-started DataLoader workers.

    Parameters
    ----------
    plan
        The stream; with workers, its ``lanes`` must equal ``workers``.
    start, total
        The first step and the end of training.
    rank, world
        This process's DDP rank and the process count.
    workers
        DataLoader worker processes (0: read in this process).

    Returns
    -------
    DataLoader or StreamDataset
        Yields the same batches, in the same order, for any ``workers`` with the same ``lanes``.
    """
    dataset = StreamDataset(plan, start=start, total=total, rank=rank, world=world)
    if workers == 0:
        return dataset
    if plan.lanes != workers:
        raise ValueError(f"the plan has {plan.lanes} lane(s) for {workers} worker(s): build it with lanes={workers}")
    # its own generator: the workers' base seed is drawn from it, not from the training process's RNG (which would
    # shift every random draw of training and make a run with workers differ from one without)
    return torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers,
                                       multiprocessing_context="spawn", prefetch_factor=2,
                                       generator=torch.Generator().manual_seed(0))

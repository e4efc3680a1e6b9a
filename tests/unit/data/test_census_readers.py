"""Chunk readers over files (npz export, .h5ad in row blocks) feed the stream the same cells as memory does."""

from __future__ import annotations

import pickle
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from xmodal.errors import XmodalInputError
from xmodal.families.census._readers import H5adChunks, NpzChunks
from xmodal.families.census._stream import MemoryChunks, StreamPlan
from xmodal.families.census._synthetic import synthetic_census
from xmodal.families.census._vocab import build_vocabulary

FIELDS = ["cell_type", "sex", "assay"]


@pytest.fixture(scope="module")
def sim():
    return synthetic_census(n_cells=600, n_genes=40, seed=5)


def _memory(sim, vocab, chunk_size):
    return MemoryChunks(sim.counts, vocab.encode(sim.obs), chunk_size=chunk_size)


def _same_stream(reader, reference) -> None:
    a = StreamPlan(reader, batch_size=64, seed=0)
    b = StreamPlan(reference, batch_size=64, seed=0)
    for step in range(a.steps_in_epoch(0, 1) + 3):
        xa, ca = a.rows(step, 0, 1)
        xb, cb = b.rows(step, 0, 1)
        np.testing.assert_array_equal(ca, cb)
        assert (xa != xb).nnz == 0


def test_npz_chunks_stream_like_memory(tmp_path: Path, sim) -> None:
    vocab = build_vocabulary([sim.obs], FIELDS)
    sim.var.reset_index().to_csv(tmp_path / "genes.csv", index=False)
    for k in range(6):
        rows = slice(k * 100, (k + 1) * 100)
        sp.save_npz(tmp_path / f"human_counts_{k}.npz", sim.counts[rows])
        sim.obs.iloc[rows].reset_index().to_parquet(tmp_path / f"human_metadata_{k}.parquet")
    reader = NpzChunks(tmp_path, vocab)
    assert reader.sizes == [100] * 6
    _same_stream(pickle.loads(pickle.dumps(reader)), _memory(sim, vocab, 100))


def test_h5ad_chunks_stream_like_memory(tmp_path: Path, sim) -> None:
    vocab = build_vocabulary([sim.obs], FIELDS)
    path = tmp_path / "cells.h5ad"
    ad.AnnData(X=sim.counts, obs=sim.obs, var=sim.var).write_h5ad(path)
    reader = H5adChunks(path, vocab, chunk_size=150)
    assert reader.sizes == [150] * 4
    reader.read(0)  # opened in this process; a pickled copy must reopen
    _same_stream(pickle.loads(pickle.dumps(reader)), _memory(sim, vocab, 150))


def test_dense_h5ad_is_refused_with_the_fix(tmp_path: Path, sim) -> None:
    vocab = build_vocabulary([sim.obs], FIELDS)
    path = tmp_path / "dense.h5ad"
    ad.AnnData(X=np.asarray(sim.counts.todense()), obs=sim.obs, var=sim.var).write_h5ad(path)
    with pytest.raises(XmodalInputError, match="not stored as CSR"):
        H5adChunks(path, vocab, chunk_size=100).read(0)

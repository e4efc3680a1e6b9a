"""Seed 002's chunk export: reading and every validation the issue names, each with a clear error."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from xmodal.errors import XmodalInputError
from xmodal.families.census._chunks import scan_chunks
from xmodal.families.census._synthetic import synthetic_census


def _export(folder: Path, *, n_chunks: int = 3, rows: int = 40, meta: str = "parquet", genes: str = "shared") -> Path:
    sim = synthetic_census(n_cells=n_chunks * rows, n_genes=30, seed=0)
    folder.mkdir(parents=True, exist_ok=True)
    if genes == "shared":
        sim.var.reset_index().to_csv(folder / "genes.csv", index=False)
    for k in range(n_chunks):
        cells = slice(k * rows, (k + 1) * rows)
        sp.save_npz(folder / f"human_counts_{k}.npz", sim.counts[cells])
        frame = sim.obs.iloc[cells].reset_index()
        if meta == "parquet":
            frame.to_parquet(folder / f"human_metadata_{k}.parquet")
        elif meta == "csv":
            frame.to_csv(folder / f"human_metadata_{k}.csv", index=False)
        else:
            frame.to_pickle(folder / f"human_metadata_{k}.pkl")
        if genes == "per_chunk":
            sim.var.reset_index().to_csv(folder / f"human_genes_{k}.csv", index=False)
    return folder


@pytest.mark.parametrize("meta", ["parquet", "csv"])
def test_reads_every_chunk_in_order(tmp_path: Path, meta: str) -> None:
    folder = _export(tmp_path / "chunks", meta=meta)
    chunks = list(scan_chunks(folder))
    assert [c.counts_path.name for c in chunks] == [f"human_counts_{k}.npz" for k in range(3)]
    assert all(c.counts.shape == (40, 30) for c in chunks)
    assert chunks[1].obs.index[0] == "cell_0_0000040"
    assert str(chunks[0].obs["sex"].iloc[0]) in ("female", "male")


def test_pickle_metadata_needs_trust(tmp_path: Path) -> None:
    folder = _export(tmp_path / "chunks", meta="pkl")
    with pytest.raises(XmodalInputError, match="trust_pickle: true"):
        list(scan_chunks(folder))
    assert len(list(scan_chunks(folder, trust_pickle=True))) == 3


def test_pickle_that_is_not_a_frame_is_refused_even_when_trusted(tmp_path: Path) -> None:
    folder = _export(tmp_path / "chunks", n_chunks=1, meta="pkl")
    (folder / "human_metadata_0.pkl").write_bytes(pickle.dumps({"not": "a frame"}))
    with pytest.raises(XmodalInputError, match="not a DataFrame"):
        list(scan_chunks(folder, trust_pickle=True))


@pytest.mark.parametrize(("value", "what"), [(-1.0, "negative"), (2.5, "not an integer"), (np.nan, "not finite")])
def test_bad_counts_name_file_row_and_column(tmp_path: Path, value: float, what: str) -> None:
    folder = _export(tmp_path / "chunks")
    counts = sp.load_npz(folder / "human_counts_1.npz").tolil()
    counts[7, 4] = value
    sp.save_npz(folder / "human_counts_1.npz", counts.tocsr())
    with pytest.raises(XmodalInputError, match=what) as err:
        list(scan_chunks(folder))
    message = str(err.value)
    assert "human_counts_1.npz" in message
    assert "row 8, column 5" in message


def test_rows_of_counts_and_metadata_must_match(tmp_path: Path) -> None:
    folder = _export(tmp_path / "chunks")
    pd.read_parquet(folder / "human_metadata_2.parquet").iloc[:-1].to_parquet(folder / "human_metadata_2.parquet")
    with pytest.raises(XmodalInputError, match="39 metadata rows for 40 count rows"):
        list(scan_chunks(folder))


def test_duplicate_cell_ids_within_and_across_chunks(tmp_path: Path) -> None:
    folder = _export(tmp_path / "chunks")
    frame = pd.read_parquet(folder / "human_metadata_0.parquet")
    frame.loc[5, "cell_id"] = frame.loc[4, "cell_id"]
    frame.to_parquet(folder / "human_metadata_0.parquet")
    with pytest.raises(XmodalInputError, match="appears twice in this chunk") as err:
        list(scan_chunks(folder))
    assert "row 6" in str(err.value)

    folder = _export(tmp_path / "again")
    frame = pd.read_parquet(folder / "human_metadata_2.parquet")
    frame.loc[0, "cell_id"] = "cell_0_0000003"
    frame.to_parquet(folder / "human_metadata_2.parquet")
    with pytest.raises(XmodalInputError, match="appears in two chunks"):
        list(scan_chunks(folder))


def test_chunks_with_different_gene_lists(tmp_path: Path) -> None:
    folder = _export(tmp_path / "chunks", genes="per_chunk")
    assert len(list(scan_chunks(folder))) == 3
    genes = pd.read_csv(folder / "human_genes_2.csv")
    genes.loc[[3, 4]] = genes.loc[[4, 3]].to_numpy()
    genes.to_csv(folder / "human_genes_2.csv", index=False)
    with pytest.raises(XmodalInputError, match="different gene lists.*first difference at gene 4"):
        list(scan_chunks(folder))


def test_empty_or_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(XmodalInputError, match="chunk folder not found"):
        list(scan_chunks(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(XmodalInputError, match="no chunk"):
        list(scan_chunks(tmp_path / "empty"))


def test_counts_without_metadata(tmp_path: Path) -> None:
    folder = _export(tmp_path / "chunks")
    (folder / "human_metadata_1.parquet").unlink()
    with pytest.raises(XmodalInputError, match="no metadata file"):
        list(scan_chunks(folder))

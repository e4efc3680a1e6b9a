"""Every source of the census family applies the same value checks (issue 28, point 5).

The ``cellxgene_census`` query accepted negative, fractional and non-finite counts that the chunk and ``.h5ad``
sources refused. Now every block of every source passes one check in the ingest
(:func:`xmodal.families.census._chunks.check_counts`): the same bad count gives the same words from every source,
naming the file or store, the cell and the gene, with exit 2 and nothing written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from _census import census_project, small_census, write_chunks, write_collection, write_h5ad
from _cli import assert_refused, xmodal

pytest.importorskip("tiledbsoma")

ROW, GENE = 23, 4  # the bad count's cell and gene: cell 24 of the data (row 4 of the second 20-cell chunk)


def _with(value: float, dtype: type = np.float32) -> tuple[sp.csr_matrix, object, object]:
    counts, obs, var = small_census()
    x = counts.astype(dtype).tolil()
    x[ROW, GENE] = value
    return sp.csr_matrix(x), obs, var


def _source(root: Path, kind: str, counts: sp.csr_matrix, obs: object, var: object) -> tuple[dict, str]:
    """The dataset's source holding ``counts``, and the file or store an error must name."""
    if kind == "chunks":
        write_chunks(root / "chunks", counts, obs, var, rows=20)
        return {"kind": "chunks", "path": "chunks"}, str(root / "chunks" / "human_counts_1.npz")
    if kind == "h5ad":
        return {"kind": "h5ad", "path": "c.h5ad", "chunk_size": 16}, str(write_h5ad(root / "c.h5ad", counts, obs, var))
    write_collection(root / "census", counts, obs, var)
    return {"kind": "cellxgene_census", "uri": str(root / "census"), "chunk_size": 16}, str(root / "census")


@pytest.mark.parametrize("kind", ["chunks", "h5ad", "cellxgene_census"])
def test_a_negative_count_gets_the_same_error_from_every_source(tmp_path: Path, kind: str) -> None:
    counts, obs, var = _with(-3.0)
    source, named = _source(tmp_path, kind, counts, obs, var)
    census_project(tmp_path, source)
    message = assert_refused(xmodal(tmp_path, "ingest", "--dataset", "c"), needle=(
        named, f"count -3.0 of cell {obs.index[ROW]!r}, gene {var.index[GENE]!r} is negative",
        "give raw UMI counts"))
    assert f"column {GENE + 1}" in message
    assert not (tmp_path / "data/ingested/c").exists()


@pytest.mark.parametrize(("value", "what"), [(2.5, "not an integer"), (np.nan, "not finite"), (np.inf, "not finite")])
def test_the_census_query_refuses_counts_that_are_not_counts(tmp_path: Path, value: float, what: str) -> None:
    counts, obs, var = _with(value)
    source, named = _source(tmp_path, "cellxgene_census", counts, obs, var)
    census_project(tmp_path, source)
    assert_refused(xmodal(tmp_path, "ingest", "--dataset", "c"), needle=(
        named, f"of cell {obs.index[ROW]!r}, gene {var.index[GENE]!r} is {what}"))
    assert not (tmp_path / "data/ingested/c").exists()


@pytest.mark.parametrize("kind", ["h5ad", "cellxgene_census"])
def test_a_count_float32_cannot_hold_is_refused_not_rounded(tmp_path: Path, kind: str) -> None:
    """16 777 217 would be stored as 16 777 216 (float32 holds integers exactly up to 2^24)."""
    counts, obs, var = _with(16_777_217, dtype=np.float64)
    source, named = _source(tmp_path, kind, counts, obs, var)
    census_project(tmp_path, source)
    assert_refused(xmodal(tmp_path, "ingest", "--dataset", "c"), needle=(
        named, f"count 16777217.0 of cell {obs.index[ROW]!r}", "2^24", "stored as 16777216"))
    assert not (tmp_path / "data/ingested/c").exists()


def test_good_counts_from_every_source_give_the_same_cells(tmp_path: Path) -> None:
    """The shared check passes valid data unchanged: the three sources ingest to the same content hash."""
    import json

    counts, obs, var = small_census()
    hashes = set()
    for kind in ("chunks", "h5ad", "cellxgene_census"):
        root = tmp_path / kind
        root.mkdir()
        source, _ = _source(root, kind, counts.astype(np.float64), obs, var)
        census_project(root, source)
        got = xmodal(root, "ingest", "--dataset", "c")
        assert got.rc == 0, got.stderr[-2000:]
        hashes.add(json.loads((root / "data/ingested/c/schema.json").read_text())["sha256"])
    assert len(hashes) == 1

"""The census store (a real on-disk SOMA experiment) and the cellxgene_census query source, offline."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from xmodal.errors import XmodalInputError
from xmodal.families.census._soma import SomaChunks, census_chunks, write_store
from xmodal.families.census._stream import MemoryChunks, StreamPlan
from xmodal.families.census._synthetic import synthetic_census
from xmodal.families.census._vocab import CENSUS_FIELDS, build_vocabulary

pytest.importorskip("tiledbsoma")
FIELDS = ["cell_type", "sex", "tissue_general"]


@pytest.fixture(scope="module")
def sim():
    return synthetic_census(n_cells=500, n_genes=60, seed=7)


def _values(obs: pd.DataFrame) -> dict[str, list[str]]:
    return {f: sorted(obs[f].dropna().astype(str).unique()) for f in obs.columns}


def _chunks(sim, size: int):
    for s in range(0, sim.counts.shape[0], size):
        yield sim.counts[s:s + size], sim.obs.iloc[s:s + size]


def test_store_round_trips_through_the_stream(tmp_path: Path, sim) -> None:
    uri = write_store(tmp_path / "store", _chunks(sim, 120), var=sim.var, n_cells=500, fields=list(CENSUS_FIELDS),
                      values=_values(sim.obs))
    vocab = build_vocabulary([sim.obs], FIELDS)
    reader = SomaChunks(uri, vocab, chunk_size=100)
    assert reader.sizes == [100] * 5
    assert reader.n_genes == 60
    counts, codes = reader.read(2)
    assert (counts != sim.counts[200:300]).nnz == 0
    np.testing.assert_array_equal(codes, vocab.encode(sim.obs.iloc[200:300]))
    a = StreamPlan(reader, batch_size=64, seed=0)
    b = StreamPlan(MemoryChunks(sim.counts, vocab.encode(sim.obs), chunk_size=100), batch_size=64, seed=0)
    for step in range(10):
        np.testing.assert_array_equal(a.rows(step, 0, 1)[1], b.rows(step, 0, 1)[1])
    # Census's conventions, read back with tiledbsoma itself
    import tiledbsoma

    with tiledbsoma.Experiment.open(str(uri)) as exp:
        assert "raw" in exp.ms["RNA"].X
        assert {"feature_id", "feature_name"} <= set(exp.ms["RNA"].var.schema.names)
        obs = exp.obs.read(column_names=["observation_joinid", "sex"]).concat()
        # strings, not the Census's TileDB enumerations: an enumeration's file name is random (see _canonical)
        assert str(obs.schema.field("sex").type) in ("large_string", "string")
    assert list(reader.obs(["sex"]).index[:2]) == list(sim.obs.index[:2])
    assert reader.obs(["sex"])["sex"].dtype == "category"  # handed out as categoricals, as before


def _tiny_census(root: Path, sim) -> Path:
    """A Census-shaped collection (census_info + census_data/homo_sapiens), as census-notes.md describes."""
    import pyarrow as pa
    import tiledbsoma
    import tiledbsoma.io

    tiledbsoma.Collection.create(str(root)).close()
    with tiledbsoma.Collection.open(str(root), "w") as census:
        info = census.add_new_collection("census_info")
        schema = pa.schema([("soma_joinid", pa.int64()), ("label", pa.large_string()), ("value", pa.large_string())])
        summary = info.add_new_dataframe("summary", schema=schema, domain=[(0, 1)])
        summary.write(pa.table({"soma_joinid": [0, 1], "label": ["census_schema_version", "dataset_schema_version"],
                                "value": ["2.1.0", "5.2.0"]}))
        data = census.add_new_collection("census_data")
        obs = sim.obs.reset_index().rename(columns={"cell_id": "observation_joinid"})
        adata = ad.AnnData(X=sim.counts, obs=obs.set_index(obs["observation_joinid"].to_numpy()),
                           var=sim.var.reset_index().set_index(sim.var.index.to_numpy()))
        uri = f"{root}/census_data/homo_sapiens"
        tiledbsoma.io.from_anndata(uri, adata, measurement_name="RNA", X_layer_name="raw", var_id_name="feature_id",
                                   obs_id_name="observation_joinid")
        data.set("homo_sapiens", tiledbsoma.Experiment.open(uri), use_relative_uri=True)
    return root


def test_census_query_source_streams_the_selected_cells(tmp_path: Path, sim) -> None:
    root = _tiny_census(tmp_path / "census", sim)
    var, n_cells, blocks = census_chunks(root, organism="Homo sapiens", obs_value_filter="sex == 'female'",
                                         columns=FIELDS, chunk_size=50)
    female = (sim.obs["sex"] == "female").to_numpy()
    assert n_cells == female.sum()
    assert list(var.index) == list(sim.var.index)
    got = list(blocks)
    counts = np.vstack([np.asarray(c.todense()) for c, _ in got])
    ids = np.concatenate([m.index.to_numpy() for _, m in got])
    order = np.argsort(ids)
    expected = np.asarray(sim.counts[female].todense())
    np.testing.assert_array_equal(counts[order], expected[np.argsort(sim.obs.index[female].to_numpy())])
    assert all(set(m["sex"].astype(str)) == {"female"} for _, m in got)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"organism": "Mus musculus", "obs_value_filter": None, "columns": FIELDS}, "unknown organism"),
    ({"organism": "Homo sapiens", "obs_value_filter": None, "columns": ["cell_typo"]}, "unknown obs column 'cell_typo'"),
    ({"organism": "Homo sapiens", "obs_value_filter": "sex == 'neither'", "columns": FIELDS}, "selects no cells"),
])
def test_census_query_errors(tmp_path: Path, sim, kwargs: dict, message: str) -> None:
    root = _tiny_census(tmp_path / "census", sim)
    with pytest.raises(XmodalInputError, match=message):
        census_chunks(root, **kwargs)

"""The census family through its stages: every source into the store, the split with held-out combinations, the
vocabulary and genes from training cells only, the processed store the loader streams, and each input error."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from xmodal.config import params_from_dict
from xmodal.errors import ConfigError, XmodalInputError
from xmodal.families.census._synthetic import synthetic_census
from xmodal.stages import ingest, preprocess

pytest.importorskip("tiledbsoma")

FIELDS = ["cell_type", "sex", "tissue_general", "assay"]
HOLDOUT = [{"cell_type": "T cell", "sex": "female"}, {"cell_type": "monocyte", "sex": "male"}]


def _params(source: dict, **dataset: object) -> object:
    cfg = {"family": "census", "source": source, "fields": FIELDS, "holdout": HOLDOUT, **dataset}
    return params_from_dict({"datasets": {"c": cfg}, "preprocess": {"census": {"n_top_genes": 40, "chunk_size": 100}},
                             "split": {"seed": 0}})


def _run(tmp_path: Path, source: dict, **dataset: object) -> tuple[Path, Path]:
    params = _params(source, **dataset)
    ingest.run(params, dataset="c", root=tmp_path)
    preprocess.run(params, dataset="c", root=tmp_path)
    return tmp_path / "data/ingested/c", tmp_path / "data/processed/c"


SYNTHETIC = {"kind": "synthetic_census", "n_cells": 900, "n_genes": 80, "chunk_size": 250, "seed": 3}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _run(tmp_path_factory.mktemp("synthetic"), SYNTHETIC)


def test_ingest_writes_a_census_shaped_store(synthetic: tuple[Path, Path]) -> None:
    import tiledbsoma

    ingested, _ = synthetic
    schema = json.loads((ingested / "schema.json").read_text())
    assert schema["family"] == "census"
    assert schema["n_obs"] == 900
    assert schema["n_vars"] == 80
    assert schema["fields"] == FIELDS
    assert "donor_id" in schema["columns"]
    assert schema["synthetic_truth"]
    assert (ingested / "truth.npz").is_file()
    with tiledbsoma.Experiment.open(str(ingested / "store")) as exp:
        assert exp.ms["RNA"].X["raw"].shape == (900, 80)
        assert {"feature_id", "feature_name"} <= set(exp.ms["RNA"].var.schema.names)
        sim = synthetic_census(n_cells=900, n_genes=80, seed=3)
        x = exp.ms["RNA"].X["raw"].read(coords=(slice(0, 9),)).tables().concat()
        dense = np.zeros((10, 80))
        dense[x["soma_dim_0"].to_numpy(), x["soma_dim_1"].to_numpy()] = x["soma_data"].to_numpy()
        np.testing.assert_array_equal(dense, sim.counts[:10].toarray())


def test_the_content_hash_is_the_cells_not_the_files(tmp_path: Path, synthetic: tuple[Path, Path]) -> None:
    """Written again, TileDB's fragment names differ but the schema's hash of the cells does not."""
    again, _ = _run(tmp_path, SYNTHETIC)
    first = json.loads((synthetic[0] / "schema.json").read_text())["sha256"]
    assert json.loads((again / "schema.json").read_text())["sha256"] == first
    other, _ = _run(tmp_path / "other", {**SYNTHETIC, "seed": 4})
    assert json.loads((other / "schema.json").read_text())["sha256"] != first


def test_held_out_combinations_are_test_cells_only(synthetic: tuple[Path, Path]) -> None:
    from xmodal.families.census._soma import store_obs

    _, processed = synthetic
    obs = store_obs(processed / "store")
    schema = json.loads((processed / "schema.json").read_text())
    held = np.zeros(len(obs), dtype=bool)
    for combo in HOLDOUT:
        held |= np.all([obs[f].astype(str).to_numpy() == v for f, v in combo.items()], axis=0)
    assert held.sum() == schema["holdout_cells"] > 0
    assert set(obs.loc[held, "split"].astype(str)) == {"test"}
    # rows grouped by split: each split one contiguous range, as the schema records
    for split, (lo, hi) in schema["rows"].items():
        assert set(obs["split"].astype(str).iloc[lo:hi]) == {split}
    assert sorted(obs["ingested_row"]) == list(range(900))
    rest = obs.loc[~held, "split"].astype(str).value_counts(normalize=True)
    assert 0.1 < rest["validation"] < 0.2
    assert 0.1 < rest["test"] < 0.2


def test_vocabulary_and_genes_come_from_training_cells(synthetic: tuple[Path, Path]) -> None:
    from xmodal.families.census._data import read_processed
    from xmodal.families.census._soma import store_obs

    _, processed = synthetic
    data = read_processed(processed)
    assert set(data.ranges) == {"train", "validation"}  # a fit cannot ask for test rows
    with pytest.raises(KeyError, match="test"):
        data.reader("test")
    obs = store_obs(processed / "store")
    train = obs[obs["split"].astype(str) == "train"]
    for field in data.vocab.fields:
        assert data.vocab.values[field] == sorted(train[field].dropna().astype(str).unique())
    assert data.n_genes == 40
    reader = data.reader("train")
    assert sum(reader.sizes) == data.ranges["train"][1] - data.ranges["train"][0]
    counts, codes = reader.read(0)
    assert counts.shape == (100, 40)
    assert codes.shape == (100, len(data.vocab.fields))
    means = np.load(processed / "field_means.npz")
    assert means["mean:sex"].shape == (3, 40)  # code 0, then the two values
    assert means["effect:sex"].shape == (3, 40)


def test_additive_effects_are_the_joint_least_squares_fit(synthetic: tuple[Path, Path]) -> None:
    """``effect:<field>`` differences are those of a dense least-squares fit of every field at once on the training
    cells, and differ from the plain means' where a held-out combination leaves the training cells unbalanced."""
    from xmodal.families.census import read_processed
    from xmodal.families.census._preprocess import lognormalize_csr

    _, processed = synthetic
    data = read_processed(processed)
    counts, codes, _ = data.sample("train", max_cells=None, seed=0)
    x = lognormalize_csr(sp.csr_matrix(counts), target_sum=data.target_sum).toarray()
    design = np.concatenate([np.eye(k + 1)[codes[:, j]] for j, k in enumerate(data.cardinalities)], axis=1)
    beta = np.linalg.lstsq(design, x, rcond=None)[0]
    stored = np.load(processed / "field_means.npz")
    offset = 0
    for name, k in zip(data.vocab.fields, data.cardinalities, strict=True):
        ours = stored[f"effect:{name}"][1:] - stored[f"effect:{name}"][1]
        np.testing.assert_allclose(ours, beta[offset + 1:offset + k + 1] - beta[offset + 1], atol=2e-4)
        offset += k + 1
    sex = stored["effect:sex"][2] - stored["effect:sex"][1]
    plain = stored["mean:sex"][2] - stored["mean:sex"][1]
    assert np.abs(sex - plain).max() > 0.05  # the held-out (cell_type, sex) pairs unbalance the plain means


def test_additive_effects_take_out_another_fields_mix() -> None:
    """Sex has no effect; cell type has one; one sex lacks a cell type (a held-out pair). The plain means differ
    between the sexes by the cell type's share, the joint effects do not."""
    from xmodal.families.census._preprocess import additive_effects

    sex = np.array([1] * 60 + [2] * 40)
    cell_type = np.array([1] * 30 + [2] * 30 + [1] * 40)  # sex 2 has no cell of type 2
    y = np.where(cell_type == 2, 3.0, 1.0)[:, None] * np.array([[1.0, 0.5]])
    design = np.concatenate([np.eye(3)[sex], np.eye(3)[cell_type]], axis=1)
    effects = additive_effects(design.T @ design, design.T @ y)
    means = [y[sex == v].mean(0) for v in (1, 2)]
    assert np.abs(means[1] - means[0]).min() > 0.4
    np.testing.assert_allclose(effects[2] - effects[1], 0.0, atol=1e-9)
    np.testing.assert_allclose(effects[5] - effects[4], [2.0, 1.0], atol=1e-9)


def test_preprocessor_brings_raw_counts_to_the_model_genes(synthetic: tuple[Path, Path]) -> None:
    from xmodal.families import load_preprocessor

    _, processed = synthetic
    prep = load_preprocessor(processed / "preprocessor_rna")
    sim = synthetic_census(n_cells=20, n_genes=80, seed=3)
    frame = pd.DataFrame(sim.counts.toarray(), columns=sim.var["feature_name"]).assign(
        **{f: sim.obs[f].astype(str).to_numpy() for f in FIELDS})
    cells = prep.transform_frame(frame)
    assert list(cells.var_names) == prep.genes
    assert list(cells.obs.columns) == FIELDS
    with pytest.raises(XmodalInputError, match=r"lacks 40 of the model's 40 genes"):
        prep.transform_frame(frame.rename(columns=lambda c: f"x{c}" if c.startswith("GENE") else c))


def _chunk_export(folder: Path, sim, *, meta: str = "parquet") -> Path:
    folder.mkdir(parents=True)
    sim.var.reset_index().to_csv(folder / "genes.csv", index=False)
    for k, s in enumerate(range(0, sim.counts.shape[0], 300)):
        sp.save_npz(folder / f"human_counts_{k}.npz", sim.counts[s:s + 300])
        frame = sim.obs.iloc[s:s + 300].reset_index()
        (frame.to_parquet if meta == "parquet" else frame.to_pickle)(folder / f"human_metadata_{k}.{meta}")
    return folder


def test_every_source_gives_the_same_store(tmp_path: Path, synthetic: tuple[Path, Path]) -> None:
    """The seed's chunk export and an .h5ad of the same cells ingest to the same cells as the generator."""
    sim = synthetic_census(n_cells=900, n_genes=80, seed=3)
    expected = json.loads((synthetic[0] / "schema.json").read_text())["sha256"]
    _chunk_export(tmp_path / "chunks", sim)
    got, _ = _run(tmp_path / "a", {"kind": "chunks", "path": str(tmp_path / "chunks")})
    assert json.loads((got / "schema.json").read_text())["sha256"] == expected
    adata = ad.AnnData(X=sim.counts, obs=sim.obs, var=sim.var)
    adata.write_h5ad(tmp_path / "cells.h5ad")
    got, _ = _run(tmp_path / "b", {"kind": "h5ad", "path": str(tmp_path / "cells.h5ad"), "chunk_size": 128})
    assert json.loads((got / "schema.json").read_text())["sha256"] == expected


def test_census_query_source(tmp_path: Path) -> None:
    """The real cellxgene_census API against a Census-shaped collection on disk (no network)."""
    from tests.unit.data.test_census_soma import _tiny_census

    sim = synthetic_census(n_cells=900, n_genes=80, seed=3)
    root = _tiny_census(tmp_path / "census", sim)
    source = {"kind": "cellxgene_census", "uri": str(root), "organism": "Homo sapiens",
              "obs_value_filter": "tissue_general != 'brain'", "chunk_size": 200}
    ingested, processed = _run(tmp_path / "p", source)
    schema = json.loads((ingested / "schema.json").read_text())
    assert schema["n_obs"] == int((sim.obs["tissue_general"] != "brain").sum())
    assert "brain" not in schema["values"]["tissue_general"]
    assert json.loads((processed / "schema.json").read_text())["holdout_cells"] > 0
    params = _params({**source, "obs_value_filter": "tissue_general == 'heart'"})
    with pytest.raises(XmodalInputError, match="selects no cells"):
        ingest.run(params, dataset="c", root=tmp_path / "q")
    assert not (tmp_path / "q/data/ingested/c").exists()


@pytest.mark.parametrize(("dataset", "message"), [
    ({"fields": ["cell_type", "sex", "cell_typo"]}, "unknown field .cell_typo."),
])
def test_unknown_field_is_refused_at_ingest(tmp_path: Path, dataset: dict, message: str) -> None:
    params = _params(SYNTHETIC, **{**dataset, "holdout": []})
    with pytest.raises(XmodalInputError, match=message):
        ingest.run(params, dataset="c", root=tmp_path)
    assert not (tmp_path / "data/ingested/c").exists()


@pytest.mark.parametrize(("holdout", "message"), [
    ([{"cell_type": "T cell", "sex": "unknown-sex"}], "sex has no value 'unknown-sex'"),
    ([{"cell_type": "T cell", "sex": "female"}, {"cell_type": "T cell", "sex": "male"}],
     "no training cell has cell_type = 'T cell'"),
])
def test_holdout_that_cannot_be_learned_is_refused(tmp_path: Path, holdout: list, message: str) -> None:
    params = _params(SYNTHETIC, holdout=holdout)
    ingest.run(params, dataset="c", root=tmp_path)
    with pytest.raises(XmodalInputError, match=message):
        preprocess.run(params, dataset="c", root=tmp_path)
    assert not (tmp_path / "data/processed/c").exists()


def test_holdout_naming_an_unused_field_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="holdout names field 'donor_id'"):
        _params(SYNTHETIC, holdout=[{"donor_id": "donor_1", "sex": "female"}])


def test_bad_counts_in_a_chunk_name_file_and_row(tmp_path: Path) -> None:
    sim = synthetic_census(n_cells=600, n_genes=30, seed=1)
    folder = _chunk_export(tmp_path / "chunks", sim)
    bad = sp.load_npz(folder / "human_counts_1.npz").tolil()
    bad[7, 3] = 2.5
    sp.save_npz(folder / "human_counts_1.npz", bad.tocsr())
    with pytest.raises(XmodalInputError, match=r"human_counts_1.npz.*row 8.*not an integer"):
        ingest.run(_params({"kind": "chunks", "path": str(folder)}, holdout=[]), dataset="c", root=tmp_path)
    assert not (tmp_path / "data/ingested/c").exists()


def test_pickle_metadata_is_refused_without_trust(tmp_path: Path) -> None:
    sim = synthetic_census(n_cells=600, n_genes=30, seed=1)
    folder = _chunk_export(tmp_path / "chunks", sim, meta="pkl")
    with pytest.raises(XmodalInputError, match="pickle"):
        ingest.run(_params({"kind": "chunks", "path": str(folder)}, holdout=[]), dataset="c", root=tmp_path)
    ingest.run(_params({"kind": "chunks", "path": str(folder), "trust_pickle": True}, holdout=[]), dataset="c",
               root=tmp_path)
    assert json.loads((tmp_path / "data/ingested/c/schema.json").read_text())["n_obs"] == 600


def test_dense_h5ad_is_refused(tmp_path: Path) -> None:
    sim = synthetic_census(n_cells=200, n_genes=30, seed=1)
    ad.AnnData(X=sim.counts.toarray(), obs=sim.obs, var=sim.var).write_h5ad(tmp_path / "dense.h5ad")
    with pytest.raises(XmodalInputError, match="not CSR"):
        ingest.run(_params({"kind": "h5ad", "path": str(tmp_path / "dense.h5ad")}, holdout=[]), dataset="c",
                   root=tmp_path)

"""``xmodal ingest`` of ``csv`` and ``anndata`` sources whose paths are ``s3://`` URIs (real S3 server).

Each test ingests the same files once from the bucket and once from local disk and requires the same
``schema.json`` (shapes and SHA-256 content hashes of values, cell and feature names, labels, pairing).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

from xmodal.cli import main

N_CELLS = 12
FEATURES = ["soma_depth", "axon_length", "dendrite_count", "max_radius"]
GENES = ["Gad1", "Pvalb", "Sst", "Vip", "Lamp5", "Slc17a7"]
CSV_FIELDS = {
    "modality_a": "morpho.csv", "modality_b": "gex.csv", "labels": "families.csv",
    "clusters_a": "clusters_morpho.csv", "clusters_b": "clusters_gex.csv", "corr_matrix": "corr.csv",
}


def write_csv_set(folder: Path) -> Path:
    """A small seed-000-style CSV set: morphology with header, expression without, annotations."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    ids = [f"cell{k:02d}" for k in range(N_CELLS)]
    morph = rng.normal(size=(N_CELLS, len(FEATURES))).round(3)
    expr = rng.poisson(4.0, size=(N_CELLS, len(GENES)))
    pd.DataFrame(morph, index=pd.Index(ids, name="cell_id"), columns=FEATURES).to_csv(folder / "morpho.csv")
    pd.DataFrame(expr, index=ids).to_csv(folder / "gex.csv", header=False)
    families = pd.Series([("Pvalb", "Sst", "Vip")[k % 3] for k in range(N_CELLS)], index=ids, name="family")
    families.iloc[::-1].rename_axis("id").to_csv(folder / "families.csv")
    order = rng.permutation(N_CELLS)
    for name, labels in (("clusters_morpho.csv", [f"M{k % 2}" for k in range(N_CELLS)]),
                         ("clusters_gex.csv", [f"cluster_{k % 3}" for k in range(N_CELLS)])):
        pd.Series(labels, index=ids, name="cluster").iloc[order].rename_axis("id").to_csv(folder / name)
    corr = rng.uniform(-1, 1, size=(3, 2)).round(3)
    pd.DataFrame(corr, index=[f"cluster_{k}" for k in range(3)], columns=["M0", "M1"]).to_csv(folder / "corr.csv")
    return folder


def write_h5ad_pair(folder: Path) -> Path:
    """Two ``.h5ad`` modalities of the same cells with a label column and a partner column."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    ids_a = [f"a{k}" for k in range(N_CELLS)]
    ids_b = [f"b{k}" for k in range(N_CELLS)]
    labels = [("T", "B", "NK")[k % 3] for k in range(N_CELLS)]
    obs_a = pd.DataFrame({"cell_type": labels, "partner": ids_b}, index=ids_a)
    obs_b = pd.DataFrame({"cell_type": labels}, index=ids_b)
    a = ad.AnnData(rng.normal(size=(N_CELLS, 5)).astype(np.float32), obs=obs_a,
                   var=pd.DataFrame(index=[f"f{k}" for k in range(5)]))
    b = ad.AnnData(rng.poisson(2.0, size=(N_CELLS, 7)).astype(np.float32), obs=obs_b,
                   var=pd.DataFrame(index=[f"g{k}" for k in range(7)]))
    a.write_h5ad(folder / "morphology.h5ad")
    b.write_h5ad(folder / "expression.h5ad")
    return folder


def write_params(root: Path, source: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    params = {"datasets": {"seed": {"family": "paired", "source": source}}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def ingest(root: Path) -> int:
    return main(["ingest", "--dataset", "seed", "--params", str(root / "params.yaml"), "--root", str(root)])


def schema(root: Path) -> dict:
    """The ingested data's description (shapes, hashes), without the settings (which name the source paths)."""
    found = json.loads((root / "data/ingested/seed/schema.json").read_text())
    found.pop("settings")
    return found


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder ``tempfile`` uses during the test, to check that downloads are removed."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_csv_set_from_s3_ingests_like_the_local_files(s3_env, bucket: str, prefix: str, tmp_path: Path,
                                                      scratch: Path) -> None:
    raw = write_csv_set(tmp_path / "local/raw")
    uris = s3_env.upload(raw, bucket, f"{prefix}/seed000/raw")
    local = write_params(tmp_path / "local", {"kind": "csv", **{k: f"raw/{v}" for k, v in CSV_FIELDS.items()}})
    remote = write_params(tmp_path / "remote", {"kind": "csv", **{k: uris[v] for k, v in CSV_FIELDS.items()}})

    assert ingest(local) == 0
    assert ingest(remote) == 0

    expected = schema(local)
    assert expected["has_labels"]
    assert expected["has_corr_matrix"]
    assert expected["n_pairs"] == N_CELLS
    got = schema(remote)
    for key in ("a", "b"):
        assert got["modalities"][key]["sha256"] == expected["modalities"][key]["sha256"]
    assert got == expected
    assert not list(scratch.iterdir()), "the downloaded files must be removed after reading"


@pytest.mark.parametrize("layout", ["h5ad", "h5mu"])
def test_anndata_from_s3_ingests_like_the_local_files(s3_env, bucket: str, prefix: str, tmp_path: Path,
                                                      scratch: Path, layout: str) -> None:
    raw = write_h5ad_pair(tmp_path / "local/raw")
    keys = {"label_key": "cell_type", "match_key": "partner"}
    if layout == "h5mu":
        import mudata as md

        md.MuData({"morphology": ad.read_h5ad(raw / "morphology.h5ad"),
                   "expression": ad.read_h5ad(raw / "expression.h5ad")}).write_h5mu(raw / "both.h5mu")
        for name in ("morphology.h5ad", "expression.h5ad"):
            (raw / name).unlink()
        files = {"path": "both.h5mu"}
        keys["modalities"] = ["morphology", "expression"]
    else:
        files = {"path_a": "morphology.h5ad", "path_b": "expression.h5ad"}
    uris = s3_env.upload(raw, bucket, f"{prefix}/anndata")
    local = write_params(tmp_path / "local", {"kind": "anndata", **keys,
                                               **{k: f"raw/{v}" for k, v in files.items()}})
    remote = write_params(tmp_path / "remote", {"kind": "anndata", **keys,
                                                 **{k: uris[v] for k, v in files.items()}})

    assert ingest(local) == 0
    assert ingest(remote) == 0

    expected = schema(local)
    assert expected["has_labels"]
    assert expected["n_pairs"] == N_CELLS
    assert schema(remote) == expected
    assert not list(scratch.iterdir())


def test_s3_and_local_paths_mix_and_mlflow_endpoint_is_the_fallback(
    s3_env, bucket: str, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a cluster that already runs MLflow on this store sets only MLFLOW_S3_ENDPOINT_URL
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", s3_env.endpoint)
    raw = write_csv_set(tmp_path / "local/raw")
    uris = s3_env.upload(raw, bucket, f"{prefix}/mixed")
    local = write_params(tmp_path / "local", {"kind": "csv", **{k: f"raw/{v}" for k, v in CSV_FIELDS.items()}})
    # the remote project keeps its labels on local disk (relative to its root), the rest on S3
    mixed = {k: uris[v] for k, v in CSV_FIELDS.items()}
    mixed["labels"] = "annotations/families.csv"
    remote = write_params(tmp_path / "remote", {"kind": "csv", **mixed})
    (remote / "annotations").mkdir()
    (remote / "annotations/families.csv").write_bytes((raw / "families.csv").read_bytes())

    assert ingest(local) == 0
    assert ingest(remote) == 0
    assert schema(remote) == schema(local)

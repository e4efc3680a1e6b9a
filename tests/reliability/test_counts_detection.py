"""Counts are detected as counts (issue 28, point 13).

``kinds: auto`` reads non-negative integers as counts only when they have the low end counts have (zeros or small
values): dense integer features without one (no zeros, hundreds to hundreds of thousands, as binned or aggregated
measurements are) are continuous, so ``log1p: auto`` leaves them alone. Ingest logs each modality's kind and why,
and records the reason in ``schema.json``; a declared ``counts`` is kept (and still checked). Through the real
``xmodal`` CLI, from CSV and ``.h5ad`` sources.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml
from _cli import assert_refused, xmodal

from _files import write_paired_csv

N = 60


def _aggregates(n: int = N, d: int = 8, seed: int = 0) -> np.ndarray:
    """Dense integer features: each a linear map of a normal score onto [100, top], top in 1e3-1e5; no zeros."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d))
    top = 10 ** rng.uniform(3, 5, d)
    return np.round(100 + (z - z.min(0)) / (z.max(0) - z.min(0)) * (top - 100))


def _umi(n: int = N, d: int = 30, seed: int = 1) -> np.ndarray:
    """Sparse UMI-like counts: negative binomial, most values 0 or small."""
    rng = np.random.default_rng(seed)
    mean = rng.lognormal(-0.5, 1.0, d)
    return rng.poisson(rng.gamma(2.0, mean / 2.0, size=(n, d))).astype(float)


def _project(root: Path, a: np.ndarray, b: np.ndarray, *, source: str, kinds: tuple[str, str] = ("auto", "auto"),
             name: str = "mine") -> None:
    if source == "csv":
        fields = write_paired_csv(root / "raw" / name, a, b)
    else:
        ids = pd.Index([f"c{i}" for i in range(len(a))])
        for key, x, prefix in (("a", a, "m"), ("b", b, "g")):
            ad.AnnData(X=x.astype(np.float32), obs=pd.DataFrame(index=ids),
                       var=pd.DataFrame(index=[f"{prefix}{j}" for j in range(x.shape[1])])).write_h5ad(root / f"{key}.h5ad")
        fields = {"kind": "anndata", "path_a": str(root / "a.h5ad"), "path_b": str(root / "b.h5ad")}
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["datasets"][name] = {"family": "paired", "source": {**fields, "kinds": list(kinds)}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def _schema(root: Path) -> dict:
    return json.loads((root / "data/ingested/mine/schema.json").read_text())["modalities"]


def _log1p(root: Path, key: str) -> bool:
    return json.loads((root / f"data/processed/mine/preprocessor_{key}/meta.json").read_text())["log1p"]


@pytest.mark.parametrize("source", ["csv", "h5ad"])
def test_dense_integer_features_without_zeros_are_not_read_as_counts(tiny_project: Path, source: str) -> None:
    root = tiny_project
    _project(root, _aggregates(), _umi(), source=source)
    got = xmodal(root, "ingest", "--dataset", "mine")
    assert got.rc == 0, got.stderr[-3000:]
    modalities = _schema(root)
    assert modalities["a"]["kind"] == "continuous"
    assert modalities["b"]["kind"] == "counts"
    # the reason, in the schema and in one INFO line per modality
    assert modalities["a"]["kind_reason"].startswith("dense integers without a low end: 0.0 % zeros, 5th percentile ")
    assert "aggregates, not counts" in modalities["a"]["kind_reason"]
    assert modalities["b"]["kind_reason"].startswith("non-negative integers with a low end: ")
    names = ("a (morphology)", "b (expression)") if source == "csv" else ("a", "b")
    lines = [line for line in got.stderr.splitlines() if re.search(r"_readers: [ab]( \(\w+\))?: \w+ \(", line)]
    assert len(lines) == 2, got.stderr[-3000:]
    assert f"{names[0]}: continuous (dense integers without a low end: 0.0 % zeros" in lines[0]
    assert f"{names[1]}: counts (non-negative integers with a low end:" in lines[1]
    got = xmodal(root, "preprocess", "--dataset", "mine")
    assert got.rc == 0, got.stderr[-3000:]
    assert _log1p(root, "a") is False  # log1p: auto no longer takes the log of aggregates
    assert _log1p(root, "b") is True


def test_a_declared_counts_kind_is_kept_and_still_checked(tiny_project: Path) -> None:
    root = tiny_project
    _project(root, _aggregates(), _umi(), source="csv", kinds=("counts", "continuous"))
    got = xmodal(root, "ingest", "--dataset", "mine")
    assert got.rc == 0, got.stderr[-3000:]
    modalities = _schema(root)
    assert modalities["a"]["kind"] == "counts"
    assert modalities["a"]["kind_reason"].startswith("declared; auto would read dense integers")
    assert modalities["b"]["kind"] == "continuous"
    assert modalities["b"]["kind_reason"].startswith("declared; auto would read non-negative integers with a low end")
    assert xmodal(root, "preprocess", "--dataset", "mine").rc == 0
    assert _log1p(root, "a") is True
    # a counts declaration still refuses what is not counts
    a = _aggregates()
    a[5, 2] = 1234.5
    _project(root, a, _umi(), source="csv", kinds=("counts", "auto"), name="bad")
    assert_refused(xmodal(root, "ingest", "--dataset", "bad"),
                   needle=("raw/bad/a.csv", "row 7", "1234.5", "not an integer", "declared as counts"))
    assert not (root / "data/ingested/bad").exists()


@pytest.mark.parametrize(("name", "make", "kind"), [
    ("sparse UMI counts", lambda rng: _umi(200, 50), "counts"),
    ("binary ATAC", lambda rng: (rng.random((200, 300)) < 0.05).astype(float), "counts"),
    ("deep UMI counts of expressed genes (dense, small)", lambda rng: rng.poisson(
        rng.lognormal(2.5, 0.5, 40), size=(200, 40)).astype(float), "counts"),
    ("antibody counts: a background and a positive population (dense, median near 100)", lambda rng: rng.poisson(
        np.where(rng.random((200, 30)) < 0.4, rng.lognormal(np.log(500), 0.8, (200, 30)),
                 rng.lognormal(np.log(40), 0.5, (200, 30)))).astype(float), "counts"),
    ("dense integer aggregates, no zeros", lambda rng: _aggregates(200, 20), "continuous"),
    ("dense integer aggregates, a few empty bins", lambda rng: np.where(
        rng.random((200, 20)) < 0.02, 0, np.round(10 ** rng.uniform(2, 5, (200, 20)))), "continuous"),
    ("dense Poisson, mean 5000", lambda rng: rng.poisson(5000, size=(200, 20)).astype(float), "continuous"),
])
def test_the_rule_on_realistic_shapes(name: str, make, kind: str) -> None:
    """What ``fit_preprocessor`` decides for data ingested without a kind (older files), by the same rule."""
    from xmodal.families.paired import PairedPreprocessConfig
    from xmodal.families.paired._preprocess import fit_preprocessor

    x = make(np.random.default_rng(0))
    adata = ad.AnnData(X=x.astype(np.float32), var=pd.DataFrame(index=[f"f{j}" for j in range(x.shape[1])]))
    prep = fit_preprocessor(adata, cfg=PairedPreprocessConfig(n_pcs=5), kind=None, name=name)
    assert prep.counts is (kind == "counts"), name
    assert prep.log1p is (kind == "counts" and bool(x.max() > 1)), name  # log1p: auto, for counts above 1

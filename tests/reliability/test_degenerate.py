"""Degenerate data is caught at the stage that can see it: too few cells per split or class, no varying feature,
blank labels, ids repeated across domains, values that are not counts in a counts modality, a model that is
not finite. Each is exit 2 (a diverged fit: exit 1) with one message, nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml
from _cli import assert_refused, tree, xmodal

from _files import small_multiome, write_10x, write_paired_csv


def _dataset(root: Path, name: str, config: dict, **params) -> None:
    p = yaml.safe_load((root / "params.yaml").read_text())
    p["datasets"][name] = config
    for key, value in params.items():
        p.setdefault(key, {}).update(value)
    (root / "params.yaml").write_text(yaml.safe_dump(p))


def _csv(root: Path, a: np.ndarray, b: np.ndarray, **source) -> None:
    fields = write_paired_csv(root / "raw", a, b, labels=source.pop("labels", None))
    _dataset(root, "mine", {"family": "paired", "source": {**fields, **source}})


def _counts(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(3.0, size=(n, d)).astype(float)


def _continuous(n: int, d: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def test_one_cell_is_refused_at_preprocess_with_the_split_sizes(tiny_project: Path) -> None:
    _csv(tiny_project, _continuous(1, 4), _counts(1, 6))
    assert xmodal(tiny_project, "ingest", "--dataset", "mine").rc == 0
    assert_refused(xmodal(tiny_project, "preprocess", "--dataset", "mine"),
                   needle=("data/ingested/mine/data.h5mu", "has 1 cell", "split gets", "at least 5"))
    assert not (tiny_project / "data/processed").exists()


def test_constant_features_leave_no_feature_and_are_refused(tiny_project: Path) -> None:
    a = np.ones((40, 5))
    _csv(tiny_project, a, _counts(40, 6))
    assert xmodal(tiny_project, "ingest", "--dataset", "mine").rc == 0
    assert_refused(xmodal(tiny_project, "preprocess", "--dataset", "mine"),
                   needle=("modality a", "0 of its 5 features vary", "preprocess.paired.min_features"))


def test_a_single_feature_modality_is_refused_by_default_and_evaluates_when_allowed(tiny_project: Path) -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(60, 1))
    _csv(tiny_project, z + 0.1 * rng.normal(size=(60, 1)), np.hstack([z, -z]) + 0.1 * rng.normal(size=(60, 2)),
         kinds=["continuous", "continuous"])
    root = tiny_project
    assert xmodal(root, "ingest", "--dataset", "mine").rc == 0
    assert_refused(xmodal(root, "preprocess", "--dataset", "mine"), needle="1 of its 1 features vary")
    allow = ("--set", "preprocess.paired.min_features=1")
    assert xmodal(root, "preprocess", "--dataset", "mine", *allow).rc == 0
    for stage in ("train", "evaluate"):
        got = xmodal(root, stage, "--dataset", "mine", "--method", "gwot", *allow)
        assert got.rc == 0, got.stderr[-2000:]
    assert (root / "reports/mine/gwot/plots/embedding.png").stat().st_size > 1000


@pytest.mark.parametrize("blank", ["", "   ", "NA", "nan"])
def test_a_blank_label_is_missing_data_not_a_class(tiny_project: Path, blank: str) -> None:
    labels = ["t"] * 20 + ["u"] * 20
    labels[7] = blank
    _csv(tiny_project, _continuous(40, 4), _counts(40, 6), labels=labels)
    message = assert_refused(xmodal(tiny_project, "ingest", "--dataset", "mine"),
                             needle=("raw/labels.csv", "row 9", "column 'type'", "c7"))
    assert "give every cell a value" in message
    assert not (tiny_project / "data").exists()


def test_a_nan_label_in_an_anndata_obs_column_is_refused_with_its_cell(tiny_project: Path) -> None:
    rng = np.random.default_rng(0)
    obs = pd.DataFrame({"type": pd.Categorical(["t", "u"] * 20)}, index=[f"c{i}" for i in range(40)])
    obs.loc["c5", "type"] = np.nan
    for name in ("a", "b"):
        ad.AnnData(X=rng.normal(size=(40, 5)).astype(np.float32), obs=obs).write_h5ad(tiny_project / f"{name}.h5ad")
    _dataset(tiny_project, "mine", {"family": "paired", "source": {"kind": "anndata", "path_a": str(tiny_project / "a.h5ad"),
                                               "path_b": str(tiny_project / "b.h5ad"), "label_key": "type"}})
    assert_refused(xmodal(tiny_project, "ingest", "--dataset", "mine"),
                   needle=("a.h5ad", "row 6", "'c5'", "missing (NaN) label"))


def test_a_label_rarer_than_the_floor_is_refused_at_preprocess(tiny_project: Path) -> None:
    labels = ["t"] * 30 + ["u"] * 9 + ["rare"]
    _csv(tiny_project, _continuous(40, 4), _counts(40, 6), labels=labels)
    assert xmodal(tiny_project, "ingest", "--dataset", "mine").rc == 0
    assert_refused(xmodal(tiny_project, "preprocess", "--dataset", "mine"),
                   needle=("label 'rare' has 1 cell", "split.min_cells_per_class"))
    assert xmodal(tiny_project, "preprocess", "--dataset", "mine", "--set", "split.min_cells_per_class=1").rc == 0


@pytest.mark.parametrize(("value", "what"), [(-3, "negative"), (2.5, "not an integer")])
def test_a_counts_modality_refuses_values_that_are_not_counts_with_their_place(tiny_project: Path, value: float,
                                                                              what: str) -> None:
    b = _counts(40, 6)
    b[11, 4] = value
    _csv(tiny_project, _continuous(40, 4), b, kinds=["continuous", "counts"])
    assert_refused(xmodal(tiny_project, "ingest", "--dataset", "mine"),
                   needle=("raw/b.csv", "row 13", "column 'g4'", f"{value:g}", what, "declared as counts"))


def test_an_almost_counts_modality_is_read_as_continuous_with_a_warning(tiny_project: Path) -> None:
    b = _counts(40, 6)
    b[11, 4] = -3
    _csv(tiny_project, _continuous(40, 4), b)
    got = xmodal(tiny_project, "ingest", "--dataset", "mine")
    assert got.rc == 0
    assert "as in counts, but cell 'c11' holds -3 in 'g4'" in got.stderr
    schema = json.loads((tiny_project / "data/ingested/mine/schema.json").read_text())
    assert schema["modalities"]["b"]["kind"] == "continuous"
    assert schema["modalities"]["a"]["kind"] == "continuous"


def test_new_cells_of_a_counts_modality_with_negative_values_are_refused_not_clipped(tiny_project: Path) -> None:
    root = tiny_project
    for stage in ("ingest", "preprocess"):
        assert xmodal(root, stage, "--dataset", "tiny").rc == 0
    from xmodal.families.paired._data import read_paired, write_paired

    new = read_paired(root / "data/ingested/tiny")
    new.b.X[3, 2] = -5.0  # expression counts of the synthetic data
    write_paired(new, root / "incoming")
    assert_refused(xmodal(root, "monitor", "--dataset", "tiny", "--new", "incoming"),
                   needle=("incoming", "row 4", "-5", "negative"))
    assert not (root / "reports/monitor").exists()


def test_cell_ids_repeated_across_domains_are_refused_or_made_unique(tiny_project: Path) -> None:
    root = tiny_project
    barcodes = [f"AAAC{i:04d}-1" for i in range(60)]  # two 10x runs reuse barcodes
    files = [write_10x(root / f"{name}.h5", small_multiome(seed=1), barcodes=barcodes)
             for name in ("line_a", "line_b")]
    source = {"kind": "files", "domains": [{"name": n, "format": "10x_h5", "path": str(f)}
                                           for n, f in zip(("line_a", "line_b"), files, strict=True)]}
    _dataset(root, "mo", {"family": "multiome", "source": {**source, "cell_ids": "as_is"}})
    assert_refused(xmodal(root, "ingest", "--dataset", "mo"),
                   needle=("line_b.h5", "'AAAC0000-1'", "domain 'line_a'", "source.cell_ids"))
    _dataset(root, "mo", {"family": "multiome", "source": source})  # the default: auto
    got = xmodal(root, "ingest", "--dataset", "mo")
    assert got.rc == 0, got.stderr[-2000:]
    from xmodal.families.multiome._io import read_multiome

    ids = read_multiome(root / "data/ingested/mo").rna.obs_names
    assert ids.is_unique
    assert ids[0] == "line_a:AAAC0000-1"
    assert ids[60] == "line_b:AAAC0000-1"


def test_a_multiome_phase_rarer_than_the_floor_names_the_domain(tiny_project: Path) -> None:
    root = tiny_project
    data = small_multiome(seed=3)
    path = write_10x(root / "m.h5", data)
    phases = ["G1"] * 59 + ["G2M"]
    pd.DataFrame({"cell": list(map(str, data.rna.obs_names)), "phase": phases}).to_csv(root / "l.csv", index=False)
    _dataset(root, "mo", {"family": "multiome", "source": {"kind": "files", "domains": [
        {"name": "line_a", "format": "10x_h5", "path": str(path), "labels": str(root / "l.csv")}]}})
    assert xmodal(root, "ingest", "--dataset", "mo").rc == 0
    assert_refused(xmodal(root, "preprocess", "--dataset", "mo"),
                   needle=("domain 'line_a'", "phase 'G2M' has 1 of its 60 cells"))


def test_a_fit_that_is_not_finite_is_an_error_and_no_model(tiny_project: Path) -> None:
    root = tiny_project
    for stage in ("ingest", "preprocess"):
        assert xmodal(root, stage, "--dataset", "tiny").rc == 0
    before = tree(root)
    got = xmodal(root, "train", "--dataset", "tiny", "--method", "gwot", "--set", "methods.gwot.epsilon=1e-12")
    assert_refused(got, code=1, needle=("gwot: the fitted model is not finite", "raise methods.gwot.epsilon"))
    after = tree(root)
    assert {k: v for k, v in after.items() if not k.startswith("models")} == before
    assert not list(root.glob("models/tiny/gwot*"))
    assert not list(root.glob("models/tiny/.gwot*"))

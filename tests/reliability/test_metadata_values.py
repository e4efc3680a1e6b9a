"""Metadata values are read once, the same way everywhere (issue 28, point 7).

Two spellings of one value (case, whitespace, Unicode form) are one value: the cells of a held-out combination
never reach training whatever their spelling, the vocabulary has the value once, a target context given at serving
time in another spelling finds its code, and every merge is reported. Driven through the real ``xmodal`` CLI on a
census ``.h5ad`` built here.
"""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import yaml
from _cli import assert_refused, xmodal

pytest.importorskip("tiledbsoma")

FIELDS = ["cell_type", "sex", "tissue_general", "assay"]
HELD = {"cell_type": "T cell", "sex": "female"}
#: the spellings a held-out cell of {cell_type: T cell, sex: female} is given here, one per cell in turn
RESPELLED = [("t cell", "female"), ("T cell ", "female"), ("T cell", "Female"), ("T\u00a0cell", "FEMALE"),
             ("\uff34 \uff43\uff45\uff4c\uff4c", "female"), ("  t  CELL", " female ")]


def _project(root: Path, *, holdout: list[dict[str, str]]) -> dict[str, tuple[str, str]]:
    """A census ``.h5ad`` whose held-out cells come in several spellings, and its params; returns the respelled
    cells (id → spelling)."""
    from xmodal.families.census._synthetic import synthetic_census

    sim = synthetic_census(n_cells=600, n_genes=60, seed=3)
    obs = sim.obs.copy()
    for f in FIELDS:
        obs[f] = obs[f].astype(str)
    held = np.flatnonzero((obs["cell_type"] == HELD["cell_type"]).to_numpy() & (obs["sex"] == HELD["sex"]).to_numpy())
    assert len(held) >= 2 * len(RESPELLED)
    respelled = {}
    for i, row in enumerate(held[: 2 * len(RESPELLED)]):
        cell_type, sex = RESPELLED[i % len(RESPELLED)]
        obs.iloc[row, obs.columns.get_loc("cell_type")] = cell_type
        obs.iloc[row, obs.columns.get_loc("sex")] = sex
        respelled[str(obs.index[row])] = (cell_type, sex)
    ad.AnnData(X=sim.counts, obs=obs, var=sim.var).write_h5ad(root / "cells.h5ad")
    params = {"datasets": {"cen": {"family": "census", "source": {"kind": "h5ad", "path": "cells.h5ad"},
                                   "fields": FIELDS, "holdout": holdout, "counterfactual_field": "sex"}},
              "preprocess": {"census": {"n_top_genes": 40, "chunk_size": 100}}, "split": {"seed": 0}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
    return respelled


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[str, str]], str]:
    root = tmp_path_factory.mktemp("metadata")
    respelled = _project(root, holdout=[HELD])
    for stage in ("ingest", "preprocess"):
        got = xmodal(root, stage, "--dataset", "cen")
        assert got.rc == 0, got.stderr[-3000:]
    return root, respelled, got.stderr


def test_no_spelling_of_a_held_out_combination_reaches_training(processed) -> None:
    from xmodal.families.census._soma import store_obs

    root, respelled, _ = processed
    obs = store_obs(root / "data/processed/cen/store")
    split = obs["split"].astype(str)
    assert (split[list(respelled)] == "test").all(), split[list(respelled)].value_counts().to_dict()
    # every cell of the combination, whatever its spelling, is a test cell; and none of another combination is
    # held out because of the merge
    ingested = store_obs(root / "data/ingested/cen/store")
    key = ingested["cell_type"].astype(str).str.casefold().str.split().str.join(" ")
    sex = ingested["sex"].astype(str).str.strip().str.casefold()
    inside = (((key == "t cell") | ingested.index.isin(list(respelled))) & (sex == "female")).to_numpy()
    assert (split.loc[ingested.index[inside]] == "test").all()
    assert int(inside.sum()) == json.loads((root / "data/processed/cen/schema.json").read_text())["holdout_cells"]
    others = split.loc[ingested.index[~inside]]
    assert (others == "train").mean() > 0.6  # the other cells are split as usual


def test_each_value_is_stored_once_in_its_most_frequent_spelling(processed) -> None:
    from xmodal.families.census._soma import store_obs

    root, respelled, _ = processed
    obs = store_obs(root / "data/processed/cen/store")
    assert set(obs.loc[list(respelled), "cell_type"].astype(str)) == {"T cell"}
    assert set(obs.loc[list(respelled), "sex"].astype(str)) == {"female"}
    vocab = json.loads((root / "data/processed/cen/vocab.json").read_text())
    assert vocab["values"]["cell_type"].count("T cell") == 1
    assert not {"t cell", "T cell ", "Female"} & set(vocab["values"]["cell_type"] + vocab["values"]["sex"])
    schema = json.loads((root / "data/processed/cen/schema.json").read_text())
    assert schema["holdout"] == [HELD]  # in the data's spelling, as evaluation matches it


def test_the_merge_is_reported_in_the_log_and_recorded(processed) -> None:
    root, _, stderr = processed
    merged = json.loads((root / "data/processed/cen/vocab.json").read_text())["merged"]
    assert set(merged["cell_type"]["T cell"]) == {"t cell", "T cell ", "T\u00a0cell", "\uff34 \uff43\uff45\uff4c\uff4c",
                                                  "  t  CELL"}
    assert set(merged["sex"]["female"]) == {"Female", "FEMALE", " female "}
    assert json.loads((root / "data/processed/cen/schema.json").read_text())["merged_values"]["sex"] == merged["sex"]
    line = next(line for line in stderr.splitlines() if "field 'cell_type'" in line and "spellings" in line)
    for part in ("'T cell' ← ", "'t cell'", "'T\\xa0cell'", "'  t  CELL'"):
        assert part in line, line


def test_a_target_context_in_another_spelling_finds_its_code(processed) -> None:
    """What ``cycleae``'s ``counterfactual(set=...)`` and the served model look values up with."""
    from xmodal.families.census._vocab import Vocabulary

    root, _, _ = processed
    vocab = Vocabulary.load(root / "data/processed/cen/preprocessor_rna/vocab.json")
    t_cell, female = vocab.code("cell_type", "T cell"), vocab.code("sex", "female")
    assert t_cell > 0
    assert female > 0
    for spelling in ("t cell", " T  CELL ", "T\u00a0cell", "\uff34 \uff43\uff45\uff4c\uff4c", "T\u200b cell", "t cell\ufeff"):
        assert vocab.code("cell_type", spelling) == t_cell, spelling
    assert vocab.code("sex", "FEMALE") == female
    assert vocab.code("cell_type", "B cell") not in (0, t_cell)


def test_a_holdout_spelled_otherwise_holds_out_the_same_cells(processed, tmp_path: Path) -> None:
    from xmodal.families.census._soma import store_obs

    _project(tmp_path, holdout=[{"cell_type": "t  CELL", "sex": "Female"}])
    for stage in ("ingest", "preprocess"):
        got = xmodal(tmp_path, stage, "--dataset", "cen")
        assert got.rc == 0, got.stderr[-3000:]
    split = store_obs(tmp_path / "data/processed/cen/store")["split"].astype(str)
    before = store_obs(processed[0] / "data/processed/cen/store")["split"].astype(str)
    assert split.sort_index().equals(before.sort_index())
    assert json.loads((tmp_path / "data/processed/cen/schema.json").read_text())["holdout"] == [HELD]


@pytest.mark.parametrize(("holdout", "needle"), [
    ([{"cell_type": "T cell", "sex": "unknown"}], "reads as no value"),
    ([{"cell_type": "T cell", "sex": "female"}, {"cell_type": "t  CELL", "sex": "Female"}], "list each combination once"),
])
def test_a_holdout_that_is_null_or_repeated_under_normalisation_is_refused(tmp_path: Path, holdout, needle) -> None:
    _project(tmp_path, holdout=holdout)
    assert_refused(xmodal(tmp_path, "ingest", "--dataset", "cen"), needle=("datasets.cen", needle))
    assert not (tmp_path / "data").exists()

"""Damaged census stores and processed files are clear errors (issue 28, point 6).

A Census-shaped collection given as a source, or a store ``xmodal ingest`` wrote, with ``obs``, ``var`` or ``X``
missing, the raw counts under another layer name, a fragment truncated or overwritten with random bytes; a
``var_value_filter`` that selects no gene; a damaged ``truth.npz``; an absurd synthetic size: each is exit 2 with
one message naming the store (or file) and what is wrong, no traceback, nothing written.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from _census import census_project, fragment_files, small_census, write_collection
from _cli import assert_refused, xmodal

pytest.importorskip("tiledbsoma")

EXP = Path("census_data/homo_sapiens")


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    counts, obs, var = small_census()
    return write_collection(tmp_path_factory.mktemp("template") / "census", counts, obs, var)


def _query_project(tmp_path: Path, collection: Path, **source: object) -> tuple[Path, Path]:
    store = Path(shutil.copytree(collection, tmp_path / "census"))
    census_project(tmp_path, {"kind": "cellxgene_census", "uri": str(store), "chunk_size": 16, **source})
    return tmp_path, store


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _overwrite(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def _the_data(array: Path) -> Path:
    return next(p for p in fragment_files(array) if p.name == "a0.tdb")  # the first attribute: the values


def _the_fragment_metadata(array: Path) -> Path:
    return next(p for p in fragment_files(array) if p.name == "__fragment_metadata.tdb")


# ------------------------------------------------------------------------ a collection given as the source
QUERY_DAMAGE = {
    "obs deleted": (lambda e: shutil.rmtree(e / "obs"), ("cannot read obs",)),
    "var deleted": (lambda e: shutil.rmtree(e / "ms/RNA/var"), ("cannot read ms['RNA'].var",)),
    "X deleted": (lambda e: shutil.rmtree(e / "ms/RNA/X"), ("cannot read ms['RNA'].X",)),
    "X fragment metadata truncated": (lambda e: _truncate(_the_fragment_metadata(e / "ms/RNA/X/raw")),
                                      ("cannot read X['raw']",)),
    "X values overwritten": (lambda e: _overwrite(_the_data(e / "ms/RNA/X/raw")), ("cannot read", "X['raw']")),
    "obs fragment overwritten": (lambda e: _overwrite(_the_fragment_metadata(e / "obs")), ("cannot read obs",)),
}


@pytest.mark.parametrize("damage", list(QUERY_DAMAGE))
def test_a_damaged_census_collection_is_named_with_what_is_wrong(tmp_path: Path, collection: Path,
                                                                 damage: str) -> None:
    root, store = _query_project(tmp_path, collection)
    change, needle = QUERY_DAMAGE[damage]
    change(store / EXP)
    assert_refused(xmodal(root, "ingest", "--dataset", "c"), needle=(str(store), *needle))
    assert not (root / "data/ingested/c").exists()


def test_raw_counts_under_another_layer_name_are_named_with_the_layers_there(tmp_path: Path) -> None:
    counts, obs, var = small_census()
    store = write_collection(tmp_path / "census", counts, obs, var, layer="counts")
    census_project(tmp_path, {"kind": "cellxgene_census", "uri": str(store)})
    assert_refused(xmodal(tmp_path, "ingest", "--dataset", "c"),
                   needle=(str(store), "has no layer 'raw'", "its layers: 'counts'"))
    assert not (tmp_path / "data/ingested/c").exists()


def test_a_gene_filter_that_selects_no_gene_is_refused(tmp_path: Path, collection: Path) -> None:
    root, store = _query_project(tmp_path, collection, var_value_filter="feature_name == 'NO_SUCH_GENE'")
    assert_refused(xmodal(root, "ingest", "--dataset", "c"),
                   needle=(str(store), "selects no gene", "NO_SUCH_GENE", "var_value_filter"))
    assert not (root / "data/ingested/c").exists()


# ------------------------------------------------------------------------ a store xmodal wrote, read by preprocess
@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = census_project(tmp_path_factory.mktemp("ingested"),
                          {"kind": "synthetic_census", "n_cells": 120, "n_genes": 20, "chunk_size": 40})
    got = xmodal(root, "ingest", "--dataset", "c")
    assert got.rc == 0, got.stderr[-2000:]
    return root


STORE_DAMAGE = {
    "obs deleted": (lambda s: shutil.rmtree(s / "obs"), "store", ("cannot read obs",)),
    "X['raw'] deleted": (lambda s: shutil.rmtree(s / "ms/RNA/X/raw"), "store", ("cannot read X['raw']",)),
    "X values overwritten": (lambda s: _overwrite(_the_data(s / "ms/RNA/X/raw")), "store", ("cannot read",)),
    "truth.npz overwritten": (lambda s: _overwrite(s.parent / "truth.npz"), "truth.npz",
                              ("cannot read the planted model",)),
    "truth.npz truncated": (lambda s: _truncate(s.parent / "truth.npz"), "truth.npz",
                            ("cannot read the planted model",)),
    "truth.npz of other genes": (lambda s: _fewer_genes(s.parent / "truth.npz"), "truth.npz",
                                 ("the planted model is damaged", "does not fit the rest of the model")),
}


def _fewer_genes(path: Path) -> None:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["base"] = arrays["base"][:5]
    np.savez(path, **arrays)


@pytest.mark.parametrize("damage", list(STORE_DAMAGE))
def test_a_damaged_ingested_store_is_named_by_preprocess(tmp_path: Path, ingested: Path, damage: str) -> None:
    root = Path(shutil.copytree(ingested, tmp_path / "project"))
    change, named, needle = STORE_DAMAGE[damage]
    store = root / "data/ingested/c/store"
    change(store)
    assert_refused(xmodal(root, "preprocess", "--dataset", "c"),
                   needle=(str(store) if named == "store" else str(store.parent / named), *needle))
    assert not (root / "data/processed/c").exists()


def test_a_truth_of_fewer_cells_is_refused_where_it_is_used(tmp_path: Path) -> None:
    """A truth.npz of other data (fewer cells) is refused when the evaluation asks for a cell it lacks."""
    from xmodal.errors import XmodalInputError
    from xmodal.families.census._synthetic import CensusSim, synthetic_census

    sim = synthetic_census(n_cells=30, n_genes=12, seed=0)
    truth = CensusSim.load_truth(sim.save_truth(tmp_path / "truth.npz"))
    with pytest.raises(XmodalInputError, match=r"truth.npz: the planted model does not fit these data: cell 31"):
        truth.true_expression(np.array([3, 30]), sim.obs.iloc[[3, 4]])


# ------------------------------------------------------------------------ an absurd synthetic size
def test_an_absurd_synthetic_census_is_refused_up_front_by_its_memory(tmp_path: Path) -> None:
    census_project(tmp_path, {"kind": "synthetic_census", "n_cells": 10**9, "n_genes": 10**6})
    start = time.monotonic()
    assert_refused(xmodal(tmp_path, "ingest", "--dataset", "c"),
                   needle=("source.n_cells = 1,000,000,000", "source.n_genes = 1,000,000", "TiB of memory",
                           "lower source.n_cells or source.n_genes"))
    assert time.monotonic() - start < 60  # the CLI's start-up; the estimate itself is instant (below)
    assert not (tmp_path / "data/ingested/c").exists()


def test_the_memory_estimate_is_quick_and_lets_usual_sizes_through() -> None:
    from xmodal.families.census._synthetic import memory_estimate, synthetic_census

    start = time.monotonic()
    huge = memory_estimate(n_cells=10**12, n_genes=10**9)
    assert time.monotonic() - start < 1
    assert huge > 2**50
    usual = memory_estimate(n_cells=12_000, n_genes=2_000)  # params.yaml's synthetic_census
    assert usual < 2**30
    sim = synthetic_census(n_cells=2_000, n_genes=500, seed=0)  # the estimate's count term covers what is made
    stored = 2 * 12 * sim.counts.nnz
    assert memory_estimate(n_cells=2_000, n_genes=500) - 5 * 4096 * 8 * 500 - 1024 * 2_000 >= stored

"""Outputs reproduce: the same params give the same bytes whatever the caller's thread settings, and a census store
written twice is the same files (issue 28, point 12): what a fresh clone's ``dvc repro`` needs to leave the
committed ``dvc.lock`` as it is."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _cli import ENV, tiny_params, write_params, xmodal

REPO_ROOT = Path(__file__).resolve().parents[2]
CENSUS = {"family": "census", "fields": ["cell_type", "sex", "tissue_general", "assay"],
          "source": {"kind": "synthetic_census", "n_cells": 900, "n_genes": 60, "chunk_size": 300, "seed": 3}}
#: large enough that BLAS and torch split their sums between two threads (measured: at 2 threads the PCA
#: components and every trained model came out with other bytes before the thread count was pinned)
PAIRED = {"family": "paired", "source": {"kind": "synthetic", "n_cells": 600, "dim_a": 40, "dim_b": 300,
                                         "n_clusters": 4, "seed": 2}}
GEOADVAE = {"dim": 64, "latent_dim": 8, "max_iter": 40, "batch_size": 64, "phase_durations": [10, 10, 10],
            "prior_clusters": 4, "prior_loss_warmup": 5, "checkpoint_every": 20, "log_every": 10}


def _files(folder: Path) -> dict[str, str]:
    """What DVC hashes of an output folder: every file's path and the MD5 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()  # noqa: S324 - DVC's own hash
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _params() -> dict:
    params = tiny_params()
    params["datasets"] = {"pd": PAIRED, "cs": CENSUS}
    params["preprocess"] = {"paired": {"n_pcs": 20}, "census": {"n_top_genes": 50, "chunk_size": 300}}
    params["methods"] = {"gwot": {"max_iter": 30, "anneal_steps": 1, "epsilon": 0.01}, "geoadvae": GEOADVAE}
    params["runs"] = {"pd-gwot": {"dataset": "pd", "method": "gwot"}, "pd-geoadvae": {"dataset": "pd", "method": "geoadvae"}}
    return params


def _run_all(root: Path, threads: str | None) -> None:
    env = {k: v for k, v in ENV.items() if not k.endswith("_NUM_THREADS")}
    if threads is not None:
        env |= {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
    for stage in ("ingest", "preprocess"):
        got = xmodal(root, stage, "--dataset", "pd", env=env)
        assert got.rc == 0, got.stderr[-2000:]
    for method in ("gwot", "geoadvae"):  # BLAS and numba (gwot); torch, as every deep method (geoadvae)
        got = xmodal(root, "train", "--dataset", "pd", "--method", method, env=env)
        assert got.rc == 0, got.stderr[-2000:]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to run two threads")
def test_outputs_are_the_same_bytes_whatever_the_callers_thread_settings(tmp_path: Path) -> None:
    """One run with one thread everywhere, one with two (the machine's cores, as `make demo` without
    OMP_NUM_THREADS gets): every output DVC tracks is the same bytes. (The census store's own reproducibility is
    the next test; its models train through the same engine as geoadvae.)"""
    roots = {}
    for threads in ("1", "2"):
        root = tmp_path / f"threads-{threads}"
        root.mkdir()
        write_params(root, _params())
        _run_all(root, threads)
        roots[threads] = root
    for output in ("data/ingested/pd", "data/processed/pd", "models/pd/gwot", "models/pd/geoadvae"):
        one, two = _files(roots["1"] / output), _files(roots["2"] / output)
        assert one, output
        changed = sorted(k for k in one.keys() | two.keys() if one.get(k) != two.get(k))
        assert not changed, (output, changed[:5])


def test_a_census_store_written_twice_is_the_same_files(tmp_path: Path) -> None:
    """TileDB names every fragment after the clock and a random label: the store is renamed canonically."""
    stores = []
    for name in ("first", "second"):
        root = tmp_path / name
        root.mkdir()
        write_params(root, _params())
        for stage in ("ingest", "preprocess"):
            assert xmodal(root, stage, "--dataset", "cs").rc == 0
        stores.append(root)
    for output in ("data/ingested/cs", "data/processed/cs"):
        first, second = _files(stores[0] / output), _files(stores[1] / output)
        assert any("__fragments" in k for k in first), sorted(first)[:5]  # a real TileDB store
        assert first == second, sorted(set(first.items()) ^ set(second.items()))[:6]


def test_a_canonical_store_reads_back_what_was_written(tmp_path: Path) -> None:
    import scipy.sparse as sp

    from xmodal.families.census._soma import store_blocks, store_obs, store_var, write_store
    from xmodal.families.census._synthetic import synthetic_census

    sim = synthetic_census(n_cells=400, n_genes=30, seed=1)
    fields = ["cell_type", "sex"]
    uri = write_store(tmp_path / "store", [(sim.counts[i:i + 100], sim.obs.iloc[i:i + 100][fields])
                                           for i in range(0, 400, 100)],
                      var=sim.var, n_cells=400, fields=fields,
                      values={f: sim.obs[f].dropna().astype(str).unique() for f in fields})
    names = [p.name for p in (uri / "obs" / "__fragments").iterdir()]
    assert len(names) == 4
    assert all(name.startswith("__1000000000000_1000000000000_") for name in names), names
    counts = sp.vstack([block for _, block in store_blocks(uri, chunk_size=150)])
    assert (counts != sim.counts).nnz == 0
    obs = store_obs(uri, fields)
    assert list(obs.index) == list(sim.obs.index)
    for f in fields:
        assert obs[f].dtype == "category"
        assert list(obs[f].astype(object)) == list(sim.obs[f].astype(object))
    assert list(store_var(uri).index) == list(sim.var.index)


def test_threads_in_params_reach_every_library(tmp_path: Path) -> None:
    """`threads` is what the libraries get, whatever OMP_NUM_THREADS says, and the caller's settings come back."""
    import torch
    from threadpoolctl import threadpool_info

    from xmodal._threads import pinned_threads

    torch.set_num_threads(1)
    before = {(i["internal_api"], i["num_threads"]) for i in threadpool_info()}
    with pinned_threads(2):
        assert torch.get_num_threads() == 2
        assert os.environ["OMP_NUM_THREADS"] == "2"
        assert {i["num_threads"] for i in threadpool_info()} == {2}
        # a child process (a DataLoader worker, a tool) reads the variables
        code = "import os; print(os.environ['OPENBLAS_NUM_THREADS'])"
        assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout.strip() == "2"
    assert torch.get_num_threads() == 1
    assert {(i["internal_api"], i["num_threads"]) for i in threadpool_info()} == before


def test_the_lock_records_threads_for_every_stage() -> None:
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        assert "threads" in stage["do"]["params"], name
    assert yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["threads"] == 1


def test_a_params_file_without_threads_gets_one(tmp_path: Path) -> None:
    from xmodal.config import load_params

    params = tiny_params()
    params.pop("threads")
    assert load_params(write_params(tmp_path, params)).threads == 1

"""gwot: SCOT's preset reproduced exactly, its self-tuning, starts that keep a flipped optimum from winning,
the anchor solver (no n × n matrix), determinism and save/load."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from xmodal._pot import import_pot
from xmodal.families.paired import synthetic_paired
from xmodal.methods.gwot import GWOT, GWOTConfig
from xmodal.methods.gwot._solver import (
    GWResult,
    cell_distances,
    entropic_gw,
    normalize_cells,
    scot_grid,
    scot_tune,
)
from xmodal.metrics.alignment import foscttm


def _pairs(data) -> np.ndarray:
    return np.array([data.b.obs_names.get_loc(m) for m in data.a.obs["match"]])


def _scot_geometry(x: np.ndarray, k: int) -> np.ndarray:
    """SCOT's own construction, written out with the libraries SCOT calls (unit_normalize, kneighbors_graph,
    dijkstra, infinities to the finite maximum, divide by the maximum)."""
    from scipy.sparse.csgraph import dijkstra
    from sklearn.neighbors import kneighbors_graph
    from sklearn.preprocessing import normalize

    graph = kneighbors_graph(normalize(x, norm="l2", axis=1), k, mode="connectivity", metric="correlation",
                             include_self=True)
    dist = dijkstra(graph, directed=False)
    top = np.nanmax(dist[dist != np.inf])
    dist[dist > top] = top
    return dist / dist.max()


def test_the_scot_geometry_is_scots_construction() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 7)) + rng.normal(size=(1, 7))
    ours = cell_distances(normalize_cells(x, "l2"), distance="geodesic", n_neighbors=15, graph_mode="connectivity",
                          metric="correlation")
    np.testing.assert_allclose(ours, _scot_geometry(x, 15), atol=1e-12)


def test_the_solver_reaches_pots_entropic_gw_coupling() -> None:
    ot = import_pot()
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(70, 5)), rng.normal(size=(60, 9))
    d_a, d_b = _scot_geometry(x, 10), _scot_geometry(y, 10)
    p, q = ot.unif(70), ot.unif(60)
    reference = ot.gromov.entropic_gromov_wasserstein(d_a, d_b, p, q, "square_loss", epsilon=5e-3, max_iter=1000,
                                                      tol=1e-9)
    ours = entropic_gw(d_a, d_b, p, q, epsilon=5e-3, max_iter=1000, tol=1e-9)
    assert ours.converged
    assert np.abs(ours.coupling - reference).max() < 1e-3 * reference.max()
    const, h_a, h_b = ot.gromov.init_matrix(d_a, d_b, p, q, "square_loss")
    assert ours.gw_loss == pytest.approx(float(ot.gromov.gwloss(const, h_a, h_b, reference)), rel=1e-4)


def test_the_scot_preset_fills_only_the_fields_left_unset() -> None:
    scot = GWOTConfig(preset="scot")
    assert (scot.normalize, scot.distance, scot.graph, scot.metric) == ("l2", "geodesic", "connectivity", "correlation")
    assert (scot.epsilon, scot.anneal_steps, scot.init, scot.n_init, scot.tune) == (1e-3, 0, "product", 1, "none")
    assert GWOTConfig(preset="scot", epsilon=0.01).epsilon == 0.01
    assert GWOTConfig(preset="scot_tuned").tune == "scot"


def test_self_tuning_follows_scots_three_rounds_and_keeps_the_lowest_gw_distance() -> None:
    calls: list[tuple[int, float]] = []

    def solve(k: int, eps: float) -> GWResult:
        calls.append((k, eps))
        loss = (np.log10(eps) + 2.6) ** 2 + ((k - 40) / 100) ** 2  # lowest near eps = 10^-2.6, k = 40
        return GWResult(coupling=np.ones((2, 2)) / 4, gw_loss=loss, converged=True)

    tuned = scot_tune(solve, 600, n_neighbors=50)
    assert len(calls) == 20 == len(tuned.trials)
    k0, eps_grid, ks = scot_grid(600, 50)
    assert k0 == 50
    assert [c[0] for c in calls[:6]] == [50] * 6
    np.testing.assert_allclose([c[1] for c in calls[:6]], eps_grid)  # 1e-2 … 1e-3, six values
    assert [c[0] for c in calls[6:10]] == list(ks) == [20, 46, 73, 100]
    best = min(tuned.trials, key=lambda t: t["gw_loss"])
    assert (tuned.n_neighbors, tuned.epsilon) == (best["n_neighbors"], best["epsilon"])
    # a solve that does not converge is never chosen
    tuned = scot_tune(lambda k, e: GWResult(np.ones((2, 2)), -1.0 if k == 20 else 1.0, converged=k != 20), 600,
                      n_neighbors=50)
    assert tuned.n_neighbors != 20


@pytest.fixture(scope="module")
def mirrored() -> object:
    """400 cells of the pbmc68k panels, preprocessed: from the product coupling alone, entropic GW falls into a
    flipped optimum (FOSCTTM above 0.4)."""
    from dataclasses import replace

    import anndata as ad
    import pandas as pd

    from xmodal.families.paired import PairedPreprocessConfig, pbmc68k_paired
    from xmodal.families.paired._preprocess import fit_preprocessor

    data = pbmc68k_paired()
    keep = np.sort(np.random.default_rng(0).choice(data.a.n_obs, size=400, replace=False))
    a = data.a[keep]
    b = data.b[[data.b.obs_names.get_loc(m) for m in a.obs["match"]]]

    def reduced(adata: ad.AnnData) -> ad.AnnData:
        x = fit_preprocessor(adata, cfg=PairedPreprocessConfig(), kind="continuous", name="x").transform(adata)
        return ad.AnnData(X=x, obs=adata.obs.copy(), var=pd.DataFrame(index=[f"pc{i}" for i in range(x.shape[1])]))

    return replace(data, a=reduced(a), b=reduced(b))


def test_a_flipped_optimum_does_not_win_when_a_better_start_exists(mirrored) -> None:
    data = mirrored
    pairs = _pairs(data)

    def score(model: GWOT) -> float:
        return foscttm(model.transform(data.a.X, modality="a"), model.transform(data.b.X, modality="b")[pairs])

    scot_like = GWOT(GWOTConfig(distance="geodesic", init="product", n_init=1)).fit(data, seed=0)
    assert score(scot_like) > 0.35, "precondition: SCOT's geometry from the product start lands in a flipped optimum"
    robust = GWOT(GWOTConfig()).fit(data, seed=0)
    assert score(robust) < 0.15
    starts = robust.info["starts"]
    assert {s["distance"] for s in starts} == {"euclidean", "geodesic"}
    assert len(starts) == 4
    winner = min(starts, key=lambda s: s["score"])
    assert (robust.info["distance"], robust.info["init"]) == (winner["distance"], winner["init"])
    for kind in ("euclidean", "geodesic"):  # each score is the sum of GW distances relative to each geometry's best
        best = min(s["gw_by_geometry"][kind] for s in starts)
        assert winner["gw_by_geometry"][kind] >= best


def test_the_anchor_solver_holds_no_cells_by_cells_matrix() -> None:
    n = 5000
    data = synthetic_paired(n_cells=n, seed=0, dim_a=20, dim_b=60)
    tracemalloc.start()
    model = GWOT(GWOTConfig(n_init=1, n_anchors=300)).fit(data, seed=0)
    model.transform(data.b.X, modality="b")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert model.info["solver"] == "anchors"
    assert model.info["n_reference_b"] <= 300
    assert peak < n * n * 8 / 2, f"peak {peak / 2**20:.0f} MiB: an n × n float64 matrix was allocated"


def test_the_anchor_solver_tracks_the_exact_one() -> None:
    data = synthetic_paired(n_cells=900, seed=0, dim_a=20, dim_b=60)
    pairs = _pairs(data)
    results = {}
    for solver in ("exact", "anchors"):
        model = GWOT(GWOTConfig(n_init=1, solver=solver, n_anchors=250)).fit(data, seed=0)
        results[solver] = foscttm(model.transform(data.a.X, modality="a"),
                                  model.transform(data.b.X, modality="b")[pairs])
    assert results["exact"] < 0.2, results
    assert abs(results["anchors"] - results["exact"]) < 0.05, results


def test_a_fit_is_deterministic_and_survives_save_and_load(tmp_path: Path) -> None:
    data = synthetic_paired(n_cells=200, seed=3, dim_a=10, dim_b=30)
    first = GWOT(GWOTConfig(n_anchors=50, max_exact_cells=100)).fit(data, seed=5)
    second = GWOT(GWOTConfig(n_anchors=50, max_exact_cells=100)).fit(data, seed=5)
    for name, value in first.arrays.items():
        np.testing.assert_array_equal(value, second.arrays[name])
    loaded = GWOT.load(first.save(tmp_path / "m"))
    new_b = synthetic_paired(n_cells=200, seed=3, dim_a=10, dim_b=30, batch=1).b.X
    np.testing.assert_array_equal(loaded.transform(new_b, modality="b"), first.transform(new_b, modality="b"))
    assert loaded.info["solver"] == "anchors"


def test_the_history_counts_one_step_over_every_start() -> None:
    data = synthetic_paired(n_cells=80, seed=2, dim_a=8, dim_b=20, n_clusters=3)
    model = GWOT(GWOTConfig(max_iter=5, tol=0.0)).fit(data, seed=0)
    steps = [h["step"] for h in model.history]
    assert steps == list(range(len(steps)))
    assert sorted({h["start"] for h in model.history}) == [0, 1, 2, 3]  # two starts in each of two geometries

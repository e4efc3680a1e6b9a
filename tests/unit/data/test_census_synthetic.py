"""The synthetic Census generator: Census-shaped, planted effects visible in its counts, true counterfactuals."""

from __future__ import annotations

import numpy as np
import pytest

from xmodal.families.census._synthetic import FIELD_DESIGN, synthetic_census
from xmodal.families.census._vocab import CENSUS_FIELDS


@pytest.fixture(scope="module")
def sim():
    return synthetic_census(n_cells=3000, n_genes=600, seed=3)


def _lognorm(counts) -> np.ndarray:
    x = np.asarray(counts.todense(), dtype=np.float64)
    return np.log1p(1e4 * x / x.sum(axis=1, keepdims=True))


def test_census_shaped(sim) -> None:
    assert sim.counts.shape == (3000, 600)
    assert list(sim.obs.columns) == list(CENSUS_FIELDS)
    assert all(str(sim.obs[c].dtype) == "category" for c in sim.obs.columns)
    assert sim.obs.index.is_unique
    assert sim.var.index.name == "feature_id"
    assert "feature_name" in sim.var
    data = sim.counts.data
    assert np.all(data == np.round(data))
    assert data.min() > 0
    density = sim.counts.nnz / np.prod(sim.counts.shape)
    assert 0.03 < density < 0.15, density
    assert (sim.obs["development_stage"] == "unknown").mean() > 0.5  # null-like, as in Census
    # sex is a donor property
    assert sim.obs.groupby("donor_id", observed=True)["sex"].nunique().max() == 1


def test_deterministic_under_seed() -> None:
    a, b = synthetic_census(n_cells=200, n_genes=50, seed=1), synthetic_census(n_cells=200, n_genes=50, seed=1)
    assert (a.counts != b.counts).nnz == 0
    assert a.obs.equals(b.obs)
    assert (a.counts != synthetic_census(n_cells=200, n_genes=50, seed=2).counts).nnz > 0


def test_planted_field_effect_shows_in_the_counts(sim) -> None:
    """The observed difference between two assays follows the planted assay effect (all genes touched)."""
    x = _lognorm(sim.counts)
    values = FIELD_DESIGN["assay"][0]
    observed = x[(sim.obs["assay"] == values[1]).to_numpy()].mean(0) - x[(sim.obs["assay"] == values[0]).to_numpy()].mean(0)
    planted = sim.effects["assay"][1] - sim.effects["assay"][0]
    expressed = x.mean(0) > 0.5  # where counts can show a log-fold change
    assert np.corrcoef(observed[expressed], planted[expressed])[0, 1] > 0.8


def test_true_expression_of_the_own_context_matches_the_counts(sim) -> None:
    cells = np.arange(3000)
    truth = sim.true_expression(cells, sim.obs)
    observed = _lognorm(sim.counts)
    r = np.corrcoef(truth.mean(0), observed.mean(0))[0, 1]
    assert r > 0.95, r
    # a counterfactual changes only the genes its field touches
    other = sim.obs.copy()
    other["disease"] = other["disease"].map({"normal": "COVID-19", "COVID-19": "normal"}).astype(str)
    delta = sim.log_rate(cells[:50], other.iloc[:50]) - sim.log_rate(cells[:50], sim.obs.iloc[:50])
    touched = np.any(sim.effects["disease"] != 0, axis=0)
    assert np.allclose(delta[:, ~touched], 0)
    assert np.abs(delta[:, touched]).mean() > 0.1


def test_unplanted_value_is_refused(sim) -> None:
    other = sim.obs.iloc[:3].copy()
    other["sex"] = "unknown"
    with pytest.raises(ValueError, match="sex: 'unknown' is not a planted value"):
        sim.true_expression(np.arange(3), other)

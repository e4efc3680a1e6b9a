"""The synthetic Multiome generator: planted cell-cycle programs in RNA and ATAC, and a planted domain shift."""

from __future__ import annotations

import re

import numpy as np
import pytest
from pydantic import ValidationError

from xmodal.families.multiome._config import SyntheticMultiomeSource
from xmodal.families.multiome._data import (
    G2M_GENES,
    PHASES,
    S_GENES,
    MultiomeData,
    synthetic_multiome,
)


@pytest.fixture(scope="module")
def data() -> MultiomeData:
    return synthetic_multiome(n_cells=600, seed=0)


def _normalised(x: object) -> np.ndarray:
    """CPM → log1p → row L2, as the seed normalises both modalities."""
    dense = np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64)
    dense = np.log1p(dense / np.clip(dense.sum(axis=1, keepdims=True), 1, None) * 1e6)
    return dense / np.clip(np.linalg.norm(dense, axis=1, keepdims=True), 1e-12, None)


def test_shapes_names_and_sparsity(data: MultiomeData) -> None:
    n_genes = len(S_GENES) + len(G2M_GENES) + 400
    assert data.rna.shape == (1200, n_genes)
    assert data.atac.shape == (1200, n_genes * 3 + 1000)
    assert data.rna.obs_names.equals(data.atac.obs_names)
    assert data.domains == ["source", "target"]
    assert list(data.rna.obs["phase"].cat.categories) == list(PHASES)
    names = list(data.atac.var_names)
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"chr([1-9]|1\d|2[0-2]):\d+-\d+", n) for n in names)
    values = data.atac.X.data
    assert set(np.unique(values)) <= {1.0, 2.0}  # binary-ish; zeros are not stored
    assert 1 - data.atac.X.nnz / np.prod(data.atac.shape) > 0.85
    linked = data.atac.var["gene"]
    assert (linked == "").sum() == 1000
    assert set(linked[linked != ""]) == set(data.rna.var_names)


def test_seeded_and_phase_fractions(data: MultiomeData) -> None:
    again = synthetic_multiome(n_cells=600, seed=0)
    assert (again.atac.X != data.atac.X).nnz == 0
    assert (again.rna.X != data.rna.X).nnz == 0
    other = synthetic_multiome(n_cells=600, seed=1)
    assert (other.atac.X != data.atac.X).nnz > 0
    shares = data.rna.obs["phase"].value_counts(normalize=True)
    for phase, share in zip(PHASES, (0.55, 0.30, 0.15), strict=True):
        assert shares[phase] == pytest.approx(share, abs=0.05)


def test_programs_are_planted_in_both_modalities(data: MultiomeData) -> None:
    phase = data.rna.obs["phase"].astype(str).to_numpy()
    counts = data.rna.X.toarray()
    rna = counts / counts.sum(axis=1, keepdims=True)  # per-cell shares (CPM / 1e6)
    s_genes = (data.rna.var["program"] == "S").to_numpy()
    g2m_genes = (data.rna.var["program"] == "G2M").to_numpy()
    assert rna[phase == "S"][:, s_genes].mean() > 2 * rna[phase == "G1"][:, s_genes].mean()
    assert rna[phase == "G2M"][:, g2m_genes].mean() > 2 * rna[phase == "G1"][:, g2m_genes].mean()
    assert rna[phase == "S"][:, g2m_genes].mean() < 1.2 * rna[phase == "G1"][:, g2m_genes].mean()
    opened = data.atac.X.toarray() > 0
    g2m_peaks = data.atac.var["gene"].isin(G2M_GENES).to_numpy()
    background = (data.atac.var["gene"] == "").to_numpy()
    assert opened[phase == "G2M"][:, g2m_peaks].mean() > 2 * opened[phase == "G1"][:, g2m_peaks].mean()
    # peaks linked to no gene do not follow the phase
    assert opened[phase == "G2M"][:, background].mean() == pytest.approx(
        opened[phase == "G1"][:, background].mean(), rel=0.1)


def test_the_planted_domain_shift_hurts_a_source_only_classifier() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    def source_vs_target(shift: float) -> tuple[float, float]:
        d = synthetic_multiome(n_cells=800, domain_shift=shift, seed=2)
        src, tgt = d.domain("source"), d.domain("target")
        x_s, y_s = _normalised(src.atac.X), src.atac.obs["phase"].astype(str).to_numpy()
        x_t, y_t = _normalised(tgt.atac.X), tgt.atac.obs["phase"].astype(str).to_numpy()
        clf = LogisticRegression(max_iter=2000).fit(x_s[:600], y_s[:600])
        return (f1_score(y_s[600:], clf.predict(x_s[600:]), average="macro"),
                f1_score(y_t, clf.predict(x_t), average="macro"))

    held_out, target = source_vs_target(1.0)
    assert held_out > 0.65  # ATAC carries the phase
    assert target < held_out - 0.10  # ... but a source-only model loses it on the shifted domain
    held_out0, target0 = source_vs_target(0.0)
    assert target0 > held_out0 - 0.06  # without a shift, the domains are alike


def test_domain_subset_and_config_errors(data: MultiomeData) -> None:
    target = data.domain("target")
    assert target.rna.n_obs == 600
    assert set(target.atac.obs["domain"]) == {"target"}
    with pytest.raises(ValueError, match="no domain 'x'"):
        data.domain("x")
    with pytest.raises(ValidationError, match="summing to 1"):
        SyntheticMultiomeSource(phase_fractions=(0.5, 0.3, 0.3))
    with pytest.raises(ValidationError, match="distinct"):
        SyntheticMultiomeSource(domains=("a", "a"))
    with pytest.raises(ValueError, match="same cells"):
        MultiomeData(rna=data.rna, atac=data.atac[::-1].copy())

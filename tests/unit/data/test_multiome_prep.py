"""Multiome preprocessing functions: normalisation, peak filter, peak mapping, phase scoring, splits."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from xmodal.errors import XmodalInputError
from xmodal.families.multiome._data import synthetic_multiome
from xmodal.families.multiome._prep import (
    frequent_peaks,
    looks_normalized,
    map_peaks,
    normalize_cpm_log1p_l2,
    parse_peaks,
    score_phases,
)
from xmodal.families.multiome._preprocess import split_per_domain


def test_normalisation_is_cpm_log1p_then_unit_rows() -> None:
    counts = np.array([[1.0, 3.0, 0.0], [0.0, 0.0, 0.0], [2.0, 2.0, 4.0]])
    got = normalize_cpm_log1p_l2(sp.csr_matrix(counts)).toarray()
    expected = np.log1p(counts / np.clip(counts.sum(1, keepdims=True), 1, None) * 1e6)
    expected /= np.clip(np.linalg.norm(expected, axis=1, keepdims=True), 1e-12, None)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert not got[1].any()  # an empty cell stays empty
    already = np.array([[0.5, 0.25], [0.1, 0.0]])
    assert looks_normalized(already)
    assert not looks_normalized(counts)
    np.testing.assert_array_equal(normalize_cpm_log1p_l2(already).toarray(), already.astype(np.float32))
    assert not np.allclose(normalize_cpm_log1p_l2(already, force=True).toarray(), already)


def test_frequent_peaks_counts_cells_with_the_peak_open() -> None:
    atac = ad.AnnData(X=sp.csr_matrix(np.array([[1, 0, 0], [2, 1, 0], [0, 0, 0], [1, 0, 0]], dtype=np.float32)))
    np.testing.assert_array_equal(frequent_peaks(atac, min_fraction=0.25), [True, True, False])
    np.testing.assert_array_equal(frequent_peaks(atac, min_fraction=0.5), [True, False, False])
    with pytest.raises(ValueError, match="min_fraction"):
        frequent_peaks(atac, min_fraction=1.0)


def test_parse_peaks_accepts_common_spellings_and_names_a_bad_one() -> None:
    table = parse_peaks(["chr1:100-200", "chrX-5-9", "chr2_10_20"])
    assert table.to_numpy().tolist() == [["chr1", 100, 200], ["chrX", 5, 9], ["chr2", 10, 20]]
    with pytest.raises(XmodalInputError, match="'chr1:200-100'") as err:
        parse_peaks(["chr1:1-2", "chr1:200-100"])
    assert err.value.column == 2


def test_map_peaks_by_overlap_with_zero_imputation() -> None:
    reference = ["chr1:100-200", "chr1:300-400", "chr2:100-200"]
    query = ad.AnnData(
        X=sp.csr_matrix(np.array([[1, 5, 7, 2], [3, 0, 0, 1]], dtype=np.float32)),
        var=pd.DataFrame(index=["chr1:150-250", "chr1:390-500", "chr3:100-200", "chr2:120-180"]),
    )
    mapped, matched = map_peaks(reference, query, min_overlap=0.5)
    # chr1:150-250 overlaps chr1:100-200 by 50 of 100 → mapped; chr1:390-500 by 10 → not; chr3 → nowhere
    np.testing.assert_array_equal(mapped.toarray(), [[1, 0, 2], [3, 0, 1]])
    assert matched.tolist() == [True, False, True]  # chr1:300-400 is zero-imputed
    strict, _ = map_peaks(reference, query, min_overlap=0.9)
    np.testing.assert_array_equal(strict.toarray(), [[0, 0, 2], [0, 0, 1]])


def test_score_phases_recovers_the_planted_phases() -> None:
    data = synthetic_multiome(n_cells=300, seed=4)
    phases = score_phases(data.rna)
    truth = data.rna.obs["phase"].astype(str)
    assert (phases.to_numpy() == truth.to_numpy()).mean() > 0.85
    assert set(phases) == {"G1", "S", "G2M"}
    no_genes = ad.AnnData(X=data.rna.X, obs=data.rna.obs, var=pd.DataFrame(index=[f"g{i}" for i in
                                                                                range(data.rna.n_vars)]))
    with pytest.raises(XmodalInputError, match="S-phase genes are measured"):
        score_phases(no_genes)


def test_split_is_stratified_per_domain_and_phase() -> None:
    obs = synthetic_multiome(n_cells=400, seed=0).rna.obs
    split = split_per_domain(obs, validation=0.15, test=0.15, seed=0)
    assert split.equals(split_per_domain(obs, validation=0.15, test=0.15, seed=0))
    table = pd.crosstab([obs["domain"].astype(str), obs["phase"].astype(str)], split)
    shares = table.div(table.sum(axis=1), axis=0)
    assert (abs(shares["test"] - 0.15) < 0.02).all()
    assert (abs(shares["validation"] - 0.15) < 0.02).all()
    with pytest.raises(ValueError, match="validation \\+ test < 1"):
        split_per_domain(obs, validation=0.5, test=0.5)

"""The SNARE-seq-like simulation: unequal types, two nonlinear count read-outs of very different width, known
pairing, and the reduced features published paired sets ship; and ``preprocess.paired.scale: auto``."""

from __future__ import annotations

import numpy as np
import pytest

from xmodal.families.paired import PairedPreprocessConfig, load_source, simulated_multiome
from xmodal.families.paired._config import MultiomicSimSource
from xmodal.families.paired._preprocess import fit_preprocessor


def test_counts_behave_like_rna_and_atac() -> None:
    data = simulated_multiome(n_cells=400, n_genes=300, n_peaks=1500, seed=0)
    atac, rna = np.asarray(data.a.X), np.asarray(data.b.X)
    assert atac.shape == (400, 1500)
    assert rna.shape == (400, 300)
    assert set(np.unique(atac)) <= {0.0, 1.0}
    assert 0.01 < atac.mean() < 0.12
    assert (rna == np.round(rna)).all()
    assert rna.min() >= 0
    gene = rna[:, rna.mean(axis=0).argmax()]
    assert gene.var() > 1.5 * gene.mean(), "RNA should be overdispersed (negative binomial), not Poisson"
    sizes = data.a.obs["label"].value_counts()
    assert sizes.max() > 3 * sizes.min(), "cell types should be of unequal size"
    # the pairing is known and B is shuffled
    partner = data.b.obs_names.get_indexer(data.a.obs["match"])
    assert (partner >= 0).all()
    assert (partner != np.arange(400)).any()
    assert (data.b.obs["label"].to_numpy()[partner] == data.a.obs["label"].to_numpy()).all()


def test_reduced_features_are_topic_proportions_and_pcs_and_the_source_is_deterministic() -> None:
    source = MultiomicSimSource(n_cells=300, n_genes=300, n_peaks=1000, features="reduced", seed=4)
    first, second = load_source(source), load_source(source)
    np.testing.assert_array_equal(first.a.X, second.a.X)
    np.testing.assert_array_equal(first.b.X, second.b.X)
    topics = np.asarray(first.a.X)
    assert topics.shape == (300, 19)
    assert (topics >= 0).all()
    np.testing.assert_allclose(topics.sum(axis=1), 1.0, atol=1e-4)
    assert first.b.X.shape == (300, 10)
    assert first.kinds == ("continuous", "continuous")
    other = simulated_multiome(n_cells=300, n_genes=300, n_peaks=1000, features="reduced", seed=5)
    assert not np.allclose(other.a.X, topics)


@pytest.mark.parametrize(("scale", "width", "scaled"), [("auto", 10, False), ("auto", 80, True), (True, 10, True),
                                                         (False, 80, False)])
def test_scale_auto_z_scores_only_when_pca_runs(scale: object, width: int, scaled: bool) -> None:
    import anndata as ad

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, width)) * np.linspace(0.1, 5, width)
    prep = fit_preprocessor(ad.AnnData(X=x.astype(np.float32)), cfg=PairedPreprocessConfig(scale=scale, n_pcs=30),
                            kind="continuous", name="a")
    assert (prep.components is not None) == (width > 30)
    assert np.allclose(prep.scale, 1.0) != scaled

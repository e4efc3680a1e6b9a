"""Synthetic batches: another batch is new cells of the same experiment; a batch effect is a planted shift."""

from __future__ import annotations

import numpy as np
import pandas as pd

from xmodal.families.paired._synthetic import synthetic_paired

SMALL = {"n_cells": 600, "dim_a": 20, "dim_b": 50, "n_clusters": 3}


def _type_means(data, key: str) -> pd.DataFrame:
    adata = data.modality(key)
    x = np.log1p(np.asarray(adata.X, dtype=float)) if key == "b" else np.asarray(adata.X, dtype=float)
    return pd.DataFrame(x, index=adata.obs_names).groupby(adata.obs["label"].to_numpy()).mean()


def _gap(first, second, key: str) -> float:
    """Largest difference of per-type feature means, in units of the first data's feature SD."""
    x = first.modality(key).X
    sd = (np.log1p(np.asarray(x, dtype=float)) if key == "b" else np.asarray(x, dtype=float)).std(axis=0)
    return float(((_type_means(first, key) - _type_means(second, key)).abs() / sd).to_numpy().max())


def test_batch_zero_is_the_experiment_as_it_always_was() -> None:
    plain = synthetic_paired(**SMALL, seed=4)
    batch0 = synthetic_paired(**SMALL, seed=4, batch=0, batch_effect=0.0)
    np.testing.assert_array_equal(plain.a.X, batch0.a.X)
    np.testing.assert_array_equal(plain.b.X, batch0.b.X)


def test_another_batch_draws_new_cells_of_the_same_cell_types() -> None:
    first = synthetic_paired(**SMALL, seed=4)
    batch = synthetic_paired(**SMALL, seed=4, batch=1)
    other_experiment = synthetic_paired(**SMALL, seed=5)
    assert not np.array_equal(first.a.X, batch.a.X)
    assert not set(first.a.obs_names) & set(batch.a.obs_names)  # cell ids are unique across batches
    assert batch.a.obs_names[0].endswith("-1")
    assert (batch.a.obs["match"].isin(batch.b.obs_names)).all()  # pairing still within the batch
    for key in ("a", "b"):
        same = _gap(first, batch, key)
        assert same < 0.5, f"{key}: type means of another batch moved by {same:.2f} SD"
        assert _gap(first, other_experiment, key) > 3 * same  # another seed is another experiment


def test_batch_effect_shifts_features_by_about_the_planted_size() -> None:
    clean = synthetic_paired(**SMALL, seed=4, batch=1)
    shifted = synthetic_paired(**SMALL, seed=4, batch=1, batch_effect=1.0)
    # the same cells (same labels), only measured with an offset
    assert (clean.a.obs["label"].to_numpy() == shifted.a.obs["label"].to_numpy()).all()
    x0, x1 = np.asarray(clean.a.X, dtype=float), np.asarray(shifted.a.X, dtype=float)
    offsets = (x1 - x0).mean(axis=0) / x0.std(axis=0)
    assert 0.5 < offsets.std() < 1.5  # offsets ~ N(0, batch_effect) SDs per feature
    log_ratio = np.log((np.asarray(shifted.b.X).mean(axis=0) + 1) / (np.asarray(clean.b.X).mean(axis=0) + 1))
    assert log_ratio.std() > 0.5

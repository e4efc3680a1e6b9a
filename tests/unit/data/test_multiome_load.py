"""Loading a ``multiome`` dataset from files: several domains in different formats, peaks mapped onto the first
domain's by overlap, phases scored where no labels are given, and preprocessing fitted on training cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xmodal.errors import XmodalInputError
from xmodal.families.multiome._config import MultiomeFilesSource, MultiomePreprocessConfig
from xmodal.families.multiome._data import MultiomeData, synthetic_multiome
from xmodal.families.multiome._io import load_multiome
from xmodal.families.multiome._prep import parse_peaks
from xmodal.families.multiome._preprocess import preprocess_multiome


@pytest.fixture(scope="module")
def two_lines() -> MultiomeData:
    return synthetic_multiome(n_cells=200, n_background_genes=40, n_background_peaks=100, domains=("reh", "sup"),
                              seed=4)


def _write_csv(data: MultiomeData, folder: Path, *, labels: bool, shift_peaks: int = 0) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    rna = data.rna.to_df()
    atac = data.atac.to_df()
    if shift_peaks:  # the same peaks called a little differently: mapped by overlap
        coords = parse_peaks(list(atac.columns))
        atac.columns = [f"{c}:{s + shift_peaks}-{e + shift_peaks}" for c, s, e in coords.itertuples(index=False)]
    rna.to_csv(folder / "rna.csv")
    atac.iloc[::-1].to_csv(folder / "atac.csv")  # another cell order: matched by id
    out = {"rna": str(folder / "rna.csv"), "atac": str(folder / "atac.csv")}
    if labels:
        data.rna.obs[["phase"]].to_csv(folder / "labels.csv")
        out["labels"] = str(folder / "labels.csv")
    return out


def test_csv_and_h5mu_domains_with_mapped_peaks_and_scored_phases(two_lines: MultiomeData, tmp_path: Path) -> None:
    reh, sup = two_lines.domain("reh"), two_lines.domain("sup")
    first = _write_csv(reh, tmp_path / "reh", labels=True)
    second = _write_csv(sup, tmp_path / "sup", labels=False, shift_peaks=40)
    source = MultiomeFilesSource(domains=[{"name": "reh", "format": "csv", **first},
                                          {"name": "sup", "format": "csv", **second}])
    data = load_multiome(source)
    assert data.domains == ["reh", "sup"]
    assert list(data.atac.var_names) == list(reh.atac.var_names)  # the first domain's peaks
    got = data.domain("sup").atac.X.toarray()
    np.testing.assert_array_equal(got, sup.atac.X.toarray())  # every shifted peak found its reference peak
    obs = data.rna.obs
    assert not obs.loc[obs["domain"] == "reh", "phase_scored"].any()
    assert obs.loc[obs["domain"] == "sup", "phase_scored"].all()
    scored = obs.loc[obs["domain"] == "sup", "phase"].astype(str).to_numpy()
    assert (scored == sup.rna.obs["phase"].astype(str).to_numpy()).mean() > 0.8  # planted phases recovered

    import mudata as md

    md.MuData({"rna": sup.rna, "atac": sup.atac}).write(tmp_path / "sup.h5mu")
    source = MultiomeFilesSource(domains=[{"name": "reh", "format": "csv", **first},
                                          {"name": "sup", "format": "h5mu", "path": str(tmp_path / "sup.h5mu")}])
    from_h5mu = load_multiome(source)
    assert from_h5mu.domain("sup").rna.obs["phase"].astype(str).tolist() == sup.rna.obs["phase"].astype(str).tolist()


def test_file_errors_name_the_domain_and_file(two_lines: MultiomeData, tmp_path: Path) -> None:
    files = _write_csv(two_lines.domain("reh"), tmp_path / "reh", labels=True)
    source = MultiomeFilesSource(domains=[{"name": "reh", "format": "csv", **files},
                                          {"name": "sup", "format": "10x_h5", "path": str(tmp_path / "none.h5")}])
    with pytest.raises(XmodalInputError, match=r"domains\[sup\]\.path: file not found"):
        load_multiome(source)
    with pytest.raises(ValueError, match="format csv needs rna and atac"):
        MultiomeFilesSource(domains=[{"name": "x", "format": "csv"}])
    with pytest.raises(ValueError, match="distinct"):
        MultiomeFilesSource(domains=[{"name": "x", "format": "h5mu", "path": "a"},
                                     {"name": "x", "format": "h5mu", "path": "b"}])
    far = _write_csv(two_lines.domain("sup"), tmp_path / "far", labels=True, shift_peaks=10_000_000)
    source = MultiomeFilesSource(domains=[{"name": "reh", "format": "csv", **files},
                                          {"name": "sup", "format": "csv", **far}])
    with pytest.raises(XmodalInputError, match="none of its peaks overlaps"):
        load_multiome(source)


def test_preprocessing_is_fitted_on_training_cells_only(two_lines: MultiomeData) -> None:
    cfg = MultiomePreprocessConfig(n_top_genes=50)
    processed, fitted = preprocess_multiome(two_lines, cfg=cfg)
    split = processed.rna.obs["split"].astype(str)
    counts = pd.crosstab([processed.rna.obs["domain"], processed.rna.obs["phase"]], split)
    assert (counts["test"] > 0).all()
    assert (counts["validation"] > 0).all()
    assert processed.atac.n_vars == len(fitted["atac"].features) < two_lines.atac.n_vars
    assert processed.rna.n_vars == 50
    norms = np.sqrt(np.asarray(processed.atac.X.multiply(processed.atac.X).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms[norms > 0], 1.0, rtol=1e-5)  # CPM → log1p → L2
    # held-out cells do not shape the features: change them and the same features are kept
    held_out = (split != "train").to_numpy()
    changed = MultiomeData(rna=two_lines.rna.copy(), atac=two_lines.atac.copy())
    for adata in (changed.rna, changed.atac):
        x = adata.X.toarray()
        x[held_out] = np.random.default_rng(0).poisson(3.0, size=(int(held_out.sum()), x.shape[1]))
        adata.X = x
    _, refitted = preprocess_multiome(changed, cfg=cfg)
    for name in ("rna", "atac"):
        np.testing.assert_array_equal(refitted[name].features, fitted[name].features)
    # new data missing a peak: an error naming it, or zeros when asked
    atac = two_lines.atac[:, two_lines.atac.var_names != fitted["atac"].features[0]]
    with pytest.raises(XmodalInputError, match="features the model needs are missing"):
        fitted["atac"].transform(atac)
    assert fitted["atac"].transform(atac, fill_missing=True).shape == (two_lines.atac.n_obs,
                                                                       len(fitted["atac"].features))


def test_learned_peak_mapper_predicts_the_peaks_a_domain_did_not_measure(two_lines: MultiomeData,
                                                                          tmp_path: Path) -> None:
    reh, sup = two_lines.domain("reh"), two_lines.domain("sup")
    dropped = np.zeros(sup.atac.n_vars, dtype=bool)
    dropped[::3] = True  # the second line's peak calling missed every third peak
    full = _write_csv(reh, tmp_path / "reh", labels=True)
    partial = _write_csv(MultiomeData(rna=sup.rna, atac=sup.atac[:, ~dropped].copy()), tmp_path / "sup",
                         labels=True)
    complete = _write_csv(sup, tmp_path / "sup_all", labels=True)
    data = load_multiome(MultiomeFilesSource(domains=[{"name": "reh", "format": "csv", **full},
                                                      {"name": "sup", "format": "csv", **partial}]))
    assert data.atac.var["measured[reh]"].all()
    np.testing.assert_array_equal(data.atac.var["measured[sup]"].to_numpy(), ~dropped)
    truth = load_multiome(MultiomeFilesSource(domains=[{"name": "reh", "format": "csv", **full},
                                                       {"name": "sup", "format": "csv", **complete}]))
    assert "measured[sup]" not in truth.atac.var  # nothing was left at zero

    cfg = MultiomePreprocessConfig(n_top_genes=None, min_peak_fraction=0.0, peak_mapper_rank=20, peak_mapper_alpha=1.0)
    expected, _ = preprocess_multiome(truth, cfg=cfg)
    zero, _ = preprocess_multiome(data, cfg=cfg)
    learned, fitted = preprocess_multiome(data, cfg=cfg.model_copy(update={"peak_impute": "learned"}))
    assert list(fitted["atac"].mappers) == ["sup"]
    cells = (learned.atac.obs["domain"] == "sup").to_numpy()

    def error(got: MultiomeData) -> float:
        diff = got.atac.X[cells][:, dropped].toarray() - expected.atac.X[cells][:, dropped].toarray()
        return float(np.mean(diff**2))

    assert error(learned) < 0.95 * error(zero)  # closer to the peaks' true values than zeros
    # what it is for: a phase classifier trained on the first line's (complete) training cells transfers to the
    # second line much better with the predicted peaks than with zeros (measured: 0.945 vs 0.795; all peaks 0.91)
    from sklearn.linear_model import LogisticRegression

    def transfer(got: MultiomeData) -> float:
        obs = got.atac.obs
        train = ((obs["domain"] == "reh") & (obs["split"].astype(str) == "train")).to_numpy()
        clf = LogisticRegression(max_iter=2000).fit(got.atac.X[train], obs["phase"].astype(str)[train])
        return float((clf.predict(got.atac.X[cells]) == obs["phase"].astype(str)[cells]).mean())

    assert transfer(learned) > transfer(zero) + 0.05
    np.testing.assert_array_equal(learned.atac.X[~cells].toarray(), zero.atac.X[~cells].toarray())  # reh as is
    # fitted on training cells only: changing held-out reh cells changes no mapper weight
    held_out = (learned.atac.obs["split"].astype(str) != "train").to_numpy()
    changed = MultiomeData(rna=data.rna.copy(), atac=data.atac.copy())
    x = changed.atac.X.toarray()
    x[held_out] = np.random.default_rng(0).poisson(2.0, size=(int(held_out.sum()), x.shape[1]))
    changed.atac.X = x
    _, refitted = preprocess_multiome(changed, cfg=cfg.model_copy(update={"peak_impute": "learned"}))
    for name, value in fitted["atac"].mappers["sup"].arrays().items():
        np.testing.assert_array_equal(refitted["atac"].mappers["sup"].arrays()[name], value)
    # saved with the preprocessor; new cells of that domain are imputed the same way
    from xmodal.families.multiome._preprocess import MultiomePreprocessor

    fitted["atac"].save(tmp_path / "prep")
    loaded = MultiomePreprocessor.load(tmp_path / "prep")
    new = data.atac[cells].copy()
    np.testing.assert_allclose(loaded.transform(new).toarray(), learned.atac.X[cells].toarray(), atol=1e-6)
    # raw cells of that line without the peaks it never measured: accepted only when the line is named
    unmeasured = fitted["atac"].features[fitted["atac"].mappers["sup"].unmeasured]
    bare = new[:, ~new.var_names.isin(unmeasured)].copy()
    np.testing.assert_allclose(loaded.transform(bare).toarray(), learned.atac.X[cells].toarray(), atol=1e-6)
    bare.obs = bare.obs.drop(columns="domain")
    with pytest.raises(XmodalInputError, match="features the model needs are missing"):
        loaded.transform(bare)

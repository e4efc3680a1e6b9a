"""The ``census`` family behind the stages' interface (:class:`~xmodal.families._base.Family`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from xmodal.errors import XmodalInputError
from xmodal.families._base import HEADLINE, Evaluation, Family, FeatureProjection, Projection
from xmodal.families.census._io import STORE

#: cells read for the drift monitor (a seeded sample of a split or of new data)
MONITOR_CELLS = 20_000


class CensusFamily(Family):
    """Raw counts (cells × genes, sparse, streamed from a SOMA store) with categorical metadata fields."""

    name = "census"

    def data_path(self, folder: Path) -> Path:
        """The SOMA store of a stage folder."""
        return Path(folder) / STORE

    def ingest(self, cfg: Any, *, out: Path, source_root: Path, seed: int) -> str:
        """Read any census source into ``store/`` + ``schema.json`` (+ ``truth.npz`` for the synthetic one)."""
        from xmodal.families.census._io import ingest_census

        schema = ingest_census(cfg, out=out, root=source_root)
        return f"{schema['n_obs']} cells × {schema['n_vars']} genes, fields {schema['fields']}"

    def preprocess(self, ingested: Path, *, out: Path, cfg: Any, split: Any, dataset: Any = None
                   ) -> dict[str, dict[str, int]]:
        """Hold out the combinations, split the rest, build the vocabulary and select genes on training cells."""
        from xmodal.families.census._preprocess import preprocess_census

        return preprocess_census(ingested, out=out, cfg=cfg, split=split, dataset=dataset)

    def load_preprocessor(self, directory: Path) -> Any:
        """A :class:`~xmodal.families.census._preprocess.CensusPreprocessor`."""
        from xmodal.families.census._preprocess import CensusPreprocessor

        return CensusPreprocessor.load(directory)

    def training_data(self, processed: Path) -> Any:
        """A :class:`~xmodal.families.census._data.CensusData` over the training and validation rows only."""
        from xmodal.families.census._data import read_processed

        return read_processed(processed)

    def evaluate(self, model_dir: Path, processed: Path, *, out: Path, cfg: Any, title: str) -> Evaluation:
        """Counterfactuals of held-out combinations on test cells, reconstruction, field influence, baselines."""
        from xmodal.families.census._evaluate import evaluate_all

        metrics = evaluate_all(model_dir, processed, out=out, cfg=cfg, title=title)
        shown = {k: round(v, 3) for k, v in metrics[HEADLINE].items()
                 if k in ("cf_mean_change_r2", "cf_cell_change_r2", "mean_shift_cell_change_r2",
                          "additive_shift_cell_change_r2", "target_accuracy",
                          "recon_mse")}
        return Evaluation(metrics=metrics, summary=shown)

    def holdout(self, ingested: Path, processed: Path) -> Any:
        """The cells of the held-out combinations (and a reconstruction sample) in their ingested genes."""
        from xmodal.families.census._evaluate import read_holdout

        return read_holdout(processed, ingested=ingested)

    def score(self, model: Any, preprocessors: dict[str, Any], cells: Any, *, cfg: Any) -> dict[str, float]:
        """The counterfactual metrics of ``model`` on raw held-out cells, brought to its genes by the preprocessor."""
        from xmodal.families.census._evaluate import _through, score_holdout

        if not hasattr(model, "counterfactual"):
            raise XmodalInputError(f"a {type(model).__name__} cannot make counterfactuals, so it cannot be scored on "
                                   "census data", fix="register a census method (cycleae)")
        return score_holdout(model, _through(preprocessors["rna"], cells) if "rna" in preprocessors else cells)

    def monitor_reference(self, ingested: Path, processed: Path, *, min_cells: int) -> dict[str, Any]:
        """``rna`` → a sample of the training cells in their ingested genes (raw counts)."""
        from xmodal.families.census._soma import store_obs

        obs = store_obs(Path(processed) / STORE)
        rows = obs.loc[obs["split"].astype(str) == "train", "ingested_row"].to_numpy()
        if len(rows) < min_cells:
            raise XmodalInputError(f"{len(rows)} training cells; drift tests need at least monitor.min_cells = "
                                   f"{min_cells}", path=processed, fix="use a larger dataset or lower monitor.min_cells")
        return {"rna": _sample(Path(ingested), rows)}

    def monitor_new(self, path: Path, *, names: list[str], min_cells: int) -> dict[str, Any]:
        """``rna`` → a sample of the cells of a folder ``xmodal ingest`` wrote for a census dataset."""
        from xmodal.families.census._io import read_ingested

        schema = read_ingested(path)
        n = int(schema["n_obs"])
        if n < min_cells:
            raise XmodalInputError(f"the new data have {n} cells; drift tests need at least monitor.min_cells = "
                                   f"{min_cells}", path=path, fix="collect more cells or lower monitor.min_cells")
        return {"rna": _sample(Path(path), np.arange(n))}

    def projection(self, cells: Any, *, n_components: int, cfg: Any, seed: int) -> Projection:
        """log1p(target_sum · counts / Σ counts) of the most variable genes (at most ``n_top_genes``), then PCA."""
        return _LogPCA.fit(cells, n_components=n_components, n_top=cfg.n_top_genes or 2000, target_sum=cfg.target_sum,
                           seed=seed)


def _sample(folder: Path, rows: np.ndarray, *, seed: int = 0) -> Any:
    """An AnnData of up to :data:`MONITOR_CELLS` of ``rows`` of the store in ``folder`` (raw counts, ``obs``)."""
    import anndata as ad

    from xmodal.families.census._soma import store_rows, store_var

    rows = np.asarray(rows)
    if len(rows) > MONITOR_CELLS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=MONITOR_CELLS, replace=False))
    counts, obs = store_rows(folder / STORE, rows)
    return ad.AnnData(X=counts, obs=obs, var=store_var(folder / STORE))


class _LogPCA(FeatureProjection):
    """``x ↦ PCA(log1p(target_sum · x[:, genes] / Σ x[:, genes]))``, fitted on reference cells."""

    def __init__(self, features: np.ndarray, target_sum: float, mean: np.ndarray, components: np.ndarray) -> None:
        self.features, self.target_sum, self.mean, self.components = features, target_sum, mean, components

    @classmethod
    def fit(cls, cells: Any, *, n_components: int, n_top: int, target_sum: float, seed: int) -> _LogPCA:
        from sklearn.decomposition import PCA

        from xmodal.families.census._preprocess import lognormalize_csr

        x = lognormalize_csr(sp.csr_matrix(cells.X), target_sum=target_sum)
        mean = np.asarray(x.mean(axis=0)).ravel()
        var = np.asarray(x.multiply(x).mean(axis=0)).ravel() - mean**2
        keep = np.sort(np.argsort(-var, kind="stable")[: min(n_top, int((var > 0).sum()) or 1)])
        features = np.asarray(cells.var_names[keep], dtype=str)
        dense = lognormalize_csr(sp.csr_matrix(cells.X)[:, keep], target_sum=target_sum).toarray()
        k = max(2, min(n_components, dense.shape[0] - 1, dense.shape[1]))
        pca = PCA(n_components=k, random_state=seed, svd_solver="full").fit(dense)
        return cls(features, target_sum, pca.mean_, pca.components_)

    def transform(self, cells: Any) -> np.ndarray:
        from xmodal.families.census._chunks import check_counts
        from xmodal.families.census._preprocess import lognormalize_csr

        x = sp.csr_matrix(cells[:, list(self.features)].X, dtype=np.float32)
        check_counts(x, path="the new cells")
        return (lognormalize_csr(x, target_sum=self.target_sum).toarray() - self.mean) @ self.components.T

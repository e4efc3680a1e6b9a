"""The ``multiome`` family behind the stages' interface (:class:`~xmodal.families._base.Family`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import scipy.sparse as sp

from xmodal.data import split_names
from xmodal.errors import XmodalInputError
from xmodal.families._base import (
    HEADLINE,
    SPLITS,
    Evaluation,
    Family,
    FeatureProjection,
    Projection,
)
from xmodal.families.multiome._data import DOMAIN, MultiomeData

SPLIT = "split"
MODALITIES = ("rna", "atac")


class MultiomeFamily(Family):
    """RNA + ATAC of the same cells in one or more domains (cell lines), with cell-cycle phases."""

    name = "multiome"

    def ingest(self, cfg: Any, *, out: Path, source_root: Path, seed: int) -> str:
        """Read every domain (synthetic, 10x ``.h5``, CSV or ``.h5mu``), map peaks, write them into ``out``."""
        from xmodal.families.multiome._io import load_multiome, write_multiome

        data = load_multiome(cfg.source, root=source_root, seed=seed)
        write_multiome(data, out)
        return f"domains {data.domains}, rna {data.rna.shape}, atac {data.atac.shape}"

    def preprocess(self, ingested: Path, *, out: Path, cfg: Any, split: Any, dataset: Any = None
                   ) -> dict[str, dict[str, int]]:
        """Split every domain (stratified by phase), select features and normalise, fitted on training cells."""
        from xmodal.data import DATA_FILE
        from xmodal.errors import reading
        from xmodal.families.multiome._io import read_multiome, write_multiome
        from xmodal.families.multiome._preprocess import preprocess_multiome

        data = read_multiome(ingested)
        with reading(Path(ingested) / DATA_FILE):
            processed, fitted = preprocess_multiome(data, cfg=cfg, split=split)
        write_multiome(processed, out)
        for name, prep in fitted.items():
            prep.save(Path(out) / f"preprocessor_{name}")
        obs = processed.rna.obs
        return {s: {k: int(v) for k, v in obs[obs[SPLIT].astype(str) == s][DOMAIN].astype(str).value_counts()
                    .sort_index().items()} for s in SPLITS}

    def load_preprocessor(self, directory: Path) -> Any:
        """A :class:`~xmodal.families.multiome._preprocess.MultiomePreprocessor`."""
        from xmodal.families.multiome._preprocess import MultiomePreprocessor

        return MultiomePreprocessor.load(directory)

    def training_data(self, processed: Path) -> MultiomeData:
        """Training and validation cells (validation selects the kept model); the test cells are dropped."""
        from xmodal.families.multiome._io import read_multiome
        from xmodal.families.multiome._preprocess import without_test

        return without_test(read_multiome(processed))

    def fit_kwargs(self, cfg: Any) -> dict[str, Any]:
        """The source and target domains of the dataset."""
        return {"source_domain": cfg.source_domain, "target_domain": cfg.target_domain}

    def evaluate(self, model_dir: Path, processed: Path, *, out: Path, cfg: Any, title: str) -> Evaluation:
        """Phase classification per split and domain; confusion matrices, shared space, training curve."""
        from xmodal.families.multiome._evaluate import evaluate_all

        metrics = evaluate_all(model_dir, processed, out=out, cfg=cfg, title=title)
        shown = {k: round(v, 3) for k, v in metrics[HEADLINE].items() if k.endswith(("macro_f1", "accuracy"))
                 and "balanced" not in k}
        return Evaluation(metrics=metrics, summary=shown)

    def confusion(self, model_dir: Path, processed: Path, *, cfg: Any) -> tuple[list[str], list[list[int]]]:
        """The target domain's ATAC test cells: rows the true phase, columns the predicted one."""
        from xmodal.families.multiome._evaluate import label_confusion

        return label_confusion(model_dir, processed)

    def holdout(self, ingested: Path, processed: Path) -> MultiomeData:
        """The test cells of every domain in their ingested features, with the processed ``obs``."""
        from xmodal.families.multiome._io import read_multiome

        raw = read_multiome(ingested)
        obs = read_multiome(processed).rna.obs
        names = split_names(obs, HEADLINE, ingested_names=raw.rna.obs_names, ingested=ingested, processed=processed)
        if len(names) == 0:
            raise XmodalInputError("the processed data have no test cells", path=processed,
                                   fix="set split.test_fraction > 0 and re-run `dvc repro`")
        return MultiomeData(**{m: ad.AnnData(X=getattr(raw, m)[names].X, obs=obs.loc[names].copy(),
                                             var=getattr(raw, m).var.copy()) for m in MODALITIES})

    def score(self, model: Any, preprocessors: dict[str, Any], cells: Any, *, cfg: Any) -> dict[str, float]:
        """Phase metrics of ``model`` on raw held-out cells, each modality through its preprocessor, with each
        metric's trivial baseline on those cells (``trivial/…``, ``classes/…``) for the gates."""
        from xmodal.families.multiome._evaluate import evaluate_phases

        mods = {m: preprocessors[m].transform_adata(getattr(cells, m)) for m in MODALITIES}
        return evaluate_phases(model, MultiomeData(**mods), split=HEADLINE, trivial=True)

    def monitor_reference(self, ingested: Path, processed: Path, *, min_cells: int) -> dict[str, ad.AnnData]:
        """``rna`` and ``atac`` → the training cells of every domain in their ingested features."""
        from xmodal.families.multiome._io import read_multiome

        raw = read_multiome(ingested)
        names = split_names(read_multiome(processed).rna.obs, "train", ingested_names=raw.rna.obs_names,
                            ingested=ingested, processed=processed)
        if len(names) < min_cells:
            raise XmodalInputError(f"{len(names)} training cells; drift tests need at least monitor.min_cells = "
                                   f"{min_cells}", path=processed, fix="use a larger dataset or lower monitor.min_cells")
        return {m: getattr(raw, m)[names].copy() for m in MODALITIES}

    def monitor_new(self, path: Path, *, names: list[str], min_cells: int) -> dict[str, ad.AnnData]:
        """``rna`` and ``atac`` of a folder (or ``.h5mu``) written like ``data/ingested/<name>``."""
        from xmodal.families.multiome._io import read_multiome

        new = read_multiome(path)
        if new.rna.n_obs < min_cells:
            raise XmodalInputError(f"the new data have {new.rna.n_obs} cells; drift tests need at least "
                                   f"monitor.min_cells = {min_cells}", path=path,
                                   fix="collect more cells or lower monitor.min_cells")
        return {m: getattr(new, m) for m in names}

    def projection(self, cells: ad.AnnData, *, n_components: int, cfg: Any, seed: int) -> Projection:
        """The most variable features (at most ``n_top_genes``) after CPM → log1p → L2, then PCA."""
        return _NormalizedPCA.fit(cells, n_components=n_components, n_top=cfg.n_top_genes or 2000, seed=seed)


class _NormalizedPCA(FeatureProjection):
    """``x ↦ PCA(L2(log1p(CPM(x[:, features]))))``, fitted on reference cells (raw counts or normalised values)."""

    def __init__(self, features: np.ndarray, normalize: bool, mean: np.ndarray, components: np.ndarray) -> None:
        self.features, self.normalize, self.mean, self.components = features, normalize, mean, components

    @classmethod
    def fit(cls, cells: ad.AnnData, *, n_components: int, n_top: int, seed: int) -> _NormalizedPCA:
        from sklearn.decomposition import PCA

        from xmodal.families.multiome._prep import looks_normalized

        counts = sp.csr_matrix(cells.X, dtype=np.float32)
        normalize = not looks_normalized(counts)
        x = _normalized(counts, normalize)
        mean = np.asarray(x.mean(axis=0)).ravel()
        var = np.asarray(x.multiply(x).mean(axis=0)).ravel() - mean**2
        keep = np.sort(np.argsort(var)[::-1][: min(n_top, int((var > 0).sum()) or 1)])
        features = np.asarray(cells.var_names[keep], dtype=str)
        dense = _normalized(counts[:, keep], normalize).toarray()
        k = max(2, min(n_components, dense.shape[0] - 1, dense.shape[1]))
        pca = PCA(n_components=k, random_state=seed, svd_solver="full").fit(dense)
        return cls(features, normalize, pca.mean_, pca.components_)

    def transform(self, cells: ad.AnnData) -> np.ndarray:
        from xmodal.data import first_nonfinite

        x = sp.csr_matrix(cells[:, list(self.features)].X, dtype=np.float32)
        bad = first_nonfinite(x)
        if bad is not None:
            raise XmodalInputError(f"value {bad[2]:g} of cell {str(cells.obs_names[bad[0]])!r} is NaN or infinite",
                                   row=bad[0] + 1, column=str(self.features[bad[1]]),
                                   fix="give finite values (run the new data through `xmodal ingest`)")
        return (_normalized(x, self.normalize).toarray() - self.mean) @ self.components.T


def _normalized(x: sp.csr_matrix, normalize: bool) -> sp.csr_matrix:
    from xmodal.families.multiome._prep import normalize_cpm_log1p_l2

    return normalize_cpm_log1p_l2(x, force=True) if normalize else sp.csr_matrix(x)

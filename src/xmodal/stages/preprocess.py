"""``preprocess``: split cells, then log1p / feature selection / scaling / PCA fitted on training cells only."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from xmodal._io import atomic_dir, prepare_output
from xmodal.config import Params, PreprocessConfig
from xmodal.data import LABEL, MATCH, SPLIT, PairedData, read_paired, write_paired
from xmodal.stages._paths import ingested_dir, processed_dir

log = logging.getLogger(__name__)


@dataclass
class ModalityPreprocessor:
    """A fitted per-modality transform: ``x ↦ PCA(scale(select(log1p?(x))))``.

    Attributes
    ----------
    log1p
        Whether counts were log1p-transformed.
    features
        Names of the kept input features, shape ``(d_kept,)``.
    mean, scale
        Per-feature centring and scaling of the kept features, ``(d_kept,)``.
    components
        PCA loadings ``(n_pcs, d_kept)`` or ``None``.
    """

    log1p: bool
    features: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray | None = None
    pca_mean: np.ndarray | None = None
    explained_variance_ratio: list[float] = field(default_factory=list)

    def transform(self, adata: ad.AnnData) -> np.ndarray:
        """Apply to cells with (at least) the kept features; returns ``(n, n_pcs or d_kept)`` float32."""
        missing = pd.Index(self.features).difference(adata.var_names)
        if len(missing):
            from xmodal.errors import XmodalInputError

            raise XmodalInputError(
                f"{len(missing)} features the preprocessor needs are missing (first: {missing[0]!r})",
                fix="provide data with the same features as the training data",
            )
        x = _dense(adata[:, list(self.features)].X)
        if self.log1p:
            x = np.log1p(np.clip(x, 0, None))
        x = (x - self.mean) / self.scale
        if self.components is not None:
            x = (x - self.pca_mean) @ self.components.T
        return x.astype(np.float32)


@dataclass(frozen=True)
class PreprocessResult:
    """What ``preprocess`` wrote and how many cells landed in each split."""

    output: Path
    n_train: dict[str, int]
    n_validation: dict[str, int]


def run(params: Params, *, dataset: str, root: str | Path = ".") -> PreprocessResult:
    """Split ``data/ingested/<dataset>`` and preprocess it into ``data/processed/<dataset>``.

    Parameters
    ----------
    params
        ``params.preprocess`` holds every setting.
    dataset
        Dataset name.
    root
        Project root.

    Returns
    -------
    PreprocessResult
        Output folder and split sizes per modality (for a ``multiome`` dataset: a
        :class:`~xmodal.stages.preprocess_multiome.MultiomePreprocessResult`, sizes per domain).
    """
    if params.dataset(dataset).family == "multiome":
        from xmodal.stages import preprocess_multiome

        return preprocess_multiome.run(params, dataset=dataset, root=root)  # type: ignore[return-value]
    cfg = params.preprocess
    out = prepare_output(processed_dir(root, dataset))
    data = read_paired(ingested_dir(root, dataset))
    data = assign_split(data, cfg=cfg)
    processed, fitted = preprocess_paired(data, cfg=cfg)
    with atomic_dir(out) as tmp:
        write_paired(processed, tmp)
        for key, prep in fitted.items():
            save_preprocessor(prep, tmp / f"preprocessor_{key}")
    counts = {k: processed.modality(k).obs[SPLIT].value_counts() for k in ("a", "b")}
    result = PreprocessResult(
        output=out,
        n_train={k: int(v.get("train", 0)) for k, v in counts.items()},
        n_validation={k: int(v.get("validation", 0)) for k, v in counts.items()},
    )
    log.info("preprocess %s: train %s, validation %s → %s", dataset, result.n_train, result.n_validation, out)
    return result


def assign_split(data: PairedData, *, cfg: PreprocessConfig) -> PairedData:
    """Return a copy of ``data`` with ``obs["split"]`` in both modalities.

    Known partners always land in the same split (so validation pairs are unseen in training);
    unpaired cells are split per modality. Stratified by ``label`` when ``cfg.stratify``.
    """
    rng = np.random.default_rng(cfg.seed)
    a, b = data.a.copy(), data.b.copy()
    split_a = np.full(a.n_obs, "", dtype=object)
    split_b = np.full(b.n_obs, "", dtype=object)
    ia, ib = data.true_pairs()
    if len(ia):
        labels = a.obs[LABEL].astype(str).to_numpy()[ia] if cfg.stratify and LABEL in a.obs else None
        val = _validation_mask(len(ia), labels, cfg.validation_fraction, rng)
        split_a[ia] = np.where(val, "validation", "train")
        split_b[ib] = split_a[ia]
    for adata, split in ((a, split_a), (b, split_b)):
        rest = np.flatnonzero(split == "")
        if len(rest):
            labels = adata.obs[LABEL].astype(str).to_numpy()[rest] if cfg.stratify and LABEL in adata.obs else None
            val = _validation_mask(len(rest), labels, cfg.validation_fraction, rng)
            split[rest] = np.where(val, "validation", "train")
        adata.obs[SPLIT] = pd.Categorical(split, categories=["train", "validation"])
    return replace(data, a=a, b=b)


def _validation_mask(n: int, labels: np.ndarray | None, fraction: float, rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == g) for g in np.unique(labels)]
    for idx in groups:
        # at least one validation and one training cell per group; singletons stay in training
        n_val = min(max(round(fraction * len(idx)), 1), len(idx) - 1) if len(idx) >= 2 else 0
        mask[rng.choice(idx, size=n_val, replace=False)] = True
    return mask


def preprocess_paired(
    data: PairedData, *, cfg: PreprocessConfig
) -> tuple[PairedData, dict[str, ModalityPreprocessor]]:
    """Fit one :class:`ModalityPreprocessor` per modality on its training cells and apply it to all cells.

    Returns
    -------
    tuple
        The transformed data (``X``: ``(n, n_pcs)``, obs kept) and the fitted preprocessors ``{"a", "b"}``.
    """
    out, fitted = {}, {}
    for key in ("a", "b"):
        adata = data.modality(key)
        train = adata[adata.obs[SPLIT] == "train"]
        prep = fit_preprocessor(train, cfg=cfg)
        x = prep.transform(adata)
        names = [f"pc_{i + 1}" for i in range(x.shape[1])] if prep.components is not None else list(prep.features)
        out[key] = ad.AnnData(X=x, obs=adata.obs.copy(), var=pd.DataFrame(index=names))
        fitted[key] = prep
    return replace(data, a=out["a"], b=out["b"]), fitted


def fit_preprocessor(train: ad.AnnData, *, cfg: PreprocessConfig) -> ModalityPreprocessor:
    """Fit log1p (auto: when the values are non-negative integers), top-variance selection, scaling and PCA."""
    x = _dense(train.X)
    use_log = cfg.log1p == "yes" or (cfg.log1p == "auto" and _looks_like_counts(x))
    if use_log:
        x = np.log1p(x)
    var = x.var(axis=0)
    keep = np.flatnonzero(var > 0)
    if cfg.n_top_features is not None and len(keep) > cfg.n_top_features:
        keep = np.sort(keep[np.argsort(var[keep])[::-1][: cfg.n_top_features]])
    x = x[:, keep]
    mean = x.mean(axis=0) if cfg.scale else np.zeros(x.shape[1])
    scale = x.std(axis=0) if cfg.scale else np.ones(x.shape[1])
    scale[scale == 0] = 1.0
    prep = ModalityPreprocessor(log1p=use_log, features=np.asarray(train.var_names[keep], dtype=str), mean=mean, scale=scale)
    n_pcs = cfg.n_pcs
    if n_pcs is not None and n_pcs < min(x.shape):
        from sklearn.decomposition import PCA

        pca = PCA(n_components=n_pcs, random_state=cfg.seed, svd_solver="full").fit((x - mean) / scale)
        prep.components, prep.pca_mean = pca.components_, pca.mean_
        prep.explained_variance_ratio = [float(v) for v in pca.explained_variance_ratio_]
    return prep


def save_preprocessor(prep: ModalityPreprocessor, directory: Path) -> None:
    """Write a fitted preprocessor as ``meta.json`` + ``.npy`` arrays."""
    directory.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"log1p": prep.log1p, "explained_variance_ratio": prep.explained_variance_ratio,
                            "features": prep.features.tolist(), "pca": prep.components is not None}
    (directory / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    for name in ("mean", "scale", "components", "pca_mean"):
        value = getattr(prep, name)
        if value is not None:
            np.save(directory / f"{name}.npy", value, allow_pickle=False)


def load_preprocessor(directory: str | Path) -> ModalityPreprocessor:
    """Read a preprocessor written by :func:`save_preprocessor`."""
    directory = Path(directory)
    meta = json.loads((directory / "meta.json").read_text())
    arrays = {n: np.load(directory / f"{n}.npy") for n in ("mean", "scale", "components", "pca_mean")
              if (directory / f"{n}.npy").is_file()}
    return ModalityPreprocessor(log1p=meta["log1p"], features=np.asarray(meta["features"], dtype=str),
                                explained_variance_ratio=meta["explained_variance_ratio"], **arrays)


def load_any_preprocessor(directory: str | Path) -> Any:
    """Read a saved preprocessor of either family (``paired``: :class:`ModalityPreprocessor`; ``multiome``:
    :class:`~xmodal.stages.preprocess_multiome.MultiomePreprocessor`)."""
    meta = json.loads((Path(directory) / "meta.json").read_text())
    if meta.get("kind") == "multiome":
        from xmodal.stages.preprocess_multiome import MultiomePreprocessor

        return MultiomePreprocessor.load(directory)
    return load_preprocessor(directory)


def _looks_like_counts(x: np.ndarray) -> bool:
    return bool(x.size) and bool((x >= 0).all()) and bool(np.allclose(x, np.round(x))) and float(x.max()) > 1


def _dense(x: Any) -> np.ndarray:
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64)


__all__ = ["ModalityPreprocessor", "PreprocessResult", "assign_split", "fit_preprocessor", "load_any_preprocessor",
           "load_preprocessor", "preprocess_paired", "run", "save_preprocessor", MATCH]

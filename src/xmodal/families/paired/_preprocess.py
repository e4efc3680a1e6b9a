"""Preprocessing of the ``paired`` family: the split (pairs kept together), then log1p / feature selection /
scaling / PCA per modality, fitted on training cells only."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from xmodal._io import read_json
from xmodal.config import SplitConfig
from xmodal.data import SPLITS, split_cells
from xmodal.errors import XmodalInputError
from xmodal.families.paired._config import PairedPreprocessConfig
from xmodal.families.paired._data import LABEL, SPLIT, PairedData

log = logging.getLogger(__name__)


@dataclass
class ModalityPreprocessor:
    """A fitted per-modality transform: ``x ↦ PCA(scale(select(log1p?(x))))``.

    Attributes
    ----------
    log1p
        Whether counts were log1p-transformed.
    counts
        Whether the modality holds counts: new cells must then hold non-negative integers (a negative or
        fractional value is refused rather than clipped).
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
    counts: bool = False

    def transform(self, adata: ad.AnnData) -> np.ndarray:
        """Apply to cells with (at least) the kept features; returns ``(n, n_pcs or d_kept)`` float32.

        Raises
        ------
        XmodalInputError
            A kept feature is missing, a value is NaN/infinite, negative where log1p applies, or not an integer
            in a counts modality (naming the cell's row, the feature and the value).
        """
        missing = pd.Index(self.features).difference(adata.var_names)
        if len(missing):
            raise XmodalInputError(
                f"{len(missing)} of the {len(self.features)} features the preprocessor needs are missing (first: "
                f"{missing[0]!r})", fix="provide data with the same features as the training data",
            )
        x = _dense(adata[:, list(self.features)].X)
        bad = ~np.isfinite(x)
        if self.log1p:
            bad |= x < 0
        if self.counts:
            bad |= x != np.round(x)
        if bad.any():
            i, j = divmod(int(np.argmax(bad.ravel())), x.shape[1])
            what = ("NaN or infinite" if not np.isfinite(x[i, j]) else "negative" if x[i, j] < 0
                    else "not an integer, in a counts modality")
            raise XmodalInputError(f"value {x[i, j]:g} of cell {str(adata.obs_names[i])!r} is {what}", row=i + 1,
                                   column=str(self.features[j]),
                                   fix="give the same kind of values as the training data (raw counts for a counts "
                                   "modality)")
        if self.log1p:
            x = np.log1p(x)
        x = (x - self.mean) / self.scale
        if self.components is not None:
            x = (x - self.pca_mean) @ self.components.T
        return x.astype(np.float32)

    def transform_frame(self, frame: pd.DataFrame, *, domain: str | None = None) -> np.ndarray:
        """:meth:`transform` of a DataFrame of raw features (columns: feature names) → ``(n, n_pcs or d_kept)``.

        ``domain`` is accepted for the pyfunc's common call and not used (this family has no domains).
        """
        adata = ad.AnnData(X=frame.to_numpy(dtype=np.float64), var=pd.DataFrame(index=frame.columns.astype(str)))
        return self.transform(adata)


def assign_split(data: PairedData, *, split: SplitConfig) -> PairedData:
    """Return a copy of ``data`` with ``obs["split"]`` (train / validation / test) in both modalities.

    Known partners always land in the same split (so held-out pairs are unseen in training); unpaired
    cells are split per modality. Stratified by ``label`` when ``split.stratify`` and the cells are labelled
    (:func:`xmodal.data.split_cells`).
    """
    rng = np.random.default_rng(split.seed)
    a, b = data.a.copy(), data.b.copy()
    split_a = np.full(a.n_obs, "", dtype=object)
    split_b = np.full(b.n_obs, "", dtype=object)
    shares = {"validation": split.validation_fraction, "test": split.test_fraction}

    def strata(adata: ad.AnnData, rows: np.ndarray) -> list[np.ndarray]:
        return [adata.obs[LABEL].astype(str).to_numpy()[rows]] if split.stratify and LABEL in adata.obs else []

    ia, ib = data.true_pairs()
    if len(ia):
        split_a[ia] = split_cells(len(ia), strata=strata(a, ia), rng=rng, **shares)
        split_b[ib] = split_a[ia]
    for adata, assigned in ((a, split_a), (b, split_b)):
        rest = np.flatnonzero(assigned == "")
        if len(rest):
            assigned[rest] = split_cells(len(rest), strata=strata(adata, rest), rng=rng, **shares)
        adata.obs[SPLIT] = pd.Categorical(assigned, categories=list(SPLITS))
    return replace(data, a=a, b=b)


def check_classes(data: PairedData, *, min_cells: int) -> None:
    """Every label must have at least ``min_cells`` cells in each modality.

    Raises
    ------
    XmodalInputError
        Naming the rarest too-small label, its modality and its count.
    """
    if not data.has_labels:
        return
    for k, key in enumerate(("a", "b")):
        counts = data.modality(key).obs[LABEL].astype(str).value_counts()
        small = counts[counts < min_cells].sort_values()
        if len(small):
            others = f" (and {len(small) - 1} other labels)" if len(small) > 1 else ""
            raise XmodalInputError(
                f"modality {key} ({data.names[k]}): label {small.index[0]!r} has {int(small.iloc[0])} cell"
                f"{'s' if small.iloc[0] != 1 else ''}{others}; every label needs at least {min_cells}",
                column=LABEL, fix="merge the rare label into a broader one or drop its cells, or lower "
                "split.min_cells_per_class")


def check_splits(data: PairedData, *, min_cells: int) -> None:
    """Each split of each modality must hold at least ``min_cells`` cells.

    Raises
    ------
    XmodalInputError
        Naming the modality, the split and how many cells it got.
    """
    for k, key in enumerate(("a", "b")):
        adata = data.modality(key)
        sizes = adata.obs[SPLIT].astype(str).value_counts()
        for name in SPLITS:
            n = int(sizes.get(name, 0))
            if n < min_cells:
                raise XmodalInputError(
                    f"modality {key} ({data.names[k]}) has {adata.n_obs} cell{'s' if adata.n_obs != 1 else ''}: its "
                    f"{name} split gets {n}, at least {min_cells} are needed",
                    fix="give more cells, or change split.validation_fraction / split.test_fraction or lower "
                    "split.min_cells_per_split")


def preprocess_paired(
    data: PairedData, *, cfg: PairedPreprocessConfig
) -> tuple[PairedData, dict[str, ModalityPreprocessor]]:
    """Fit one :class:`ModalityPreprocessor` per modality on its training cells and apply it to all cells.

    Returns
    -------
    tuple
        The transformed data (``X``: ``(n, n_pcs)``, obs kept) and the fitted preprocessors ``{"a", "b"}``.
    """
    out, fitted = {}, {}
    for k, key in enumerate(("a", "b")):
        adata = data.modality(key)
        train = adata[adata.obs[SPLIT] == "train"]
        prep = fit_preprocessor(train, cfg=cfg, kind=None if data.kinds is None else data.kinds[k],
                                name=f"modality {key} ({data.names[k]})")
        x = prep.transform(adata)
        names = [f"pc_{i + 1}" for i in range(x.shape[1])] if prep.components is not None else list(prep.features)
        out[key] = ad.AnnData(X=x, obs=adata.obs.copy(), var=pd.DataFrame(index=names))
        fitted[key] = prep
    return replace(data, a=out["a"], b=out["b"]), fitted


def fit_preprocessor(train: ad.AnnData, *, cfg: PairedPreprocessConfig, kind: str | None = None,
                     name: str = "the modality") -> ModalityPreprocessor:
    """Fit log1p, top-variance selection, scaling and PCA on the training cells ``train``.

    Parameters
    ----------
    train
        Training cells ``(n, d)``.
    cfg
        ``log1p`` (``auto``: for counts with values above 1), ``n_top_features``, ``scale`` (``auto``: only when
        PCA runs), ``n_pcs``,
        ``min_features``.
    kind
        ``counts`` or ``continuous`` as ingest recorded it (``None``: inferred from ``train`` by the rule ingest
        uses, :func:`~xmodal.data._counts.judge_counts`: dense integers without small values are not counts).
    name
        The modality, for messages.

    Raises
    ------
    XmodalInputError
        Fewer than ``cfg.min_features`` features vary on the training cells, or ``log1p: yes`` meets a negative
        value.
    """
    x = _dense(train.X)
    counts = _looks_like_counts(x) if kind is None else kind == "counts"
    use_log = cfg.log1p == "yes" or (cfg.log1p == "auto" and counts and bool(x.size) and float(x.max()) > 1)
    log.info("%s: %s, %s", name, "counts" if counts else "not counts",
             f"log1p ({cfg.log1p})" if use_log else f"no log1p (log1p: {cfg.log1p})")
    if use_log and x.size and float(x.min()) < 0:
        i, j = divmod(int(np.argmin(x.ravel())), x.shape[1])
        raise XmodalInputError(f"{name}: log1p needs non-negative values, but cell {str(train.obs_names[i])!r} holds "
                               f"{x[i, j]:g}", row=i + 1, column=str(train.var_names[j]),
                               fix="set preprocess.paired.log1p to auto or no for data that are not counts")
    if use_log:
        x = np.log1p(x)
    var = x.var(axis=0)
    keep = np.flatnonzero(var > 0)
    if len(keep) < cfg.min_features:
        raise XmodalInputError(
            f"{name}: {len(keep)} of its {x.shape[1]} features vary over the {x.shape[0]} training cells "
            f"(the other {x.shape[1] - len(keep)} are constant); at least {cfg.min_features} are needed",
            fix="give features that differ between cells (or more cells), or lower preprocess.paired.min_features")
    if cfg.n_top_features is not None and len(keep) > cfg.n_top_features:
        keep = np.sort(keep[np.argsort(var[keep])[::-1][: cfg.n_top_features]])
    x = x[:, keep]
    n_pcs = cfg.n_pcs
    runs_pca = n_pcs is not None and n_pcs < min(x.shape)
    do_scale = runs_pca if cfg.scale == "auto" else bool(cfg.scale)
    mean = x.mean(axis=0) if do_scale else np.zeros(x.shape[1])
    scale = x.std(axis=0) if do_scale else np.ones(x.shape[1])
    scale[scale == 0] = 1.0
    prep = ModalityPreprocessor(log1p=use_log, features=np.asarray(train.var_names[keep], dtype=str), mean=mean,
                                scale=scale, counts=counts)
    if runs_pca:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=n_pcs, random_state=cfg.seed, svd_solver="full").fit((x - mean) / scale)
        prep.components, prep.pca_mean = pca.components_, pca.mean_
        prep.explained_variance_ratio = [float(v) for v in pca.explained_variance_ratio_]
    return prep


def save_preprocessor(prep: ModalityPreprocessor, directory: Path) -> None:
    """Write a fitted preprocessor as ``meta.json`` + ``.npy`` arrays."""
    directory.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"family": "paired", "log1p": prep.log1p, "explained_variance_ratio": prep.explained_variance_ratio,
                            "features": prep.features.tolist(), "pca": prep.components is not None}
    if prep.counts:
        meta["counts"] = True
    (directory / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    for name in ("mean", "scale", "components", "pca_mean"):
        value = getattr(prep, name)
        if value is not None:
            np.save(directory / f"{name}.npy", value, allow_pickle=False)


def load_preprocessor(directory: str | Path) -> ModalityPreprocessor:
    """Read a preprocessor written by :func:`save_preprocessor`."""
    directory = Path(directory)
    meta = read_json(directory / "meta.json")
    try:
        arrays = {n: np.load(directory / f"{n}.npy", allow_pickle=False)
                  for n in ("mean", "scale", "components", "pca_mean") if (directory / f"{n}.npy").is_file()}
        missing = [k for k in ("log1p", "features", "explained_variance_ratio") if k not in meta]
        if missing or "mean" not in arrays or "scale" not in arrays:
            raise ValueError(f"no {', '.join(missing or ['mean/scale arrays'])}")
    except (OSError, ValueError, EOFError) as exc:
        raise XmodalInputError(f"not a readable preprocessor ({exc})", path=directory,
                               fix="re-run `xmodal preprocess` (or `dvc repro`): the folder is damaged") from None
    return ModalityPreprocessor(log1p=meta["log1p"], features=np.asarray(meta["features"], dtype=str),
                                explained_variance_ratio=meta["explained_variance_ratio"],
                                counts=bool(meta.get("counts", False)), **arrays)


def _looks_like_counts(x: np.ndarray) -> bool:
    """The counts rule of ingest (:func:`~xmodal.data._counts.judge_counts`), for data ingested without a kind."""
    from xmodal.data._counts import judge_counts

    return bool(x.size) and judge_counts(x).counts


def _dense(x: Any) -> np.ndarray:
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64)


__all__ = ["ModalityPreprocessor", "assign_split", "check_classes", "check_splits", "fit_preprocessor",
           "load_preprocessor", "preprocess_paired", "save_preprocessor"]

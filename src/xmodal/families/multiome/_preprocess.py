"""Preprocessing of the ``multiome`` family: split per domain, select features, normalise (seed 001).

Every domain is split into train / validation / test, stratified by phase (:func:`split_per_domain`, the
shared :func:`xmodal.data.split_cells`). Feature selection is fitted on the training
cells only: peaks open in at least ``min_peak_fraction`` of them, and the ``n_top_genes`` most
variable genes. Both modalities are then normalised per cell (CPM → log1p → L2, the seed's
normalisation, skipped for data that already look normalised). The fitted
:class:`MultiomePreprocessor` of each modality is saved beside the data, so raw cells can be
brought into the model's features later (the registry scores held-out cells through it).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from xmodal._io import read_json
from xmodal.config import SplitConfig
from xmodal.data import SPLITS, split_cells
from xmodal.errors import XmodalInputError
from xmodal.families.multiome._config import MultiomePreprocessConfig
from xmodal.families.multiome._data import DOMAIN, PHASE, MultiomeData
from xmodal.families.multiome._prep import (
    MEASURED,
    PeakMapper,
    frequent_peaks,
    looks_normalized,
    mapper_views,
    normalize_cpm_log1p_l2,
)

log = logging.getLogger(__name__)
SPLIT = "split"
MODALITIES = ("rna", "atac")
COUNTS, N_COUNTS = "counts", "n_counts"


@dataclass(frozen=True)
class MultiomePreprocessor:
    """A fitted per-modality transform: ``x ↦ L2(log1p(CPM(x[:, features])))`` (or the selection alone).

    Attributes
    ----------
    features
        Names of the kept input features ``(d_kept,)``, in order.
    normalize
        Whether CPM → log1p → L2 is applied (false for data that came normalised).
    """

    features: np.ndarray
    normalize: bool
    mappers: dict[str, PeakMapper] = field(default_factory=dict)

    def _finish(self, chosen: sp.csr_matrix, obs: pd.DataFrame) -> sp.csr_matrix:
        """Normalise the selected raw values; then the cells of a domain with a learned peak mapper get its
        predictions for the peaks that domain did not measure (rows renormalised)."""
        x = normalize_cpm_log1p_l2(chosen, force=True) if self.normalize else chosen
        if not self.mappers or DOMAIN not in obs:
            return x
        domains = obs[DOMAIN].astype(str).to_numpy()
        order, blocks = [], []
        for name in [*self.mappers, None]:
            rows = np.flatnonzero(~np.isin(domains, list(self.mappers)) if name is None else domains == name)
            if len(rows):
                order.append(rows)
                blocks.append(x[rows] if name is None else self.mappers[name].apply(x[rows],
                                                                                    renormalize=self.normalize))
        stacked = sp.csr_matrix(sp.vstack(blocks), dtype=np.float32)
        return sp.csr_matrix(stacked[np.argsort(np.concatenate(order))])

    def _mapped(self, missing: np.ndarray, obs: pd.DataFrame) -> bool:
        """Whether every cell's domain has a peak mapper that predicts all the ``missing`` features."""
        if not self.mappers or DOMAIN not in obs or not len(obs):
            return False
        for name in obs[DOMAIN].astype(str).unique():
            if name not in self.mappers:
                return False
            predicted = np.zeros(len(self.features), dtype=bool)
            predicted[self.mappers[name].unmeasured] = True
            if (missing & ~predicted).any():
                return False
        return True

    def _select(self, adata: ad.AnnData, *, fill_missing: bool) -> sp.csr_matrix:
        """The kept features of ``adata`` in order, raw ``(n, d_kept)``; missing ones zero or an error."""
        index = pd.Index(adata.var_names.astype(str)).get_indexer(self.features)
        missing = index < 0
        if missing.any() and not fill_missing and not self._mapped(missing, adata.obs):
            raise XmodalInputError(
                f"{int(missing.sum())} of the {len(self.features)} features the model needs are missing "
                f"(first: {self.features[missing][0]!r})",
                fix="give data with the training features (map peaks by coordinates first), or fill_missing=True")
        chosen = sp.csr_matrix(adata.X, dtype=np.float32)[:, np.where(missing, 0, index)]
        if missing.any():
            chosen = sp.csr_matrix(chosen.multiply(~missing[None, :]), dtype=np.float32)
        return sp.csr_matrix(chosen)

    def transform(self, adata: ad.AnnData, *, fill_missing: bool = False) -> sp.csr_matrix:
        """Select the kept features of ``adata`` ``(n, d)`` and normalise → ``(n, d_kept)`` CSR float32.

        Parameters
        ----------
        adata
            Cells with (at least) the kept features.
        fill_missing
            Missing features become zeros (peaks not called in new data) instead of an error.
        """
        return self._finish(self._select(adata, fill_missing=fill_missing), adata.obs)

    def transform_adata(self, adata: ad.AnnData, *, fill_missing: bool = False) -> ad.AnnData:
        """:meth:`transform` as an AnnData: ``X`` normalised ``(n, d_kept)``, ``layers["counts"]`` the kept raw
        values and ``obs["n_counts"]`` each cell's total over all its features (what a foundation-model source
        encoder tokenises); the other ``obs`` columns as given."""
        kept = self._select(adata, fill_missing=fill_missing)
        obs = adata.obs.copy()
        obs[N_COUNTS] = np.asarray(sp.csr_matrix(adata.X).sum(axis=1), dtype=np.float64).ravel()
        x = self._finish(kept, obs)
        return ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=self.features), layers={COUNTS: kept})

    def transform_frame(self, frame: pd.DataFrame, *, domain: str | None = None) -> ad.AnnData:
        """:meth:`transform_adata` of a DataFrame of raw features (columns: feature names); ``domain`` names the
        cells' domain, so that its learned peak mapper predicts the peaks that domain did not measure."""
        adata = ad.AnnData(X=frame.to_numpy(dtype=np.float64), var=pd.DataFrame(index=frame.columns.astype(str)))
        if domain is not None:
            adata.obs[DOMAIN] = str(domain)
        return self.transform_adata(adata)

    def save(self, directory: Path) -> None:
        """Write ``meta.json`` into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        mappers = [{"domain": name, "file": f"peak_mapper_{i}.npz"} for i, name in enumerate(self.mappers)]
        for entry in mappers:
            np.savez(directory / entry["file"], **self.mappers[entry["domain"]].arrays())
        meta = {"family": "multiome", "normalize": self.normalize, "features": self.features.tolist(),
                "peak_mappers": mappers}
        (directory / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> MultiomePreprocessor:
        """Read what :meth:`save` wrote."""
        directory = Path(directory)
        meta = read_json(directory / "meta.json")
        mappers = {}
        try:
            for entry in meta.get("peak_mappers", []):
                name = str(entry["file"])
                if Path(name).name != name or name.startswith("."):  # a file of this folder, nothing else
                    raise ValueError(f"peak mapper file {name!r} is not a file name")
                with np.load(directory / name, allow_pickle=False) as arrays:
                    mappers[str(entry["domain"])] = PeakMapper(**{k: arrays[k] for k in arrays.files})
            return cls(features=np.asarray(meta["features"], dtype=str), normalize=bool(meta["normalize"]),
                       mappers=mappers)
        except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
            raise XmodalInputError(f"not a readable multiome preprocessor ({type(exc).__name__}: {exc})",
                                   path=directory, fix="re-run `xmodal preprocess` (or `dvc repro`): the folder is "
                                   "damaged") from None


def fit_preprocessors(data: MultiomeData, train: np.ndarray, *,
                      cfg: MultiomePreprocessConfig) -> dict[str, MultiomePreprocessor]:
    """Fit the peak filter, gene selection and normalisation choice on the training cells ``train`` (mask)."""
    atac_train = data.atac[train]
    keep_peaks = frequent_peaks(atac_train, min_fraction=cfg.min_peak_fraction)
    if not keep_peaks.any():
        raise XmodalInputError(f"no peak is open in {cfg.min_peak_fraction:.0%} of the training cells",
                               fix="lower preprocess.multiome.min_peak_fraction")
    rna_train = sp.csr_matrix(data.rna[train].X, dtype=np.float32)
    genes = np.asarray(data.rna.var_names, dtype=str)
    if cfg.n_top_genes is not None and len(genes) > cfg.n_top_genes:
        norm = normalize_cpm_log1p_l2(rna_train, force=cfg.normalize == "yes") if cfg.normalize != "no" else rna_train
        mean = np.asarray(norm.mean(axis=0)).ravel()
        var = np.asarray(norm.multiply(norm).mean(axis=0)).ravel() - mean**2
        genes = genes[np.sort(np.argsort(var)[::-1][: cfg.n_top_genes])]

    def normalize(x: sp.spmatrix) -> bool:
        return cfg.normalize == "yes" or (cfg.normalize == "auto" and not looks_normalized(x))

    atac_normalize = normalize(sp.csr_matrix(atac_train.X))
    return {"rna": MultiomePreprocessor(features=genes, normalize=normalize(rna_train)),
            "atac": MultiomePreprocessor(features=np.asarray(data.atac.var_names[keep_peaks], dtype=str),
                                         normalize=atac_normalize,
                                         mappers=fit_peak_mappers(data, train, keep_peaks, normalize=atac_normalize,
                                                                  cfg=cfg))}


def fit_peak_mappers(data: MultiomeData, train: np.ndarray, keep_peaks: np.ndarray, *, normalize: bool,
                     cfg: MultiomePreprocessConfig) -> dict[str, PeakMapper]:
    """With ``peak_impute: learned``, one :class:`PeakMapper` per domain that did not measure every kept peak.

    Each is fitted on the **training** cells of the domains that measured every kept peak (the reference
    domain at least; ``atac.var["measured[<domain>]"]``, written by ``ingest``, says which), their raw counts
    seen as the mapped domain would show them (:func:`~xmodal.families.multiome.mapper_views`).
    ``normalize``: whether the ATAC preprocessor normalises (the mapper works on the values it produces).
    """
    if cfg.peak_impute != "learned":
        return {}
    kept = data.atac.var.iloc[np.flatnonzero(keep_peaks)]
    masks = {name: kept[MEASURED.format(name)].to_numpy(dtype=bool) for name in data.domains
             if MEASURED.format(name) in kept}
    partial = {name: mask for name, mask in masks.items() if not mask.all()}
    if not partial:
        log.info("peak_impute learned: every domain measured every kept peak; nothing to impute")
        return {}
    complete = [name for name, mask in masks.items() if mask.all()]
    domains = data.atac.obs[DOMAIN].astype(str).to_numpy()
    rows = train & np.isin(domains, complete)
    x = sp.csr_matrix(data.atac.X, dtype=np.float32)[rows][:, np.flatnonzero(keep_peaks)]
    mappers = {}
    for name, mask in partial.items():
        inputs, outputs = mapper_views(x, mask, normalize=normalize)
        mappers[name] = PeakMapper.fit(inputs, outputs, measured=mask, rank=cfg.peak_mapper_rank,
                                       alpha=cfg.peak_mapper_alpha, seed=cfg.seed)
        log.info("peak mapper for %s: %d unmeasured peaks predicted from %d (rank %d, fitted on %d training cells "
                 "of %s)", name, (~mask).sum(), mask.sum(), mappers[name].basis.shape[1], rows.sum(), complete)
    return mappers


def check_domains(obs: pd.DataFrame, split: pd.Series, *, min_cells_per_split: int, min_cells_per_class: int) -> None:
    """Every phase present in a domain has at least ``min_cells_per_class`` cells there, and every split of every
    domain at least ``min_cells_per_split``.

    Raises
    ------
    XmodalInputError
        Naming the domain, the phase or split, and its count.
    """
    domains = obs[DOMAIN].astype(str)
    for domain in domains.unique():
        here = (domains == domain).to_numpy()
        counts = obs.loc[here, PHASE].astype(str).value_counts()
        small = counts[(counts > 0) & (counts < min_cells_per_class)].sort_values()
        if len(small):
            raise XmodalInputError(
                f"domain {domain!r}: phase {small.index[0]!r} has {int(small.iloc[0])} of its {int(here.sum())} cells; "
                f"every phase present needs at least {min_cells_per_class}", column=PHASE,
                fix="give more cells of that phase (or relabel them), or lower split.min_cells_per_class")
        sizes = split[here].astype(str).value_counts()
        for name in ("train", "validation", "test"):
            if int(sizes.get(name, 0)) < min_cells_per_split:
                raise XmodalInputError(
                    f"domain {domain!r} has {int(here.sum())} cells: its {name} split gets {int(sizes.get(name, 0))}, "
                    f"at least {min_cells_per_split} are needed",
                    fix="give more cells, change split.validation_fraction / split.test_fraction, or lower "
                    "split.min_cells_per_split")


def preprocess_multiome(data: MultiomeData, *, cfg: MultiomePreprocessConfig, split: SplitConfig | None = None
                        ) -> tuple[MultiomeData, dict[str, MultiomePreprocessor]]:
    """Split, then fit and apply the per-modality preprocessors.

    Parameters
    ----------
    data
        Ingested cells of every domain, with ``phase``.
    cfg
        Feature selection and normalisation (``preprocess.multiome``); fewer features of a modality than
        ``cfg.min_features`` varying over the training cells is an error.
    split
        The shares, seed and floors of the split (``split``; default: its defaults), see :func:`check_domains`.

    Returns
    -------
    tuple
        The processed data (``obs["split"]`` in both modalities; ``X`` CSR float32, ``(n, d_kept)``)
        and the fitted preprocessors ``{"rna", "atac"}``.
    """
    if PHASE not in data.rna.obs:
        raise XmodalInputError("the ingested data carry no `phase`", fix="re-run `xmodal ingest` (it scores phases)")
    split = SplitConfig() if split is None else split
    assigned = split_per_domain(data.rna.obs, validation=split.validation_fraction, test=split.test_fraction,
                                seed=split.seed, stratify=split.stratify)
    check_domains(data.rna.obs, assigned, min_cells_per_split=split.min_cells_per_split,
                  min_cells_per_class=split.min_cells_per_class)
    train = (assigned == "train").to_numpy()
    if cfg.normalize == "yes":  # declared raw counts: refuse what is not
        _check_counts(data)
    fitted = fit_preprocessors(data, train, cfg=cfg)
    for name in MODALITIES:
        x = sp.csr_matrix(getattr(data, name)[train][:, list(fitted[name].features)].X, dtype=np.float64)
        mean = np.asarray(x.mean(axis=0)).ravel()
        varying = int((np.asarray(x.multiply(x).mean(axis=0)).ravel() - mean**2 > 1e-12).sum())
        if varying < cfg.min_features:
            raise XmodalInputError(
                f"{name}: {varying} of the {len(fitted[name].features)} kept features vary over the {int(train.sum())} "
                f"training cells; at least {cfg.min_features} are needed",
                fix="give features that differ between cells, or lower preprocess.multiome.min_features")
    out = {}
    for name in MODALITIES:
        adata = getattr(data, name)
        prep = fitted[name]
        obs = adata.obs.copy()
        obs[SPLIT] = assigned.to_numpy()
        obs[SPLIT] = obs[SPLIT].astype(assigned.dtype)
        var = adata.var.loc[prep.features].copy() if adata.var.shape[1] else pd.DataFrame(index=prep.features)
        done = prep.transform_adata(adata)
        if name == "rna":  # raw counts and depth stay for foundation-model source encoders
            obs[N_COUNTS] = done.obs[N_COUNTS].to_numpy()
        out[name] = ad.AnnData(X=done.X, obs=obs, var=var, layers=dict(done.layers) if name == "rna" else None)
    log.info("multiome preprocessing: %d genes, %d of %d peaks kept (open in >= %.0f %% of training cells)",
             len(fitted["rna"].features), len(fitted["atac"].features), data.atac.n_vars, 100 * cfg.min_peak_fraction)
    return MultiomeData(rna=out["rna"], atac=out["atac"]), fitted


def _check_counts(data: MultiomeData) -> None:
    """``normalize: yes`` declares raw counts: a value that is not an integer is an error (with its cell)."""
    from xmodal.data import first_entry

    for name in MODALITIES:
        adata = getattr(data, name)
        bad = first_entry(sp.csr_matrix(adata.X), lambda v: v != np.round(v))
        if bad is not None:
            row, col, value = bad
            raise XmodalInputError(
                f"{name}: value {value:g} of cell {str(adata.obs_names[row])!r} is not an integer, but "
                "preprocess.multiome.normalize: yes treats the data as raw counts", row=row + 1,
                column=str(adata.var_names[col]),
                fix="give raw counts, or set preprocess.multiome.normalize to auto (already normalised data are "
                "then used as they are)")


def split_per_domain(obs: pd.DataFrame, *, validation: float = 0.15, test: float = 0.15, seed: int = 0,
                     stratify: bool = True) -> pd.Series:
    """Train / validation / test assignment inside each ``domain``, stratified by ``phase`` (``stratify``).

    Parameters
    ----------
    obs
        Cell annotations with ``domain`` and ``phase`` columns.
    validation, test
        Shares held out in every domain (and phase).
    seed
        Seeds the assignment.
    stratify
        Stratify by phase within each domain (the domain always is a stratum).

    Returns
    -------
    pandas.Series
        ``train``, ``validation`` or ``test`` per cell (categorical), indexed like ``obs``.
    """
    strata = [obs[DOMAIN].astype(str).to_numpy()] + ([obs[PHASE].astype(str).to_numpy()] if stratify else [])
    out = split_cells(len(obs), strata=strata, validation=validation, test=test, rng=np.random.default_rng(seed))
    return pd.Series(pd.Categorical(out, categories=list(SPLITS)), index=obs.index, name="split")


def without_test(data: MultiomeData) -> MultiomeData:
    """The cells of the train and validation splits, both modalities: all a method may see."""
    keep = (data.rna.obs[SPLIT].astype(str) != "test").to_numpy()
    return MultiomeData(rna=data.rna[keep].copy(), atac=data.atac[keep].copy())


__all__ = ["MultiomePreprocessor", "fit_peak_mappers", "fit_preprocessors", "preprocess_multiome", "split_per_domain",
           "without_test"]

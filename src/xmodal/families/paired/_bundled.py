"""Real data that ships inside installed packages (no network)."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd

from xmodal.errors import ConfigError
from xmodal.families.paired._config import Pbmc68kSource
from xmodal.families.paired._data import LABEL, MATCH, PairedData


def pbmc68k_paired(config: Pbmc68kSource | None = None) -> PairedData:
    """scanpy's bundled ``pbmc68k_reduced`` (700 PBMCs, 765 genes) as two gene panels.

    The genes are split at random (seeded) into two disjoint panels. Panel A takes the
    z-scored values of ``.X``; panel B takes the log-normalised values of ``.raw``. Both panels
    measure the same cells, so the true pairing is known (FOSCTTM and matching are meaningful),
    the labels are real (``bulk_labels``: 10 immune cell types), and the two feature spaces
    share no feature, so a method must align them through their geometry alone.

    Parameters
    ----------
    config
        Which label column, the share of genes in panel A, names and the seed.

    Returns
    -------
    PairedData
        ``a``: 700 × ⌊0.5·765⌋, ``b``: 700 × the rest; B rows shuffled; ``obs["match"]`` set.
    """
    import scanpy as sc

    cfg = config or Pbmc68kSource()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = sc.datasets.pbmc68k_reduced()
    if cfg.label_key not in full.obs:
        raise ConfigError(
            f"datasets.*.source.label_key: {cfg.label_key!r} is not an obs column of pbmc68k_reduced "
            f"(have: {sorted(full.obs.columns)})"
        )
    rng = np.random.default_rng(cfg.seed)
    genes = rng.permutation(full.n_vars)
    n_a = int(round(cfg.fraction_a * full.n_vars))
    ids = [f"cell{i:04d}" for i in range(full.n_obs)]
    labels = full.obs[cfg.label_key].astype(str).to_numpy()
    x_a = np.asarray(full.X[:, np.sort(genes[:n_a])], dtype=np.float32)
    raw = full.raw.X
    raw = raw.toarray() if hasattr(raw, "toarray") else np.asarray(raw)
    cols_b = np.sort(genes[n_a:])
    x_b = np.asarray(raw[:, cols_b], dtype=np.float32)
    perm = rng.permutation(full.n_obs)
    a = ad.AnnData(
        X=x_a,
        obs=pd.DataFrame({LABEL: pd.Categorical(labels), MATCH: [f"b_{i}" for i in ids]}, index=[f"a_{i}" for i in ids]),
        var=pd.DataFrame(index=full.var_names[np.sort(genes[:n_a])].astype(str)),
    )
    ids_b = [ids[i] for i in perm]
    b = ad.AnnData(
        X=x_b[perm],
        obs=pd.DataFrame(
            {LABEL: pd.Categorical(labels[perm]), MATCH: [f"a_{i}" for i in ids_b]}, index=[f"b_{i}" for i in ids_b]
        ),
        var=pd.DataFrame(index=full.raw.var_names[cols_b].astype(str)),
    )
    return PairedData(a=a, b=b, names=tuple(cfg.names))

"""Where the cluster prior comes from: cluster ids per training cell and a cluster correlation matrix."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from xmodal.errors import XmodalInputError
from xmodal.families.paired._data import CLUSTER, PairedData
from xmodal.methods.geoadvae._config import GeoAdVAEConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterPrior:
    """The prior's inputs for the training cells.

    Attributes
    ----------
    corr
        Cluster correlations ``(K_b, K_a)`` (B clusters × A clusters, seed 000's orientation).
    clusters_a, clusters_b
        Cluster index of each training cell, ``(n_a,)`` and ``(n_b,)``.
    source
        ``"unsupervised"`` or ``"data"``.
    """

    corr: np.ndarray
    clusters_a: np.ndarray
    clusters_b: np.ndarray
    source: str


def build_prior(data: PairedData, config: GeoAdVAEConfig, *, seed: int) -> ClusterPrior | None:
    """Cluster ids and correlations for the prior of :class:`~xmodal.methods.geoadvae.GeoAdVAE`.

    ``unsupervised`` reads neither labels nor the pairing: modality A's training cells are
    clustered with k-means (``prior_clusters``); modality B's cells are carried into A's space by the
    entropic Gromov–Wasserstein coupling of :class:`~xmodal.methods.gwot.GWOT` and take the nearest
    A cluster; the correlation matrix is the correlation of the A cluster centres, as in seed
    000's ``Corr_matrix`` (cluster × cluster). ``data`` uses the data's ``obs["cluster"]`` columns
    and ``corr_matrix`` (the seed's CSV set). ``none`` returns ``None``.

    Parameters
    ----------
    data
        Training cells.
    config
        ``prior_source``, ``prior_clusters``.
    seed
        Seeds k-means.

    Returns
    -------
    ClusterPrior or None
    """
    if config.prior_source == "none" or config.lambda_p == 0 or "prior" not in config.loss_schedule:
        return None
    if config.prior_source == "data":
        return _data_prior(data)
    return _unsupervised_prior(data, config, seed=seed)


def _data_prior(data: PairedData) -> ClusterPrior:
    fix = ("give the data `cluster` columns and a correlation matrix (csv source: clusters_a, clusters_b, "
           "corr_matrix), or set methods.geoadvae.prior_source: unsupervised")
    if data.corr_matrix is None or CLUSTER not in data.a.obs or CLUSTER not in data.b.obs:
        raise XmodalInputError("prior_source is `data` but the data has no cluster columns and correlation matrix",
                               fix=fix)
    corr = data.corr_matrix
    ids = []
    for adata, names, side in ((data.a, corr.columns, "columns (A clusters)"), (data.b, corr.index, "rows (B clusters)")):
        lookup = {str(name): i for i, name in enumerate(names)}
        values = adata.obs[CLUSTER].astype(str).to_numpy()
        missing = sorted(set(values) - set(lookup))
        if missing:
            raise XmodalInputError(f"clusters {missing[:5]} are not among the correlation matrix's {side}",
                                   fix="use the same cluster names in the cluster files and the correlation matrix")
        ids.append(np.array([lookup[v] for v in values], dtype=np.int64))
    return ClusterPrior(np.asarray(corr, dtype=np.float32), ids[0], ids[1], "data")


def _unsupervised_prior(data: PairedData, config: GeoAdVAEConfig, *, seed: int) -> ClusterPrior:
    from scipy.cluster.vq import kmeans2

    from xmodal.geometry import nearest_neighbors
    from xmodal.methods.gwot import GWOT, GWOTConfig

    transport = GWOT(GWOTConfig(project_onto="a", max_iter=100, tol=1e-7)).fit(data, seed=seed)
    # clusters, centres and B's projections all live in gwot's shared space (A's per-cell normalised features)
    x_a = transport.transform(np.asarray(data.a.X, dtype=np.float64), modality="a")
    k = min(config.prior_clusters, len(x_a) // 2)
    centres, clusters_a = kmeans2(x_a, k, minit="++", seed=seed)
    used = np.unique(clusters_a)  # k-means may leave a centre empty
    remap = np.full(k, -1)
    remap[used] = np.arange(len(used))
    centres, clusters_a = centres[used], remap[clusters_a]
    x_b_in_a = transport.transform(np.asarray(data.b.X), modality="b")
    _, nearest = nearest_neighbors(centres, x_b_in_a, k=1)
    clusters_b = nearest[:, 0]
    corr = np.corrcoef(centres).astype(np.float32)
    log.info("geoadvae: unsupervised prior over %d clusters (k-means on %s, %s matched through GW)",
             len(centres), data.names[0], data.names[1])
    return ClusterPrior(corr, clusters_a.astype(np.int64), clusters_b.astype(np.int64), "unsupervised")

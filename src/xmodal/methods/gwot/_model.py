"""The ``gwot`` model: fit a GW coupling between two modalities, project one onto the other."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from xmodal._pot import import_pot as _import_pot
from xmodal.errors import XmodalInputError
from xmodal.families.paired._data import PairedData
from xmodal.geometry import intra_distances, nearest_neighbors
from xmodal.methods._base import read_history, read_model_meta, write_model_meta
from xmodal.methods.gwot._config import GWOTConfig

log = logging.getLogger(__name__)
_ARRAYS = ("x_a", "x_b", "z_a", "z_b")


class GWOT:
    """SCOT-style unsupervised alignment by entropic Gromov–Wasserstein optimal transport.

    Fitting never looks at labels or at the true pairing. It computes intra-modality distances
    (kNN-graph geodesic or Euclidean, each scaled to max 1), solves the entropic GW problem
    between the two metric spaces with uniform marginals (Peyré et al. 2016, projected
    gradient with one Sinkhorn solve per outer step, on POT's primitives), and embeds both
    modalities in the feature space of ``project_onto`` by barycentric projection: a cell of
    the other modality goes to the coupling-weighted mean of its partners.

    New cells (e.g. the validation split) are embedded out of sample: cells of the target
    modality are already in the shared space; a cell of the other modality takes the
    inverse-distance-weighted mean of the projections of its ``oos_neighbors`` nearest training
    cells of its own modality.

    Parameters
    ----------
    config
        Hyper-parameters (defaults: :class:`GWOTConfig`).

    Examples
    --------
    >>> from xmodal.families.paired import synthetic_paired
    >>> data = synthetic_paired(n_cells=120, dim_a=10, dim_b=30, seed=0)
    >>> model = GWOT(GWOTConfig(max_iter=50, n_neighbors=10)).fit(data, seed=0)
    >>> model.transform(data.b.X, modality="b").shape
    (120, 10)
    """

    method = "gwot"

    def __init__(self, config: GWOTConfig | None = None) -> None:
        self.config = config or GWOTConfig()
        self.arrays: dict[str, np.ndarray] = {}
        self.history: list[dict[str, float]] = []
        self.info: dict[str, Any] = {}

    # ------------------------------------------------------------------ fit
    def fit(self, data: PairedData, *, seed: int = 0) -> GWOT:
        """Fit the alignment on ``data`` (labels and ``match`` are ignored).

        Parameters
        ----------
        data
            Training cells: ``data.a.X`` ``(n_a, d_a)`` and ``data.b.X`` ``(n_b, d_b)``.
        seed
            Seeds the subsampling when a modality has more than ``max_cells`` cells.

        Returns
        -------
        GWOT
            ``self``, fitted.
        """
        ot = _import_pot()
        cfg = self.config
        rng = np.random.default_rng(seed)
        x_a = _subsample(np.asarray(data.a.X, dtype=np.float64), cfg.max_cells, rng)
        x_b = _subsample(np.asarray(data.b.X, dtype=np.float64), cfg.max_cells, rng)
        start = time.perf_counter()
        d_a = intra_distances(x_a, kind=cfg.distance, n_neighbors=cfg.n_neighbors)
        d_b = intra_distances(x_b, kind=cfg.distance, n_neighbors=cfg.n_neighbors)
        p, q = ot.unif(len(x_a)), ot.unif(len(x_b))
        coupling, self.history = _entropic_gw(d_a, d_b, p, q, cfg)
        mass_b = coupling.sum(axis=0)[:, None]
        mass_a = coupling.sum(axis=1)[:, None]
        if cfg.project_onto == "a":
            z_a, z_b = x_a, (coupling.T @ x_a) / mass_b
        else:
            z_a, z_b = (coupling @ x_b) / mass_a, x_b
        self.arrays = {"x_a": x_a, "x_b": x_b, "z_a": z_a, "z_b": z_b}
        self.info = {
            "n_train_a": len(x_a),
            "n_train_b": len(x_b),
            "gw_distance": float(self.history[-1]["gw_loss"]) if self.history else float("nan"),
            "n_iter": len(self.history),
            "fit_seconds": time.perf_counter() - start,
            "features_a": list(map(str, data.a.var_names)),
            "features_b": list(map(str, data.b.var_names)),
            "names": list(data.names),
        }
        log.info("gwot: fitted %d × %d cells in %.1f s (%d iterations, GW %.4g)",
                 len(x_a), len(x_b), self.info["fit_seconds"], len(self.history), self.info["gw_distance"])
        return self

    # ------------------------------------------------------------ transform
    def transform(self, x: np.ndarray, *, modality: str) -> np.ndarray:
        """Embed cells of one modality in the shared space.

        Parameters
        ----------
        x
            Cells × features of modality ``modality`` (same features as in training), ``(n, d_m)``.
        modality
            ``"a"`` or ``"b"``.

        Returns
        -------
        numpy.ndarray
            Shared-space coordinates, ``(n, d_shared)`` where ``d_shared`` is the feature
            dimension of ``project_onto``.
        """
        self._check_fitted()
        if modality not in ("a", "b"):
            raise ValueError(f"modality must be 'a' or 'b', got {modality!r}")
        x = np.asarray(x, dtype=np.float64)
        train = self.arrays[f"x_{modality}"]
        if x.ndim != 2 or x.shape[1] != train.shape[1]:
            raise XmodalInputError(
                f"modality {modality} has {x.shape[-1]} features, the model was trained on {train.shape[1]}",
                fix="preprocess new data with the same parameters as the training data",
            )
        if modality == self.config.project_onto:
            return x.copy()
        k = min(self.config.oos_neighbors, len(train))
        dist, idx = nearest_neighbors(train, x, k=k)
        weights = 1.0 / (dist + 1e-8)
        weights /= weights.sum(axis=1, keepdims=True)
        return np.einsum("nk,nkd->nd", weights, self.arrays[f"z_{modality}"][idx])

    # ----------------------------------------------------------- save/load
    def save(self, path: str | Path) -> Path:
        """Write ``model.json``, ``history.json`` and one ``.npy`` per array into ``path``."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        write_model_meta(path, method=self.method, config=self.config, info=self.info, history=self.history)
        for name in _ARRAYS:
            np.save(path / f"{name}.npy", self.arrays[name], allow_pickle=False)
        return path

    @classmethod
    def load(cls, path: str | Path) -> GWOT:
        """Load a model written by :meth:`save`."""
        path = Path(path)
        meta = read_model_meta(path, method=cls.method)
        model = cls(GWOTConfig.model_validate(meta["config"]))
        model.info = meta.get("info", {})
        model.arrays = {name: np.load(path / f"{name}.npy", allow_pickle=False) for name in _ARRAYS}
        model.history = read_history(path)
        return model

    def _check_fitted(self) -> None:
        if not self.arrays:
            raise RuntimeError("GWOT is not fitted: call fit() or load() first")


def _subsample(x: np.ndarray, max_cells: int, rng: np.random.Generator) -> np.ndarray:
    if len(x) <= max_cells:
        return x
    log.info("gwot: subsampling %d → %d cells", len(x), max_cells)
    return x[np.sort(rng.choice(len(x), size=max_cells, replace=False))]


def _entropic_gw(
    d_a: np.ndarray, d_b: np.ndarray, p: np.ndarray, q: np.ndarray, cfg: GWOTConfig
) -> tuple[np.ndarray, list[dict[str, float]]]:
    """Entropic GW with the square loss by projected gradient, annealing epsilon.

    Each stage runs the Peyré et al. (2016) iteration ``T ← Sinkhorn_ε(p, q, ∇GW(T))`` until the
    coupling changes less than ``tol``; the first stage uses ``ε·4^anneal_steps`` (a smooth,
    nearly convex problem), each next stage divides ε by 4 and starts from the previous coupling.

    Returns
    -------
    tuple
        The coupling ``(n_a, n_b)`` and one history record per iteration
        (``step``, ``epsilon``, ``gw_loss``, ``coupling_change``).
    """
    import warnings

    from tqdm.auto import tqdm

    ot = _import_pot()

    const, h_a, h_b = ot.gromov.init_matrix(d_a, d_b, p, q, "square_loss")
    coupling = np.outer(p, q)
    history: list[dict[str, float]] = []
    epsilons = [cfg.epsilon * 4.0**k for k in range(cfg.anneal_steps, -1, -1)]
    bar = tqdm(total=len(epsilons) * cfg.max_iter, desc="gwot", unit="it", disable=None, leave=False)
    for eps in epsilons:
        for _ in range(cfg.max_iter):
            grad = ot.gromov.gwggrad(const, h_a, h_b, coupling)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # inner non-convergence; the outer loop checks
                new = ot.sinkhorn(p, q, grad - grad.min(), eps, numItermax=cfg.sinkhorn_max_iter, stopThr=1e-9)
            change = float(np.linalg.norm(new - coupling))
            coupling = new
            loss = float(ot.gromov.gwloss(const, h_a, h_b, coupling))
            history.append({"step": len(history), "epsilon": eps, "gw_loss": loss, "coupling_change": change})
            bar.update()
            bar.set_postfix(eps=f"{eps:.1e}", gw=f"{loss:.4g}")
            if change < cfg.tol:
                break
    bar.close()
    if not np.isfinite(coupling).all() or coupling.sum() <= 0:
        raise RuntimeError("gwot: the coupling is not finite; increase methods.gwot.epsilon")
    return coupling, history

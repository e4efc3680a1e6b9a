"""The ``gwot`` model: fit a GW coupling between two modalities, project one onto the other."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from xmodal.errors import TrainingDivergedError, XmodalInputError
from xmodal.families.paired._data import PairedData
from xmodal.methods._base import read_history, read_model_meta, write_model_meta
from xmodal.methods.gwot._anchors import kmeans_anchors, nearest_anchors
from xmodal.methods.gwot._config import GWOTConfig
from xmodal.methods.gwot._solver import (
    GWResult,
    cell_distances,
    eccentricity_init,
    entropic_gw,
    gw_distance_of,
    normalize_cells,
    random_init,
    scot_tune,
)

log = logging.getLogger(__name__)
_ARRAYS = ("ref_a", "ref_b", "z_ref_a", "z_ref_b")


class GWOT:
    """Unsupervised alignment by entropic Gromov–Wasserstein optimal transport (SCOT's family, made robust).

    Fitting never looks at labels or at the true pairing:

    1. **Geometry.** Each cell is normalised (``normalize``: per-cell L2); distances between cells are
       straight lines (``distance: euclidean``, the default), or shortest paths on a kNN graph (``geodesic``,
       SCOT's: ``metric`` correlation, ``graph: connectivity`` = hop counts); scaled to max 1.
    2. **Coupling.** Entropic GW between the two metric spaces with uniform marginals (Peyré et al. 2016),
       from ``n_init`` starts: the first (``init``: the product coupling, or cells matched by their
       distributions of distances), then seeded symmetry-breaking ones. The lowest GW distance wins, which
       keeps a mirrored (flipped) optimum from winning when a better-fitting one was found.
    3. **Self-tuning** (``tune: scot``): SCOT's search over k and ε, the lowest GW distance wins.
    4. **Projection.** Cells of ``project_onto`` keep their (normalised) features, as in SCOT; a cell of the other modality goes to the
       coupling-weighted mean of its partners (barycentric projection).

    Above ``max_exact_cells`` (``solver: auto``) steps 1–3 run between k-means anchors with masses
    (quantized GW) and each cell is placed from its ``anchor_neighbors`` nearest anchors, so no ``n × n``
    matrix exists (see :mod:`xmodal.methods.gwot._anchors`).

    New cells (e.g. the validation split) are embedded out of sample: cells of the target modality are
    already in the shared space; a cell of the other modality takes the inverse-distance-weighted mean of
    the projections of its nearest reference points (training cells, or anchors) of its own modality.

    Parameters
    ----------
    config
        Hyper-parameters (defaults: :class:`GWOTConfig`).

    Examples
    --------
    >>> from xmodal.families.paired import synthetic_paired
    >>> data = synthetic_paired(n_cells=120, dim_a=10, dim_b=30, seed=0)
    >>> model = GWOT(GWOTConfig(max_iter=50, n_neighbors=10, tune="none")).fit(data, seed=0)
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
            Seeds the subsampling (``max_cells``), the anchors and the symmetry-breaking starts.

        Returns
        -------
        GWOT
            ``self``, fitted.
        """
        cfg = self.config
        rng = np.random.default_rng(seed)
        x_a = np.asarray(data.a.X, dtype=np.float64)
        x_b = np.asarray(data.b.X, dtype=np.float64)
        if cfg.max_cells is not None:
            x_a, x_b = _subsample(x_a, cfg.max_cells, rng), _subsample(x_b, cfg.max_cells, rng)
        _check_finite(x_a, "a"), _check_finite(x_b, "b")
        start = time.perf_counter()
        solver = cfg.solver
        if solver == "auto":
            solver = "anchors" if max(len(x_a), len(x_b)) > cfg.max_exact_cells else "exact"
        g_a, g_b = normalize_cells(x_a, cfg.normalize), normalize_cells(x_b, cfg.normalize)
        if solver == "exact":
            _check_exact_memory(len(x_a), len(x_b))
            ref_a, ref_b = g_a, g_b
            w_a, w_b = np.full(len(g_a), 1.0 / len(g_a)), np.full(len(g_b), 1.0 / len(g_b))
            feat_a, feat_b = g_a, g_b
        else:
            ref_a, w_a, assign_a = kmeans_anchors(g_a, cfg.n_anchors, rng=rng)
            ref_b, w_b, assign_b = kmeans_anchors(g_b, cfg.n_anchors, rng=rng)
            feat_a, feat_b = _group_means(g_a, assign_a, len(ref_a)), _group_means(g_b, assign_b, len(ref_b))
            log.info("gwot: %d × %d cells → %d × %d anchors", len(x_a), len(x_b), len(ref_a), len(ref_b))
        coupling, chosen = self._solve(ref_a, ref_b, w_a, w_b, rng=rng)
        # barycentric projection of the reference points (cells, or anchors) of the projected modality
        if cfg.project_onto == "a":
            z_ref_a, z_ref_b = feat_a, (coupling.T @ feat_a) / coupling.sum(axis=0)[:, None]
        else:
            z_ref_a, z_ref_b = (coupling @ feat_b) / coupling.sum(axis=1)[:, None], feat_b
        self.arrays = {"ref_a": ref_a, "ref_b": ref_b, "z_ref_a": z_ref_a, "z_ref_b": z_ref_b}
        self.info = {
            "n_train_a": len(x_a),
            "n_train_b": len(x_b),
            "solver": solver,
            "n_reference_a": len(ref_a),
            "n_reference_b": len(ref_b),
            "dim_a": int(x_a.shape[1]),
            "dim_b": int(x_b.shape[1]),
            **chosen,
            "n_iter": len(self.history),
            "fit_seconds": time.perf_counter() - start,
            "features_a": list(map(str, data.a.var_names)),
            "features_b": list(map(str, data.b.var_names)),
            "names": list(data.names),
        }
        log.info("gwot: fitted %d × %d cells in %.1f s (%s solver, k=%d, ε=%.3g, start %s, GW %.4g)",
                 len(x_a), len(x_b), self.info["fit_seconds"], solver, chosen["n_neighbors"], chosen["epsilon"],
                 chosen["init"], chosen["gw_distance"])
        return self

    def _solve(self, ref_a: np.ndarray, ref_b: np.ndarray, w_a: np.ndarray, w_b: np.ndarray, *,
               rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        """Geometries, optional self-tuning and the starts; returns the winning coupling and what was chosen.

        With one geometry the start with the lowest GW distance wins. With ``distance: auto`` every start is
        solved in both geometries (straight lines and hop counts) and each coupling is scored in both: the
        winner has the lowest sum over the two geometries of its GW distance relative to the best found in that
        geometry. A coupling that only one view of the data supports (a flipped optimum of that view) loses to
        one that both support.
        """
        cfg = self.config
        n = min(len(ref_a), len(ref_b))
        k_auto = max(2, min(50, n // 5))
        kinds = ["euclidean", "geodesic"] if cfg.distance == "auto" else [cfg.distance]
        cache: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}

        def distances(kind: str, k: int) -> tuple[np.ndarray, np.ndarray]:
            key = (kind, k if kind == "geodesic" else 0)
            if key not in cache:
                for old in [c for c in cache if c[0] == kind]:
                    del cache[old]  # one pair of n × n matrices per geometry at a time
                cache[key] = tuple(cell_distances(x, distance=kind, n_neighbors=k, graph_mode=cfg.graph,
                                                  metric=cfg.metric) for x in (ref_a, ref_b))
            return cache[key]

        def solve(kind: str, k: int, eps: float, init: str, start_rng: np.random.Generator | None = None
                  ) -> GWResult:
            d_a, d_b = distances(kind, k)
            if init == "eccentricity":
                start = eccentricity_init(d_a, d_b, w_a, w_b, epsilon=eps)
            elif init == "random":
                start = random_init(w_a, w_b, rng=start_rng)
            else:
                start = None
            bar = tqdm(total=cfg.max_iter * (cfg.anneal_steps + 1), desc=f"gwot {kind} ε={eps:.1e} {init}",
                       unit="it", disable=None, leave=False)
            try:
                result = entropic_gw(d_a, d_b, w_a, w_b, epsilon=eps, anneal_steps=cfg.anneal_steps,
                                     max_iter=cfg.max_iter, tol=cfg.tol, sinkhorn_max_iter=cfg.sinkhorn_max_iter,
                                     init=start, progress=bar)
            finally:
                bar.close()
            result.init = init
            return result

        starts = [cfg.init] + [("eccentricity" if cfg.init == "product" and i == 1 else
                                "product" if cfg.init == "eccentricity" and i == 1 else "random")
                               for i in range(1, cfg.n_init)]
        seeds = [int(rng.integers(2**31)) for _ in starts]
        settings: dict[str, tuple[int, float]] = {}
        candidates: list[dict[str, Any]] = []
        trials: list[dict[str, float]] = []
        couplings: list[np.ndarray] = []
        self.history = []
        for kind in kinds:
            k, eps = (k_auto if cfg.n_neighbors == "auto" else cfg.n_neighbors), cfg.epsilon
            if cfg.tune == "scot":
                tuned = scot_tune(lambda kk, ee, kind=kind: solve(kind, kk, ee, cfg.init), n,
                                  n_neighbors=50 if cfg.n_neighbors == "auto" else cfg.n_neighbors)
                k, eps = tuned.n_neighbors, tuned.epsilon
                trials += [{**t, "distance": kind} for t in tuned.trials]
            settings[kind] = (k, eps)
            for i, init in enumerate(starts):
                result = solve(kind, k, eps, init, np.random.default_rng([seeds[i], i]))
                # one step count over every start: each record's step is unique (trackers key metrics by step)
                self.history += [{**h, "step": len(self.history) + j, "start": len(candidates)}
                                 for j, h in enumerate(result.history)]
                candidates.append({"distance": kind, "init": init, "gw_distance": float(result.gw_loss),
                                   "converged": result.converged, "n_iter": len(result.history)})
                couplings.append(result.coupling)
        for cand, coupling in zip(candidates, couplings, strict=False):
            cand["gw_by_geometry"] = {
                kind: (cand["gw_distance"] if kind == cand["distance"] else
                       gw_distance_of(*distances(kind, settings[kind][0]), w_a, w_b, coupling))
                for kind in kinds}
        ok = [c for c in candidates if c["converged"]]
        if not ok:
            raise TrainingDivergedError(
                f"gwot: the fitted model is not finite (no start of the entropic GW solve converged at "
                f"epsilon={cfg.epsilon:g}). Fix: raise methods.gwot.epsilon")
        floor = {kind: max(min(c["gw_by_geometry"][kind] for c in ok), 1e-300) for kind in kinds}
        for c in candidates:
            c["score"] = (float(sum(c["gw_by_geometry"][kind] / floor[kind] for kind in kinds))
                          if c["converged"] else float("inf"))
        best = min(range(len(candidates)), key=lambda i: candidates[i]["score"])
        k, eps = settings[candidates[best]["distance"]]
        chosen = {
            "distance": candidates[best]["distance"],
            "n_neighbors": int(k),
            "epsilon": float(eps),
            "init": candidates[best]["init"],
            "gw_distance": candidates[best]["gw_distance"],
            "starts": candidates,
            "tuning": trials,
        }
        return couplings[best], chosen

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
        width = self.arrays[f"ref_{modality}"].shape[1]
        if x.ndim != 2 or x.shape[1] != width:
            raise XmodalInputError(
                f"modality {modality} has {x.shape[-1]} features, the model was trained on {width}",
                fix="preprocess new data with the same parameters as the training data",
            )
        if modality == self.config.project_onto:
            return normalize_cells(x, self.config.normalize)
        ref = self.arrays[f"ref_{modality}"]
        k = min(self.config.oos_neighbors if self.info.get("solver") == "exact" else self.config.anchor_neighbors,
                len(ref))
        sq, idx = nearest_anchors(normalize_cells(x, self.config.normalize), ref, k=k)
        weights = 1.0 / (np.sqrt(sq) + 1e-8)
        weights /= weights.sum(axis=1, keepdims=True)
        return np.einsum("nk,nkd->nd", weights, self.arrays[f"z_ref_{modality}"][idx])

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


def _check_finite(x: np.ndarray, modality: str) -> None:
    from xmodal.data._tables import first_nonfinite

    found = first_nonfinite(x)
    if found is not None:
        row, col, value = found
        raise XmodalInputError(f"modality {modality}: value {value} is not finite", row=row + 1, column=str(col),
                               fix="remove or impute NaN/infinite values before training")


def _check_exact_memory(n_a: int, n_b: int) -> None:
    """The exact solver keeps about eight float64 n × n matrices alive (distances, coupling, gradient, kernel)."""
    from xmodal._resources import check_memory

    n = max(n_a, n_b)
    check_memory(8 * 8 * n * n, what=f"the exact gwot solver on {n_a:,} × {n_b:,} cells",
                 fix="set methods.gwot.solver: anchors (or auto with a lower max_exact_cells)")


def _group_means(x: np.ndarray, assign: np.ndarray, m: int) -> np.ndarray:
    """Mean of the cells of each anchor, ``(m, d)``."""
    sums = np.zeros((m, x.shape[1]))
    np.add.at(sums, assign, x)
    return sums / np.maximum(np.bincount(assign, minlength=m), 1)[:, None]

"""The numerical core of ``gwot``: cell geometry, entropic GW with restarts, SCOT's self-tuning, anchors.

Everything here is NumPy/SciPy/POT on float64 arrays and holds no model state; :class:`~xmodal.methods.gwot.GWOT`
strings it together.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from xmodal._pot import import_pot

log = logging.getLogger(__name__)

Normalize = Literal["none", "l2"]
Distance = Literal["geodesic", "euclidean"]
GraphMode = Literal["connectivity", "distance"]
Metric = Literal["correlation", "euclidean", "cosine"]


def normalize_cells(x: np.ndarray, how: Normalize) -> np.ndarray:
    """Per-cell normalisation before any geometry: ``l2`` scales every row to unit norm (SCOT).

    Parameters
    ----------
    x
        Cells × features, ``(n, d)``.
    how
        ``"none"`` or ``"l2"``.

    Returns
    -------
    numpy.ndarray
        ``(n, d)`` float64, a new array.
    """
    x = np.array(x, dtype=np.float64)
    if how == "l2":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x /= np.where(norms > 0, norms, 1.0)
    elif how != "none":
        raise ValueError(f"normalize must be 'none' or 'l2', got {how!r}")
    return x


def cell_distances(
    x: np.ndarray,
    *,
    distance: Distance,
    n_neighbors: int,
    graph_mode: GraphMode = "connectivity",
    metric: Metric = "correlation",
) -> np.ndarray:
    """Intra-modality distances, scaled to a maximum of 1.

    Parameters
    ----------
    x
        Cells (or anchors) × features, ``(n, d)``.
    distance
        ``"geodesic"``: shortest paths on the kNN graph (SCOT); ``"euclidean"``: straight lines.
    n_neighbors
        kNN graph size (clipped to ``n - 1``).
    graph_mode
        ``"connectivity"``: every edge has length 1 and the cell itself counts as a neighbour (SCOT's
        ``kneighbors_graph(mode="connectivity", include_self=True)``), so distances are hop counts;
        ``"distance"``: edges weighted by ``metric``.
    metric
        Metric that picks the neighbours (and weighs edges in ``distance`` mode).

    Returns
    -------
    numpy.ndarray
        ``(n, n)`` float64, symmetric, zero diagonal, max 1. Cells in other connected components get the largest
        finite distance (as SCOT does).
    """
    from scipy.sparse.csgraph import dijkstra
    from scipy.spatial.distance import cdist

    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < 2:
        raise ValueError(f"need at least 2 cells to compute distances, got {n}")
    if distance == "euclidean":
        dist = cdist(x, x, metric="euclidean" if metric == "correlation" else metric)
    elif distance == "geodesic":
        graph = knn_graph(x, n_neighbors=n_neighbors, mode=graph_mode, metric=metric)
        dist = dijkstra(graph, directed=False)
        finite = np.isfinite(dist)
        if not finite.all():
            dist[~finite] = dist[finite].max()
    else:
        raise ValueError(f"distance must be 'geodesic' or 'euclidean', got {distance!r}")
    top = dist.max()
    return dist / top if top > 0 else dist


def knn_graph(x: np.ndarray, *, n_neighbors: int, mode: GraphMode, metric: Metric) -> Any:
    """The kNN graph as a sparse ``(n, n)`` CSR matrix (SCOT's construction; ``include_self`` in connectivity mode)."""
    from sklearn.neighbors import kneighbors_graph

    n = len(x)
    k = max(1, min(n_neighbors, n - 1))
    xs = x
    if metric == "correlation":
        # correlation distance = cosine distance of row-centred rows; kd/ball trees then do the search
        xs = x - x.mean(axis=1, keepdims=True)
        xs = xs / np.maximum(np.linalg.norm(xs, axis=1, keepdims=True), 1e-12)
        knn_metric = "euclidean"  # monotone in the correlation distance for unit rows: same neighbours
    elif metric == "cosine":
        xs = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        knn_metric = "euclidean"
    else:
        knn_metric = metric
    include_self = mode == "connectivity"
    graph = kneighbors_graph(xs, k, mode=mode, metric=knn_metric, include_self=include_self)
    if mode == "distance" and metric in ("correlation", "cosine"):
        graph.data = graph.data**2 / 2.0  # |u - v|² / 2 = 1 - cos(u, v) for unit rows
    return graph.tocsr()


@dataclass
class GWResult:
    """One entropic GW solve: the coupling ``(n_a, n_b)``, its GW loss, and one record per outer iteration."""

    coupling: np.ndarray
    gw_loss: float
    history: list[dict[str, float]] = field(default_factory=list)
    converged: bool = True
    init: str = "product"


def entropic_gw(
    d_a: np.ndarray,
    d_b: np.ndarray,
    p: np.ndarray,
    q: np.ndarray,
    *,
    epsilon: float,
    anneal_steps: int = 0,
    max_iter: int = 1000,
    tol: float = 1e-9,
    sinkhorn_max_iter: int = 1000,
    init: np.ndarray | None = None,
    progress: Any = None,
) -> GWResult:
    """Entropic Gromov–Wasserstein with the square loss (Peyré et al. 2016), optionally annealing ε.

    Each stage iterates ``T ← Sinkhorn_ε(p, q, ∇GW(T))`` (the iteration of POT's ``entropic_gromov_wasserstein``,
    PGD solver: the same gradient ``constC − 2·D_a T D_b`` and the same Sinkhorn problem) until
    ``‖T − T_prev‖_F < tol``. With ``anneal_steps`` > 0 the first stage uses ``ε·4^anneal_steps`` and each next
    one divides ε by 4, starting from the previous coupling. Two things make it fast without changing the
    fixed point: the Sinkhorn scalings are warm-started from the previous outer step, and the two ``n³``
    products of the gradient run in float32 (the gradient is then exact to about 1e-7 relative).

    Parameters
    ----------
    d_a, d_b
        Intra-modality distances ``(n_a, n_a)`` and ``(n_b, n_b)``.
    p, q
        Marginals ``(n_a,)`` and ``(n_b,)``.
    epsilon
        Final entropic regularisation.
    init
        Starting coupling ``(n_a, n_b)``; default the product ``p qᵀ`` (POT's and SCOT's).
    progress
        A tqdm bar to advance once per outer iteration, or ``None``.

    Returns
    -------
    GWResult
        ``converged`` is false when the coupling has NaNs, an empty row or column, or under 95 % of the mass
        (SCOT's test); its ``gw_loss`` is then infinite.
    """
    d_a32 = np.ascontiguousarray(d_a, dtype=np.float32)
    d_b32 = np.ascontiguousarray(d_b, dtype=np.float32)
    const = _square_loss_const(d_a, d_b, p, q)
    coupling = np.outer(p, q) if init is None else np.asarray(init, dtype=np.float64)
    history: list[dict[str, float]] = []
    loss = float("nan")
    scalings: tuple[np.ndarray, np.ndarray] | None = None
    for eps in [epsilon * 4.0**k for k in range(anneal_steps, -1, -1)]:
        for _ in range(max_iter):
            cross = (d_a32 @ coupling.astype(np.float32) @ d_b32).astype(np.float64)
            grad = 2.0 * (const - 2.0 * cross)
            new, scalings = sinkhorn_warm(p, q, grad, eps, max_iter=sinkhorn_max_iter, start=scalings)
            change = float(np.linalg.norm(new - coupling))
            coupling = new
            loss = gw_loss_of(const, d_a32, d_b32, coupling)
            history.append({"step": len(history), "epsilon": eps, "gw_loss": loss, "coupling_change": change})
            if progress is not None:
                progress.update()
                progress.set_postfix(eps=f"{eps:.1e}", gw=f"{loss:.4g}", refresh=False)
            if not np.isfinite(change) or change < tol:
                break
        scalings = None  # a new epsilon: the old scalings mean nothing
    converged = bool(np.isfinite(coupling).all() and coupling.any(axis=1).all() and coupling.any(axis=0).all()
                     and coupling.sum() >= 0.95)
    return GWResult(coupling=coupling, gw_loss=loss if converged else float("inf"), history=history,
                    converged=converged)


def gw_loss_of(const: np.ndarray, d_a: np.ndarray, d_b: np.ndarray, coupling: np.ndarray) -> float:
    """The square-loss GW objective ``Σ (D_a[i,k] − D_b[j,l])² T_ij T_kl`` of a coupling (no entropy term).

    Parameters
    ----------
    const
        ``(D_a² p) 1ᵀ + 1 (D_b² q)ᵀ``, ``(n_a, n_b)``, for the coupling's marginals.
    d_a, d_b
        ``(n_a, n_a)`` and ``(n_b, n_b)``.
    coupling
        ``(n_a, n_b)``.
    """
    cross = (d_a @ coupling.astype(d_a.dtype) @ d_b).astype(np.float64)
    return float(np.sum((const - 2.0 * cross) * coupling))


def _square_loss_const(d_a: np.ndarray, d_b: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """constC of the square loss, ``(D_a² p) 1ᵀ + 1 (D_b² q)ᵀ`` ``(n_a, n_b)``: the GW loss is ``<constC − 2 D_a T D_b, T>``."""
    return ((d_a**2) @ p)[:, None] + ((d_b**2) @ q)[None, :]


def gw_distance_of(d_a: np.ndarray, d_b: np.ndarray, p: np.ndarray, q: np.ndarray, coupling: np.ndarray) -> float:
    """The square-loss GW distance of ``coupling`` ``(n_a, n_b)`` between the geometries ``d_a`` and ``d_b``."""
    const = _square_loss_const(d_a, d_b, p, q)
    return gw_loss_of(const, np.asarray(d_a, dtype=np.float32), np.asarray(d_b, dtype=np.float32), coupling)


def sinkhorn_warm(
    p: np.ndarray, q: np.ndarray, cost: np.ndarray, eps: float, *, max_iter: int,
    start: tuple[np.ndarray, np.ndarray] | None = None, tol: float = 1e-9,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Entropic OT ``argmin <C, T> − ε H(T)`` with marginals ``p``, ``q``: Sinkhorn's scalings, warm-started.

    The cost is shifted to a minimum of 0 (the plan does not change). The row-marginal error is checked every
    10 iterations, as POT does. When the kernel underflows (ε too small against the cost's range) the plan
    comes back with NaNs or empty rows, and the caller reports the solve as not converged (as SCOT does: raise
    ε), rather than spending minutes in the log domain.

    Returns
    -------
    tuple
        The plan ``(n_a, n_b)`` and the scalings ``(u, v)`` to start the next solve from.
    """
    kernel = np.exp(-(cost - cost.min()) / eps)
    u, v = (np.ones_like(p), np.ones_like(q)) if start is None else start
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for it in range(max_iter):
            u = p / (kernel @ v)
            v = q / (kernel.T @ u)
            if it % 10 == 0 or it == max_iter - 1:
                if not (np.isfinite(u).all() and np.isfinite(v).all()):
                    break
                if np.abs(u * (kernel @ v) - p).sum() < tol:
                    break
        plan = u[:, None] * kernel * v[None, :]
    return plan, (u, v)


def _sinkhorn(p: np.ndarray, q: np.ndarray, cost: np.ndarray, eps: float, *, max_iter: int) -> np.ndarray:
    ot = import_pot()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # inner non-convergence / underflow: checked here and by the outer loop
        plan = ot.sinkhorn(p, q, cost, eps, numItermax=max_iter, stopThr=1e-9)
        if not np.isfinite(plan).all() or plan.sum() < 0.95 or not plan.any(axis=1).all():
            plan = ot.sinkhorn(p, q, cost, eps, method="sinkhorn_log", numItermax=max_iter, stopThr=1e-9)
    return plan


def eccentricity_init(d_a: np.ndarray, d_b: np.ndarray, p: np.ndarray, q: np.ndarray, *, epsilon: float,
                      n_quantiles: int = 32) -> np.ndarray:
    """A starting coupling from each cell's distribution of distances (Mémoli's third lower bound of GW).

    Cell ``i`` of A and cell ``j`` of B cost the L2 distance between the quantiles of ``d_a[i]`` and ``d_b[j]``;
    the entropic OT plan of that cost is the start. It is invariant to isometries (it breaks no mirror
    symmetry), but it starts central cells on central cells and peripheral on peripheral.

    Returns
    -------
    numpy.ndarray
        ``(n_a, n_b)`` coupling with marginals ``p`` and ``q``.
    """
    from scipy.spatial.distance import cdist

    levels = np.linspace(0.0, 1.0, n_quantiles)
    qa = np.quantile(d_a, levels, axis=1).T
    qb = np.quantile(d_b, levels, axis=1).T
    cost = cdist(qa, qb, "sqeuclidean") / n_quantiles
    return _sinkhorn(p, q, cost - cost.min(), max(epsilon, 1e-3 * max(float(cost.max()), 1e-12)), max_iter=2000)


def random_init(p: np.ndarray, q: np.ndarray, *, rng: np.random.Generator, sharpness: float = 0.5) -> np.ndarray:
    """A seeded symmetry-breaking start: the product coupling tilted towards a random assignment.

    Returns
    -------
    numpy.ndarray
        ``(n_a, n_b)`` coupling with marginals ``p`` and ``q`` (Sinkhorn-balanced from a random positive matrix).
    """
    ot = import_pot()
    cost = rng.random((len(p), len(q)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ot.sinkhorn(p, q, cost, sharpness * 0.1, numItermax=2000)


@dataclass
class TuneResult:
    """SCOT's self-tuning: the chosen ``k`` and ``ε``, and every solve tried (``k``, ``epsilon``, ``gw_loss``)."""

    n_neighbors: int
    epsilon: float
    trials: list[dict[str, float]]


def scot_grid(n: int, n_neighbors: int) -> tuple[int, np.ndarray, np.ndarray]:
    """SCOT's first two search rounds for ``n`` cells (the smaller modality): the starting k, the ε values, the ks.

    Returns
    -------
    tuple
        ``k0 = min(n // 5, n_neighbors)``, six ε from 1e-2 to 1e-3 (log-spaced), four k from 20 to 100
        (``n > 250``) or from n/20 to n/6.
    """
    k0 = max(2, min(n // 5, n_neighbors))
    eps = np.logspace(-2, -3, 6)
    ks = np.linspace(20, 100, 4) if n > 250 else np.linspace(n // 20, n // 6, 4)
    ks = np.unique(np.clip(ks.astype(int), 2, n - 1))
    return k0, eps, ks


def scot_tune(solve: Any, n: int, *, n_neighbors: int) -> TuneResult:
    """SCOT's unsupervised search for ``k`` and ``ε`` (``unsupervised_scot``), by the GW distance alone.

    Round 1 fixes ``k0`` and tries six ε; round 2 fixes the best ε and tries four k; round 3 refines with
    five ε within ±0.25 decades and two k within ±5 of the best. The lowest GW distance over the 20 solves
    wins; a solve that does not converge is skipped.

    Parameters
    ----------
    solve
        ``solve(k, epsilon) -> GWResult``.
    n
        Cells of the smaller modality.
    n_neighbors
        Upper bound of the starting k (SCOT uses 50).

    Returns
    -------
    TuneResult
    """
    from tqdm.auto import tqdm

    trials: list[dict[str, float]] = []
    best: tuple[float, int, float] | None = None
    bar = tqdm(total=20, desc="gwot tune", unit="solve", disable=None, leave=False)

    def attempt(k: int, eps: float) -> None:
        nonlocal best
        result = solve(int(k), float(eps))
        trials.append({"n_neighbors": int(k), "epsilon": float(eps), "gw_loss": float(result.gw_loss),
                       "converged": bool(result.converged)})
        bar.update()
        if result.converged and (best is None or result.gw_loss < best[0]):
            best = (result.gw_loss, int(k), float(eps))

    k0, eps_grid, ks = scot_grid(n, n_neighbors)
    for eps in eps_grid:
        attempt(k0, eps)
    e_best = best[2] if best else float(eps_grid[-1])
    for k in ks:
        attempt(int(k), e_best)
    k_best = best[1] if best else k0
    scale = np.log10(e_best if best is None else best[2])
    for k in np.unique(np.linspace(max(5, k_best - 5), min(n // 2, k_best + 5), 2).astype(int)):
        for eps in np.logspace(scale + 0.25, scale - 0.25, 5):
            attempt(int(k), eps)
    bar.close()
    if best is None:
        raise RuntimeError("gwot: no solve of the self-tuning search converged; set methods.gwot.tune: none and "
                           "a larger epsilon")
    return TuneResult(n_neighbors=best[1], epsilon=best[2], trials=trials)

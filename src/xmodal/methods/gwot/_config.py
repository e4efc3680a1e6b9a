"""Parameters of :class:`~xmodal.methods.gwot.GWOT` (``params.yaml: methods.gwot``).

``preset`` fills every field the entry does not set itself (a field set here wins, and ``xmodal train`` says which
did; a preset all of whose fields are set here, some differently, changes nothing and is refused):

* ``scot``: SCOT's published configuration (Demetci et al. 2022), exactly: per-cell L2 normalisation, a kNN
  *connectivity* graph built with the correlation metric, shortest paths scaled by their maximum, entropic GW
  from the product coupling at a fixed ε (no annealing, one start), barycentric projection.
* ``scot_tuned``: the same, with SCOT's unsupervised self-tuning of k and ε (``tune: scot``: 20 solves, the
  lowest GW distance wins).
* ``none``: only the defaults below.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PrivateAttr, model_validator

from xmodal.config import StrictModel

PRESETS: dict[str, dict[str, Any]] = {
    "none": {},
    "scot": {
        "normalize": "l2", "distance": "geodesic", "graph": "connectivity", "metric": "correlation",
        "n_neighbors": "auto", "epsilon": 1e-3, "anneal_steps": 0, "max_iter": 1000, "tol": 1e-9,
        "n_init": 1, "init": "product", "tune": "none",
    },
    "scot_tuned": {
        "normalize": "l2", "distance": "geodesic", "graph": "connectivity", "metric": "correlation",
        "n_neighbors": "auto", "epsilon": 1e-3, "anneal_steps": 0, "max_iter": 1000, "tol": 1e-9,
        "n_init": 1, "init": "product", "tune": "scot",
    },
}


class GWOTConfig(StrictModel):
    """Unsupervised alignment by entropic Gromov–Wasserstein optimal transport (SCOT's family)."""

    preset: Literal["none", "scot", "scot_tuned"] = Field(
        "none", description="fill the fields this entry leaves unset from a preset: scot = SCOT's published "
        "configuration, scot_tuned = with SCOT's self-tuning of k and epsilon")
    normalize: Literal["none", "l2"] = Field("l2", description="per-cell normalisation before the geometry")
    distance: Literal["auto", "geodesic", "euclidean"] = Field(
        "auto", description="intra-modality distance between the normalised cells: straight lines, kNN-graph "
        "shortest paths (SCOT), or auto: both, and the coupling that fits both best wins")
    graph: Literal["connectivity", "distance"] = Field(
        "connectivity", description="kNN graph edges: connectivity = every edge 1 (hop counts, SCOT), distance = "
        "weighted by the metric")
    metric: Literal["correlation", "euclidean", "cosine"] = Field(
        "correlation", description="metric that picks each cell's neighbours")
    n_neighbors: int | Literal["auto"] = Field(
        "auto", description="kNN graph size; auto: min(50, a fifth of the cells), SCOT's rule (with tune: the "
        "largest first k tried)")
    epsilon: float = Field(2e-3, gt=0, description="entropic regularisation of the GW coupling (with tune: the "
                           "fallback when no solve converges)")
    anneal_steps: int = Field(
        0, ge=0, description="start at epsilon·4^anneal_steps and divide by 4 per stage (0: fixed epsilon)")
    max_iter: int = Field(500, ge=1, description="outer GW iterations per stage (one Sinkhorn solve each)")
    tol: float = Field(1e-6, ge=0, description="stop when the coupling changes less than this (Frobenius)")
    sinkhorn_max_iter: int = Field(1000, ge=1, description="iterations of each inner Sinkhorn solve")
    tune: Literal["none", "scot"] = Field(
        "none", description="unsupervised choice of n_neighbors and epsilon: scot = SCOT's search, the lowest "
        "GW distance over 20 solves wins; none = use them as given")
    init: Literal["product", "eccentricity"] = Field(
        "eccentricity", description="first start: product = p·qᵀ (SCOT, POT); eccentricity = match cells by their "
        "distributions of distances (a lower bound of GW)")
    n_init: int = Field(
        2, ge=1, description="starts in all: the first, then seeded symmetry-breaking ones; the lowest GW "
        "distance wins (no labels are used)")
    solver: Literal["auto", "exact", "anchors"] = Field(
        "auto", description="exact: GW between cells (n² memory); anchors: GW between k-means anchors with "
        "masses, extended to cells (no n × n matrix); auto: anchors above max_exact_cells")
    max_exact_cells: int = Field(2000, ge=10, description="auto switches to anchors above this many cells in "
                                 "either modality")
    n_anchors: int = Field(1000, ge=10, description="anchors per modality of the anchor solver")
    anchor_neighbors: int = Field(8, ge=1, description="nearest anchors that place each cell (soft weights)")
    project_onto: Literal["a", "b"] = Field(
        "a", description="the shared space is this modality's feature space; the other is projected")
    oos_neighbors: int = Field(10, ge=1, description="neighbours for embedding new cells of the projected modality")
    max_cells: int | None = Field(
        None, ge=10, description="subsample each modality to at most this many training cells (null: all)")

    _preset_overridden: dict[str, tuple[Any, Any]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _apply_preset(cls, data: Any, handler: Any) -> Any:
        preset = PRESETS.get(data.get("preset", "none"), {}) if isinstance(data, dict) else {}
        if not preset:
            return handler(data)
        model = handler({**preset, **data})
        overridden = {key: (getattr(model, key), value) for key, value in preset.items()
                      if key in data and getattr(model, key) != value}
        if overridden and all(key in data for key in preset):
            raise ValueError(
                f"preset {model.preset!r} changes nothing: this entry also sets every field the preset sets, and "
                f"{len(overridden)} of them differently ({_listed(overridden)}); remove the fields the preset should "
                f"decide, or the preset")
        object.__setattr__(model, "_preset_overridden", overridden)
        return model

    @property
    def preset_overridden(self) -> dict[str, tuple[Any, Any]]:
        """Fields this entry sets that the preset would set otherwise: name → (value used, the preset's value)."""
        return dict(self._preset_overridden)


def _listed(overridden: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{key}: {used!r} instead of {value!r}" for key, (used, value) in overridden.items())

"""Parameters of :class:`~xmodal.methods.gwot.GWOT` (``params.yaml: methods.gwot``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from xmodal.config import StrictModel


class GWOTConfig(StrictModel):
    """SCOT-style entropic Gromov–Wasserstein alignment."""

    distance: Literal["geodesic", "euclidean"] = Field(
        "euclidean", description="intra-modality distance: Euclidean, or kNN-graph shortest paths (SCOT)"
    )
    n_neighbors: int = Field(50, ge=2, description="kNN graph size for geodesic distances")
    epsilon: float = Field(5e-3, gt=0, description="entropic regularisation of the GW coupling")
    anneal_steps: int = Field(
        3, ge=0, description="start at epsilon·4^anneal_steps and divide by 4 per stage (avoids poor local optima)"
    )
    max_iter: int = Field(500, ge=1, description="outer GW iterations per stage (one Sinkhorn solve each)")
    tol: float = Field(1e-9, ge=0, description="stop when the coupling changes less than this (Frobenius)")
    sinkhorn_max_iter: int = Field(1000, ge=1, description="iterations of each inner Sinkhorn solve")
    project_onto: Literal["a", "b"] = Field(
        "a", description="the shared space is this modality's feature space; the other is projected"
    )
    oos_neighbors: int = Field(10, ge=1, description="neighbours for embedding new cells of the projected modality")
    max_cells: int = Field(5000, ge=10, description="subsample each modality to at most this many training cells")
